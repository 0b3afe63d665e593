"""A reference's answers: label-only clients beside scored ones (a warm-up, a served sample),
string labels."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from querywatch.detector.adapters.files import read_reference_file, read_served_events
from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import profile_from_warmup
from querywatch.detector.errors import ProfileError
from querywatch.detector.simulate.victim import load_tabular_victim

SETTINGS = DetectionSettings(warmup_events=2000, warmup_per_client=40, codebook_size=16, pca_components=8)


def _warmup(label_only: set[int], named: bool = False) -> list[Event]:
    """50 clients of 40 natural queries of the simulator's tabular victim; ``label_only``
    clients get labels without scores, and ``named`` labels are strings."""
    victim = load_tabular_victim()
    rng = np.random.default_rng(0)
    served = victim.serve(victim.holdout[rng.integers(0, len(victim.holdout), 2000)])
    events = []
    for i, (x, label, scores) in enumerate(zip(served.inputs, served.labels, served.scores, strict=True)):
        client = i % 50
        answer: int | str = f"class-{label}" if named else int(label)
        events.append(
            Event(
                f"r{i}", float(i), f"c{client}", "risk", x, answer, None if client in label_only else scores
            )
        )
    return events


def test_a_label_only_client_in_the_warm_up_leaves_the_boundary_test_to_the_others() -> None:
    scored = profile_from_warmup(_warmup(set()), SETTINGS)
    mixed = profile_from_warmup(_warmup({3, 17}), SETTINGS)
    label_only = profile_from_warmup(_warmup(set(range(50))), SETTINGS)
    assert scored.margin_threshold > 0 and scored.calibration is not None
    assert mixed.calibration is not None and mixed.calibration.boundary_rates
    # Two clients' answers aside, the boundary is where the others' answers put it.
    assert abs(mixed.margin_threshold - scored.margin_threshold) <= 0.5 * scored.margin_threshold
    assert label_only.margin_threshold == 0.0 and label_only.calibration is not None
    assert not any(label_only.calibration.boundary_rates)
    # Labels only: the confidence test ranks answers by their neighbours' labels instead.
    assert mixed.label_neighbours is not None and mixed.label_neighbours.rank_margins
    assert label_only.label_neighbours is not None and not label_only.label_neighbours.rank_margins
    assert label_only.calibration.rank_margins


def test_string_labels_give_the_profile_integer_labels_give() -> None:
    numbered = profile_from_warmup(_warmup({3}), SETTINGS)
    named = profile_from_warmup(_warmup({3}, named=True), SETTINGS)
    assert named.classes == tuple(f"class-{c}" for c in numbered.classes)
    assert named.calibration == numbered.calibration
    assert np.array_equal(named.class_prior, numbered.class_prior)
    assert named.extraction is not None and numbered.extraction is not None
    assert np.array_equal(named.extraction.labels, numbered.extraction.labels)


def _event_line(e: Event, **fields: object) -> str:
    prediction: dict[str, object] = {"label": e.label}
    if e.scores is not None:
        prediction["scores"] = e.scores.tolist()
    obj = {"request_id": e.request_id, "ts": e.ts, "client_id": e.client_id, "model_id": e.model_id}
    return json.dumps(obj | {"input": e.input.tolist(), "prediction": prediction} | fields) + "\n"


def test_a_served_sample_is_profiled_as_its_warm_up_would_be(tmp_path: Path) -> None:
    """``querywatch profile --served`` on logged events, a few of them label-only, beside
    another model's: the profile of the model's events is the one a warm-up of them gives."""
    events = _warmup({3, 17})
    path = tmp_path / "served.jsonl"
    with path.open("w") as f:
        for e in events:
            f.write(_event_line(e))
            f.write(_event_line(e, model_id="other", request_id=f"x{e.request_id}"))
    sample = read_served_events(path, "risk", SETTINGS.model_copy(update={"warmup_per_client": 30}))
    assert sample.other_models == sample.read == len(events) == 50 * 40
    assert len(sample.events) == 50 * 30 and sample.events[-1].request_id == f"r{30 * 50 - 1}"
    everything = read_served_events(path, "risk", SETTINGS)
    assert [e.request_id for e in everything.events] == [e.request_id for e in events]
    packed = tmp_path / "served.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    unpacked = read_served_events(packed, "risk", SETTINGS)
    assert [e.request_id for e in unpacked.events] == [e.request_id for e in events]
    rows, rows_packed = read_reference_file(path, "risk"), read_reference_file(packed, "risk")
    assert np.array_equal(rows.inputs, rows_packed.inputs) and rows.labels == rows_packed.labels
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(packed.read_bytes()[:-100])
    with pytest.raises(ProfileError, match="cut short"):
        read_served_events(cut, "risk", SETTINGS)
    profile = profile_from_warmup(everything.events, SETTINGS)
    assert profile.margin_threshold > 0 and profile.calibration is not None
    assert profile.calibration.boundary_rates
    assert profile.to_bytes() == profile_from_warmup(events, SETTINGS).to_bytes()


def test_lines_of_a_served_log_that_are_no_event_are_skipped_and_counted(tmp_path: Path) -> None:
    """Logs hold a few broken lines (a write cut short, an input of the wrong width, a NaN
    score); a day of them is profiled as the pipeline reads them, each such line skipped and
    counted by reason, the first of each named by line."""
    events = _warmup(set())
    lines = [_event_line(e) for e in events]
    lines[3] = lines[3][: len(lines[3]) // 2] + "\n"
    lines[5] = _event_line(events[5], input=[0.5, 0.5])
    lines[9] = _event_line(events[9], input=[0.5, 0.5])
    path = tmp_path / "served.jsonl"
    path.write_text("".join(lines))
    sample = read_served_events(path, "risk", SETTINGS)
    assert sample.read == len(events) - 3
    assert sample.invalid == {"not_json": 1, "wrong_dimension": 2}
    assert sample.first_invalid["wrong_dimension"][0] == 6
    assert sample.first_invalid["not_json"][0] == 4 and "cut short" in sample.first_invalid["not_json"][1]


def test_rows_answered_offline_are_no_served_sample(tmp_path: Path) -> None:
    """A training split with the model's answers (no client ids) is refused with ``--served``,
    by line, and read as a trusted reference without it."""
    events = _warmup(set())
    path = tmp_path / "train.jsonl"
    path.write_text(
        "".join(
            json.dumps({"input": e.input.tolist(), "prediction": {"label": e.label}}) + "\n" for e in events
        )
    )
    missing = "line 1: 'request_id', 'ts', 'client_id' and 'model_id' are required"
    with pytest.raises(ProfileError, match=missing) as refused:
        read_served_events(path, "risk", SETTINGS)
    assert refused.value.hint is not None and "leave out --served" in refused.value.hint
    rows = read_reference_file(path, "risk")
    assert rows.inputs.shape == (len(events), len(events[0].input)) and rows.labels is not None
    np.save(tmp_path / "train.npy", rows.inputs)
    with pytest.raises(ProfileError, match="logged events"):
        read_served_events(tmp_path / "train.npy", "risk", SETTINGS)


def test_a_served_sample_of_two_widths_or_of_other_models_is_refused(tmp_path: Path) -> None:
    events = _warmup(set())[:3]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(
        _event_line(events[0], input=[0.5, 0.5]) + _event_line(events[1]) + _event_line(events[2])
    )
    with pytest.raises(
        ProfileError, match=r"more than one width \(line 2: \d+ inputs, where the model's first"
    ):
        read_served_events(mixed, "risk", SETTINGS)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(_event_line(e) for e in events))
    with pytest.raises(ProfileError, match=r"no event of model 'credit' \(3 of other models\)"):
        read_served_events(other, "credit", SETTINGS)


def test_a_reference_file_of_several_models_keeps_the_one_asked_for(tmp_path: Path) -> None:
    """Logs of a serving tier hold every model's events: lines naming another model are
    skipped and counted, lines naming none are kept, and rows of two widths name the line."""
    events = _warmup(set())[:4]
    path = tmp_path / "logs.jsonl"
    path.write_text(
        _event_line(events[0])
        + _event_line(events[1], model_id="challenger", input=[0.5, 0.5])
        + json.dumps({"input": events[2].input.tolist()})
        + "\n"
        + _event_line(events[3], model_id="challenger")
    )
    rows = read_reference_file(path, "risk")
    assert rows.other_models == 2 and len(rows.inputs) == 2
    assert np.array_equal(rows.inputs[1], events[2].input)
    with pytest.raises(ProfileError, match="line 2: 2 inputs, where the first row has"):
        read_reference_file(path)
    assert len(read_reference_file(path, "m").inputs) == 1  # the line naming no model
    challenger = tmp_path / "challenger.jsonl"
    challenger.write_text(_event_line(events[3], model_id="challenger"))
    with pytest.raises(ProfileError, match=r"no line of model 'risk' \(1 of other models\)"):
        read_reference_file(challenger, "risk")
    table = tmp_path / "rows.csv"
    table.write_text("a,b,c\n1,2,3\n4,5\n")
    with pytest.raises(ProfileError, match="line 3: 2 values, where line 2 has 3"):
        read_reference_file(table)
    table.write_text("a,b\n1,2\n3,n/a\n")
    with pytest.raises(ProfileError, match=r"line 3, column 2: 'n/a' is not a number$"):
        read_reference_file(table)
    # A column of ids (or names, or categories) in every row is no input: said so, by name.
    table.write_text("id,b\nrow-1,2\nrow-2,3\n")
    with pytest.raises(ProfileError, match=r"'row-1' is not a number; column 1 \('id'\) holds no number"):
        read_reference_file(table)


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('{"input": [1, 2], "prediction": [0.1]}', "line 1: 'prediction' must be an object"),
        ("[1, 2]", "line 1: not a JSON object"),
        ('{"x": 1}', "line 1: no 'input' field"),
        ('{"input": [1, true]}', "line 1: 'input' must be an array of numbers, not true or false"),
        ('{"input": [1, 2]', "line 1: Expecting ','"),
    ],
)
def test_a_reference_line_that_is_no_row_is_named(tmp_path: Path, line: str, said: str) -> None:
    path = tmp_path / "refs.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ProfileError, match=re.escape(said)):
        read_reference_file(path)


def test_a_reference_file_of_one_score_an_answer_reads_as_two(tmp_path: Path) -> None:
    """A two-class model's reference answers logged as one number (the second class's
    probability, or with ``logits`` its logit) read as the two probabilities, and labels
    logged as true or false as 1 and 0, as live ones are; a number beyond [0, 1] is refused
    by line."""
    rows = [([0.1, 0.2], [0.75]), ([0.3, 0.4], 0.0)]  # the second not in an array
    path = tmp_path / "ref.jsonl"
    lines = ({"input": x, "prediction": {"label": p != 0.0, "scores": p}} for x, p in rows)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    read = read_reference_file(path)
    assert read.scores is not None and read.scores.tolist() == [[0.25, 0.75], [1.0, 0.0]]
    assert read.labels == [1, 0]  # true and false, as live events read them
    logits = read_reference_file(path, logits=True)
    assert logits.scores is not None and logits.scores[1].tolist() == [0.5, 0.5]
    path.write_text(json.dumps({"input": [0.1, 0.2], "prediction": {"scores": [2.0]}}) + "\n")
    with pytest.raises(ProfileError) as refused:
        read_reference_file(path)
    assert "line 1: 'prediction.scores' holds one number" in str(refused.value)
    assert "must lie in [0, 1]; got 2" in str(refused.value)
