"""A reference's answers: label-only clients beside scored ones (a warm-up, a served sample),
string labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from querywatch.detector.adapters.files import read_reference_file
from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import build_profile, profile_from_warmup
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
    assert not label_only.calibration.boundary_rates


def test_string_labels_give_the_profile_integer_labels_give() -> None:
    numbered = profile_from_warmup(_warmup({3}), SETTINGS)
    named = profile_from_warmup(_warmup({3}, named=True), SETTINGS)
    assert named.classes == tuple(f"class-{c}" for c in numbered.classes)
    assert named.calibration == numbered.calibration
    assert np.array_equal(named.class_prior, numbered.class_prior)
    assert named.extraction is not None and numbered.extraction is not None
    assert np.array_equal(named.extraction.labels, numbered.extraction.labels)


def test_a_served_sample_with_label_only_lines_keeps_the_others_scores(tmp_path: Path) -> None:
    """``querywatch profile --served`` on logged events, a few of them label-only."""
    events = _warmup({3, 17})
    path = tmp_path / "served.jsonl"
    with path.open("w") as f:
        for e in events:
            prediction: dict[str, object] = {"label": e.label}
            if e.scores is not None:
                prediction["scores"] = e.scores.tolist()
            f.write(json.dumps({"input": e.input.tolist(), "prediction": prediction}) + "\n")
    X, labels, scores = read_reference_file(path)
    assert labels is not None and scores is not None
    assert int(np.isnan(scores[:, 0]).sum()) == sum(e.scores is None for e in events)
    profile = build_profile(X, model_id="risk", settings=SETTINGS, labels=labels, scores=scores)
    assert profile.margin_threshold > 0 and profile.calibration is not None
    assert profile.calibration.boundary_rates
