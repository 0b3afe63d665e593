"""A client costs memory for what it sent, not for what it might send: a million clients of
a few queries each must fit (the reservoir grows as it fills, constants are shared)."""

from __future__ import annotations

import numpy as np

from querywatch.features.resend import ExactResendFilter
from querywatch.features.reservoir import QueryReservoir
from querywatch.models.sequential import BernoulliCUSUM


def test_the_reservoir_grows_as_it_fills_and_keeps_the_same_sample() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, size=(100, 64), dtype=np.uint8)
    r = QueryReservoir(40, 64, seed=5)
    assert r.sample()[0].nbytes < 40 * 64 // 4
    kept = []
    for i, code in enumerate(codes):
        r.offer(code, label=i % 10)
        kept.append(r.sample()[0][: len(r)].copy())
    assert r.sample()[0].shape == (40, 64) and len(r) == 40
    # The rows kept are the ones a full-size reservoir keeps: Vitter's choices only depend on
    # the seed and the count, so the first 40 offers fill it in order.
    assert np.array_equal(kept[39], codes[:40])
    restored = QueryReservoir(40, 64, seed=5)
    half = QueryReservoir(40, 64, seed=5)
    for code in codes[:7]:
        half.offer(code)
    restored.set_state(half.get_state())
    assert restored.get_state() == half.get_state()
    for code in codes[7:60]:
        restored.offer(code)
        half.offer(code)
    assert restored.get_state() == half.get_state()
    assert restored.nearest(codes[3], 0) == half.nearest(codes[3], 0)


def test_new_resend_filters_share_their_empty_previous_filter_until_they_rotate() -> None:
    a, b = ExactResendFilter(rotate_every=4), ExactResendFilter(rotate_every=4)
    assert a._previous is b._previous
    for h in range(1, 5):
        assert not a.seen_before(h * 0x9E3779B97F4A7C15 % (1 << 63))
    assert a._previous is not b._previous and any(a._previous)
    assert a.seen_before(1 * 0x9E3779B97F4A7C15 % (1 << 63))  # remembered across the rotation


def test_tests_with_the_same_null_share_their_constants_not_their_statistic() -> None:
    a, b = BernoulliCUSUM(null_rate=0.05), BernoulliCUSUM(null_rate=0.05)
    assert a._yes is b._yes and a._no is b._no
    a.learn_one(True)
    assert a.statistic > 0 and b.statistic == 0


def test_the_clients_of_a_model_share_its_evidence_tests_and_keep_only_their_floats() -> None:
    from tests.detector.test_engine import DIM, _events, _profiled_engine

    engine = _profiled_engine()
    rng = np.random.default_rng(4)
    engine.process_batch(
        _events("a", rng.uniform(-1, 2, size=(30, DIM))) + _events("b", rng.normal(size=(3, DIM)))
    )
    a, b = engine._clients["a"]["m"].evidence, engine._clients["b"]["m"].evidence
    assert a._tests is b._tests
    assert type(a._s) is list and len(a._s) == a._tests.width
    assert a.statistics() != b.statistics()
