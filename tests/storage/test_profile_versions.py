"""Refreshed profiles in the database: each refresh a new version row, adopted by every
consumer of the group, and the newest resumed after a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.profiles import model_summaries
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.db.shared_profiles import DatabaseProfileStore
from querywatch.detector.adapters.db.tables import ModelProfileRow
from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import build_profile
from querywatch.models.profile import ReferenceProfile

DIM = 16
SETTINGS = DetectionSettings(
    warmup_events=1200, codebook_size=8, pca_components=4, refresh_every=1200, refresh_sample=1200
)
CENTRES = np.random.default_rng(99).uniform(0.2, 0.8, size=(5, DIM))


def _traffic(
    rng: np.random.Generator, clients: range, per_client: int, shift: float, t0: float
) -> list[Event]:
    """Benign clients around five centres, moved by ``shift`` on every input, interleaved."""
    events = []
    for c in clients:
        X = CENTRES[rng.integers(0, 5, per_client)] + rng.normal(0, 0.03, size=(per_client, DIM)) + shift
        events += [
            Event(f"c{c}-{t0}-{i}", t0 + i, f"c{c}", "m", x, None, np.array([0.3, 0.7]))
            for i, x in enumerate(X)
        ]
    return sorted(events, key=lambda e: (e.ts, e.client_id))


def _versions(sessions: sessionmaker[Session]) -> list[int]:
    with transaction(sessions) as session:
        return list(session.scalars(select(ModelProfileRow.version).where(ModelProfileRow.model_id == "m")))


def test_a_refresh_is_a_new_version_that_the_group_adopts_and_a_restart_resumes(
    sessions: sessionmaker[Session],
) -> None:
    rng = np.random.default_rng(3)
    first = Detector(SETTINGS, DatabaseProfileStore(sessions))
    other = Detector(SETTINGS, DatabaseProfileStore(sessions))
    first.process_batch(_traffic(rng, range(60), 20, 0.0, 0.0))  # the warm-up: version 1
    other.process_batch(_traffic(rng, range(60, 80), 5, 0.0, 0.0))  # adopts the stored profile
    assert _versions(sessions) == [1]
    assert other.profile_in_use("m").version == first.profile_in_use("m").version

    assert not first.process_batch(_traffic(rng, range(60), 20, 0.0, 5_000.0)).refreshed  # the baseline
    result = first.process_batch(_traffic(rng, range(60), 20, 0.02, 10_000.0))  # drifted
    (refreshed,) = result.refreshed
    assert refreshed.revision == 1 and _versions(sessions) == [1, 2]
    assert first.profile_in_use("m") is refreshed

    # The other consumer adopts the stored revision at its next check instead of its own.
    other.process_batch(_traffic(rng, range(60, 80), 60, 0.02, 10_000.0))
    adopted = other.profile_in_use("m")
    assert adopted.revision == 1 and _versions(sessions) == [1, 2]
    assert np.array_equal(adopted.centroids, refreshed.centroids)
    assert adopted.ood_threshold == refreshed.ood_threshold

    # A restart reads the newest version, and client states made before the refresh carry over.
    state = first.export_client("c1")
    restarted = Detector(SETTINGS, DatabaseProfileStore(sessions))
    restarted.import_client("c1", state)
    assert restarted.profile_in_use("m").revision == 1
    assert restarted.export_client("c1") == state

    with transaction(sessions) as session:
        (summary,) = model_summaries(session=session)
    assert summary.versions == [1, 2] and summary.origin == "warmup"
    assert refreshed.refreshed_at is not None and summary.refreshed_at is not None
    assert summary.refreshed_at.timestamp() == refreshed.refreshed_at and "drift" in (
        summary.refresh_reason or ""
    )


@pytest.mark.parametrize("trusted", [False, True], ids=["warm-up", "trusted awaiting answers"])
def test_a_consumer_still_warming_up_adopts_the_profile_another_stored_first(
    sessions: sessionmaker[Session], trusted: bool
) -> None:
    """Two consumers each hold the model's events of their partitions. The first to fill
    its sample stores the profile (a warm-up's, or the trusted file's completed with live
    answers); the other scores what it held with that one at its next events, instead of
    holding them until a sample of its own fills (never, for a warm-up: its next events are
    scored at once)."""
    rng = np.random.default_rng(6)
    if trusted:
        X = CENTRES[rng.integers(0, 5, 1500)] + rng.normal(0, 0.03, size=(1500, DIM))
        pending = build_profile(X, model_id="m", settings=SETTINGS, live_answers=True)
        DatabaseProfileStore(sessions).put(pending)
    first = Detector(SETTINGS, DatabaseProfileStore(sessions))
    other = Detector(SETTINGS, DatabaseProfileStore(sessions))
    held = _traffic(rng, range(60, 80), 10, 0.0, 0.0)
    assert len(other.process_batch(held).held) == len(held)
    assert first.process_batch(_traffic(rng, range(60), 20, 0.0, 0.0)).completed == ["m"]
    stored = DatabaseProfileStore(sessions).latest("m")
    assert stored is not None and stored.answers != "pending"

    later = _traffic(rng, range(60, 80), 5, 0.0, 1_000.0)
    result = other.process_batch(later)
    assert result.completed == ["m"] and other.pending_warmup() == 0
    scored = [(o.update.client_id, o.update.ts) for o in result.outcomes]
    assert scored == [(e.client_id, e.ts) for e in held + later]
    assert other.profile_in_use("m").version == stored.version
    assert _versions(sessions) == ([1, 2] if trusted else [1])


def test_a_refreshed_profile_round_trips_with_its_revision(sessions: sessionmaker[Session]) -> None:
    rng = np.random.default_rng(4)
    engine = Detector(SETTINGS, DatabaseProfileStore(sessions))
    engine.process_batch(_traffic(rng, range(60), 20, 0.0, 0.0))
    engine.process_batch(_traffic(rng, range(60), 20, 0.0, 5_000.0))
    (refreshed,) = engine.process_batch(_traffic(rng, range(60), 20, 0.02, 10_000.0)).refreshed
    back = DatabaseProfileStore(sessions).get("m")
    assert isinstance(back, ReferenceProfile)
    assert (back.revision, back.refreshed_at, back.refresh_reason, back.origin, back.typical_score) == (
        refreshed.revision,
        refreshed.refreshed_at,
        refreshed.refresh_reason,
        refreshed.origin,
        refreshed.typical_score,
    )
    assert np.array_equal(back.mean, refreshed.mean) and np.array_equal(back.cell_prob, refreshed.cell_prob)


def test_the_models_summary_reads_each_models_newest_version(sessions: sessionmaker[Session]) -> None:
    """Only the newest version's profile is read, and its summary follows each new version
    (summaries are remembered by the profile's bytes, never by model and version)."""
    from querywatch.detector.adapters.db.profiles import save_profile
    from querywatch.models.profile import fit_profile

    rng = np.random.default_rng(5)

    def blob(size: int) -> bytes:
        return fit_profile(
            rng.normal(size=(size, 6)), model_id="a", version="v", cells=8, components=3
        ).to_bytes()

    with transaction(sessions) as session:
        save_profile(session=session, model_id="a", version=1, dim=6, blob=blob(200))
        save_profile(session=session, model_id="a", version=2, dim=6, blob=blob(300))
        save_profile(session=session, model_id="b", version=1, dim=6, blob=b"not a profile")
    with transaction(sessions) as session:
        a, b = model_summaries(session=session)
    assert (a.model_id, a.versions, a.reference_size) == ("a", [1, 2], 300)
    assert (b.model_id, b.versions, b.reference_size, b.thresholds) == ("b", [1], None, None)
    with transaction(sessions) as session:
        save_profile(session=session, model_id="a", version=3, dim=6, blob=blob(400))
    with transaction(sessions) as session:
        a, _ = model_summaries(session=session)
    assert (a.versions, a.reference_size) == ([1, 2, 3], 400)


def _trusted_file(folder: Path, seed: int) -> ReferenceProfile:
    """A trusted profile of model ``m`` written to ``folder`` as ``querywatch profile --out`` does."""
    rng = np.random.default_rng(seed)
    X = CENTRES[rng.integers(0, 5, 1500)] + rng.normal(0, 0.03, size=(1500, DIM))
    profile = build_profile(X, model_id="m", settings=SETTINGS)
    DirectoryProfileStore(folder).put(profile)
    return profile


def test_a_trusted_file_is_stored_once_for_the_group_and_its_refreshes_resume(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The profile directory's file becomes the model's stored version, so the API shows it,
    the group's other consumers do not store it again, refreshes go to the database (the
    directory is never written) and a restart resumes the newest revision, not the file."""
    trusted = _trusted_file(tmp_path, 7)
    written = (tmp_path / "m.qwprofile").read_bytes()
    settings = SETTINGS.model_copy(update={"refresh_trusted": True})
    rng = np.random.default_rng(8)

    first = Detector(settings, DatabaseProfileStore(sessions, trusted=DirectoryProfileStore(tmp_path)))
    other = Detector(settings, DatabaseProfileStore(sessions, trusted=DirectoryProfileStore(tmp_path)))
    first.process_batch(_traffic(rng, range(60), 5, 0.0, 0.0))
    other.process_batch(_traffic(rng, range(60, 80), 5, 0.0, 0.0))
    assert _versions(sessions) == [1]
    assert first.profile_in_use("m").version == other.profile_in_use("m").version == trusted.version
    with transaction(sessions) as session:
        (summary,) = model_summaries(session=session)
    assert (summary.origin, summary.reference_size) == ("reference", trusted.reference_size)
    assert summary.thresholds is not None

    first.process_batch(_traffic(rng, range(60), 20, 0.0, 5_000.0))
    (refreshed,) = first.process_batch(_traffic(rng, range(60), 20, 0.02, 10_000.0)).refreshed
    assert refreshed.revision == 1 and _versions(sessions) == [1, 2]
    assert (tmp_path / "m.qwprofile").read_bytes() == written

    restarted = Detector(settings, DatabaseProfileStore(sessions, trusted=DirectoryProfileStore(tmp_path)))
    restarted.process_batch(_traffic(rng, range(60), 1, 0.02, 20_000.0))
    assert restarted.profile_in_use("m").revision == 1 and _versions(sessions) == [1, 2]


def test_a_new_trusted_file_is_stored_after_the_history_it_replaces(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A model first served from its warm-up, then given a trusted file: the file is used
    (as the next version, the warm-up's rows kept); a later file replaces that one."""
    rng = np.random.default_rng(9)
    Detector(SETTINGS, DatabaseProfileStore(sessions)).process_batch(_traffic(rng, range(60), 20, 0.0, 0.0))
    assert _versions(sessions) == [1]

    trusted = _trusted_file(tmp_path, 10)
    engine = Detector(SETTINGS, DatabaseProfileStore(sessions, trusted=DirectoryProfileStore(tmp_path)))
    engine.process_batch(_traffic(rng, range(60), 1, 0.0, 1_000.0))
    assert engine.profile_in_use("m").version == trusted.version and _versions(sessions) == [1, 2]

    newer = _trusted_file(tmp_path, 11)
    assert newer.version != trusted.version
    engine = Detector(SETTINGS, DatabaseProfileStore(sessions, trusted=DirectoryProfileStore(tmp_path)))
    engine.process_batch(_traffic(rng, range(60), 1, 0.0, 2_000.0))
    assert engine.profile_in_use("m").version == newer.version and _versions(sessions) == [1, 2, 3]
