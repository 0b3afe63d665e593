"""Reference files and profile folders that cannot be used are input errors naming the file,
and two models never share a profile file."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from querywatch.detector.adapters.files import DirectoryProfileStore, read_reference_file
from querywatch.detector.cli.commands import main
from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.profiles import build_profile
from querywatch.detector.errors import EXIT_INPUT, ProfileError
from querywatch.models.profile import ReferenceProfile


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rows = np.random.default_rng(0).uniform(size=(600, 4))
    return build_profile(rows, model_id="fraud/v1", settings=DetectionSettings())


def _of(profile: ReferenceProfile, model_id: str) -> ReferenceProfile:
    return dataclasses.replace(profile, model_id=model_id)


def _deep_jsonl(path: Path) -> None:
    path.write_text('{"input": [0.5, 0.5]}\n' + "[" * 100_000 + "]" * 100_000 + "\n")


def _structured_npy(path: Path) -> None:
    np.save(path, np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]))


def _object_npy(path: Path) -> None:
    np.save(path, np.array([[1.0], ["x"]], dtype=object), allow_pickle=True)


def _complex_npy(path: Path) -> None:
    np.save(path, np.ones((3, 2), dtype=complex))


def _pickle_npy(path: Path) -> None:
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle, named .npy


def _empty_npy(path: Path) -> None:
    path.write_bytes(b"")


def _huge_npy(path: Path) -> None:
    """One finite cell of 1e300 overflowed the fit's squared distances (thresholds 0 and NaN)."""
    rows = np.full((5, 2), 0.5)
    rows[3, 1] = 1e300
    np.save(path, rows)


@pytest.mark.parametrize(
    ("name", "make", "said"),
    [
        ("deep.jsonl", _deep_jsonl, "line 2: nested too deeply"),
        ("struct.npy", _structured_npy, "not a numeric array"),
        ("objects.npy", _object_npy, "not a numeric array (it holds Python objects)"),
        ("complex.npy", _complex_npy, "not a numeric array (complex128)"),
        ("pickle.npy", _pickle_npy, "is not a .npy file"),
        ("empty.npy", _empty_npy, "is not a .npy file"),
        ("huge.npy", _huge_npy, "row 4 holds a number beyond ±1e+100"),
    ],
    ids=["deep-jsonl", "structured", "objects", "complex", "pickle", "empty", "huge"],
)
def test_a_reference_file_that_cannot_be_rows_is_said_plainly(
    tmp_path: Path, name: str, make: object, said: str
) -> None:
    """A RecursionError and a TypeError ended the command with exit 1; numpy's own message
    advised ``allow_pickle``, which would run code from the file."""
    path = tmp_path / name
    make(path)  # type: ignore[operator]
    with pytest.raises(ProfileError) as failed:
        read_reference_file(path, "m")
    assert str(failed.value).startswith(f"{path}: ") and said in str(failed.value)
    assert "pickle" not in str(failed.value).replace("pickle.npy", "")


def test_missing_values_in_a_reference_file_are_read_as_missing_and_infinity_is_refused(
    tmp_path: Path,
) -> None:
    # A table exported with gaps: an empty CSV cell (as pandas writes NaN), NaN in a .npy file,
    # null in a JSON Lines row. Each is a missing value, as in a live event; an infinity is not.
    (tmp_path / "gaps.csv").write_text("a,b\n0.5,\n,0.25\n1,2\n")
    np.save(tmp_path / "gaps.npy", np.array([[0.5, np.nan], [np.nan, 0.25], [1.0, 2.0]]))
    (tmp_path / "gaps.jsonl").write_text(
        '{"input": [0.5, null]}\n{"input": [NaN, 0.25]}\n{"input": [1, 2]}\n'
    )
    for name in ("gaps.csv", "gaps.npy", "gaps.jsonl"):
        X = read_reference_file(tmp_path / name, "m").inputs
        assert np.array_equal(np.isnan(X), [[False, True], [True, False], [False, False]]), name
        assert X[2].tolist() == [1.0, 2.0]
    (tmp_path / "inf.csv").write_text("0.5,inf\n")
    with pytest.raises(ProfileError, match="holds infinite values"):
        read_reference_file(tmp_path / "inf.csv", "m")


