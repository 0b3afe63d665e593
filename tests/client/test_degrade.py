"""Every degrade mode keeps the answer's top class (property-based)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from querywatch.detector.client import Extractor
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


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(0, 2**32 - 1),
)
def test_one_score_stays_one_number_on_its_side_of_a_half(score: float, noise: float, seed: int) -> None:
    """A two-class model's one number (its second class's probability) is answered as one
    number, its class kept: renormalised alone it was always 1.0, and its top-1 label 0."""
    side = score > 0.5
    noisy = degrade_prediction({"scores": [score]}, "noise", noise=noise, rng=random.Random(seed))["scores"]
    assert len(noisy) == 1 and 0.0 <= noisy[0] <= 1.0 and (noisy[0] > 0.5) == side
    assert degrade_prediction({"scores": [score]}, "top1") == {"label": int(side)}
    assert degrade_prediction({"scores": [score]}, "round", precision=2)["scores"] == [round(score, 2)]


def test_a_one_score_list_is_degraded_as_one_number_and_a_bare_float_is_no_answer() -> None:
    """A two-class model answering ``{"predictions": [[0.83], [0.12]]}`` (a sigmoid output of
    shape [n, 1]): each answer is its one score, degraded as one number. A bare float could be
    a label (XGBoost's multi:softmax answers 1.0) or a probability: no answer is read from it."""
    extractor = Extractor("fraud-v1")
    assert extractor.prediction([0.83]) == {"scores": [0.83]} and extractor.prediction(3) == {"label": 3}
    assert extractor.prediction(1.0) is None
    response = {"predictions": [[0.83], [0.12]]}
    rounded = extractor.degrade(response, lambda p: degrade_prediction(p, "round", precision=1))
    assert rounded == {"predictions": [[0.8], [0.1]]}
    assert extractor.degrade(response, lambda p: degrade_prediction(p, "top1")) == {"predictions": [1, 0]}
