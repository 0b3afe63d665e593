from __future__ import annotations

import numpy as np

from querywatch.detector.simulate.victim import CLASSES, DIM, load_victim


def test_victim_is_accurate_and_trained_once() -> None:
    victim = load_victim()
    assert victim is load_victim()
    assert victim.accuracy() > 0.9
    assert victim.natural.shape[1] == DIM
    assert victim.natural.min() >= 0.0 and victim.natural.max() <= 1.0


def test_serving_clips_and_rounds_like_a_real_tier() -> None:
    victim = load_victim()
    raw = np.random.default_rng(0).normal(0.5, 0.8, size=(20, DIM))
    served = victim.serve(raw)
    assert served.inputs.min() >= 0.0 and served.inputs.max() <= 1.0
    np.testing.assert_array_equal(served.inputs, np.round(served.inputs, 3))
    np.testing.assert_array_equal(served.scores, np.round(served.scores, 4))
    assert served.scores.shape == (20, CLASSES)
    np.testing.assert_allclose(served.scores.sum(axis=1), 1.0, atol=5e-3)
    np.testing.assert_array_equal(served.labels, served.scores.argmax(axis=1))


def test_serving_an_empty_batch() -> None:
    served = load_victim().serve(np.zeros((0, DIM)))
    assert served.inputs.shape == (0, DIM) and served.labels.shape == (0,)


def test_same_input_same_answer() -> None:
    victim = load_victim()
    x = victim.holdout[:5]
    np.testing.assert_array_equal(victim.serve(x).scores, victim.serve(x.copy()).scores)