def test_profile_of_a_deeply_nested_file_exits_3_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("QUERYWATCH_")]:
        monkeypatch.delenv(name)
    _deep_jsonl(tmp_path / "deep.jsonl")
    argv = [
        "profile",
        "--input",
        str(tmp_path / "deep.jsonl"),
        "--model-id",
        "m",
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(argv) == EXIT_INPUT
    assert capsys.readouterr().err.startswith(f"querywatch: error: {tmp_path / 'deep.jsonl'}: line 2: ")


def _cut_short(file: Path, profile: ReferenceProfile) -> None:
    file.write_bytes(profile.to_bytes()[:300])


def _a_folder(file: Path, profile: ReferenceProfile) -> None:
    file.mkdir()


def _garbage(file: Path, profile: ReferenceProfile) -> None:
    file.write_bytes(b"garbage\n")


@pytest.mark.parametrize("spoil", [_cut_short, _a_folder, _garbage], ids=["cut-short", "folder", "garbage"])
def test_a_profile_file_that_cannot_be_read_is_a_profile_error_naming_it(
    tmp_path: Path, profile: ReferenceProfile, spoil: object
) -> None:
    """A profile cut short ended in zipfile's BadZipFile, a folder of that name in an
    IsADirectoryError: exit 1, no file named."""
    store = DirectoryProfileStore(tmp_path)
    store.put(_of(profile, "m"))
    file = tmp_path / "m.qwprofile"
    file.unlink()
    spoil(file, profile)  # type: ignore[operator]
    with pytest.raises(ProfileError) as failed:
        DirectoryProfileStore(tmp_path).get("m")
    assert str(failed.value).startswith(f"{file}: cannot be read as a profile: ")
    assert "pickle" not in str(failed.value)


def test_models_whose_ids_make_one_name_get_a_file_each(tmp_path: Path, profile: ReferenceProfile) -> None:
    """``fraud/v1`` and ``fraud v1`` shared ``fraud_v1.qwprofile``: the second profile replaced the first."""
    store = DirectoryProfileStore(tmp_path)
    for model_id in ("fraud/v1", "fraud v1", "fraud_v1"):
        store.put(_of(profile, model_id))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and "fraud_v1.qwprofile" in names
    assert all(n == "fraud_v1.qwprofile" or len(n) == len("fraud_v1-12345678.qwprofile") for n in names)
    fresh = DirectoryProfileStore(tmp_path)
    for model_id in ("fraud/v1", "fraud v1", "fraud_v1"):
        found = fresh.get(model_id)
        assert found is not None and found.model_id == model_id


def test_a_folder_written_before_names_had_a_digest_keeps_working(
    tmp_path: Path, profile: ReferenceProfile
) -> None:
    old = tmp_path / "fraud_v1.qwprofile"
    old.write_bytes(_of(profile, "fraud/v1").to_bytes())
    store = DirectoryProfileStore(tmp_path)
    found = store.get("fraud/v1")
    assert found is not None and found.model_id == "fraud/v1"
    assert store.get("fraud v1") is None and store.get("fraud_v1") is None
    with pytest.raises(ProfileError) as refused:
        store.put(_of(profile, "fraud_v1"))
    assert "'fraud/v1'" in str(refused.value) and "'fraud_v1'" in str(refused.value)
    assert ReferenceProfile.from_bytes(old.read_bytes()).model_id == "fraud/v1"
    store.put(_of(profile, "fraud/v1"))  # rewritten under its new name: the old one goes
    assert [p.name.startswith("fraud_v1-") for p in tmp_path.iterdir()] == [True]
    store.put(_of(profile, "fraud_v1"))
    assert DirectoryProfileStore(tmp_path).get("fraud_v1").model_id == "fraud_v1"  # type: ignore[union-attr]


def test_a_profile_never_replaces_another_models_file(tmp_path: Path, profile: ReferenceProfile) -> None:
    """A file renamed by hand holds another model: ``put`` refuses it, naming both models."""
    (tmp_path / "m.qwprofile").write_bytes(_of(profile, "other").to_bytes())
    with pytest.raises(ProfileError) as refused:
        DirectoryProfileStore(tmp_path).put(_of(profile, "m"))
    assert "'other'" in str(refused.value) and "'m'" in str(refused.value)
    assert ReferenceProfile.from_bytes((tmp_path / "m.qwprofile").read_bytes()).model_id == "other"
