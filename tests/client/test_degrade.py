"""Every degrade mode keeps the answer's top class (property-based)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from querywatch.detector.client.degrade import degrade_prediction, top_index

SCORES = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=2, max_size=20)


@given(SCORES, st.floats(min_value=0.0, max_value=1.0), st.integers(0, 2**32 - 1))
def test_noise_never_changes_the_top_class_and_stays_a_distribution(
    scores: list[float], noise: float, seed: int
) -> None:
    got = degrade_prediction({"scores": scores}, "noise", noise=noise, rng=random.Random(seed))["scores"]
    assert top_index(got) == top_index(scores)
    assert all(v >= 0 for v in got)
    assert abs(sum(got) - 1.0) < 1e-9


@given(SCORES, st.integers(0, 4))
def test_rounding_and_top1_keep_the_label(scores: list[float], precision: int) -> None:
    label = top_index(scores)
    rounded = degrade_prediction({"label": label, "scores": scores}, "round", precision=precision)
    assert rounded["label"] == label
    assert all(v == round(v, precision) for v in rounded["scores"])
    assert degrade_prediction({"scores": scores}, "top1") == {"label": label}
