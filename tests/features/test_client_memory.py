"""A client costs memory for what it sent, not for what it might send: a million clients of
a few queries each must fit (the reservoir grows as it fills, constants are shared)."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from querywatch.features.direction import RecentDirections
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


class _Bloom:
    """The resend filter as two plain 2,048-bit bitsets (what ``ExactResendFilter`` stores)."""

    def __init__(self, rotate_every: int) -> None:
        self.rotate_every, self.current, self.previous, self.inserted = rotate_every, 0, 0, 0

    def seen_before(self, h: int) -> bool:
        mask = 0
        for shift in (0, 11, 22, 33):
            mask |= 1 << (h >> shift & 2047)
        if self.current & mask == mask or self.previous & mask == mask:
            return True
        self.current |= mask
        self.inserted += 1
        if self.inserted >= self.rotate_every:
            self.previous, self.current, self.inserted = self.current, 0, 0
        return False


@pytest.mark.parametrize("rotate_every", [4, 40, 256])
def test_a_sparse_resend_filter_answers_as_its_bitset_would_and_stores_the_bitset(rotate_every: int) -> None:
    rng = np.random.default_rng(rotate_every)
    fresh = rng.integers(0, 1 << 63, size=600).tolist()
    sent = [fresh[i] if rng.random() < 0.6 else fresh[int(rng.integers(0, i + 1))] for i in range(600)]
    f, bloom = ExactResendFilter(rotate_every), _Bloom(rotate_every)
    small = None
    for i, h in enumerate(sent):
        assert f.seen_before(h) == bloom.seen_before(h)
        current, previous, inserted = f.get_state()
        assert int.from_bytes(current, "little") == bloom.current and inserted == bloom.inserted
        assert int.from_bytes(previous, "little") == bloom.previous
        if i == 2:
            small = len(f._current)  # three inputs: their bits, not 256 bytes
        if i % 97 == 0:  # a restored filter answers the same
            restored = ExactResendFilter(rotate_every)
            restored.set_state(f.get_state())
            f = restored
    assert small is not None and small <= 24


def test_recent_directions_grow_as_they_come_and_store_the_full_ring() -> None:
    r = RecentDirections(slots=3)
    assert len(r._ring) == 0 and r.get_state() == (array("q", [-1, -1, -1]).tobytes(), 0)
    for signature in (0xFF, 0xFF << 20, 0xFF << 40, 0xFF << 50):
        assert not r.seen_before(signature)
    assert r.get_state() == (array("q", [0xFF << 50, 0xFF << 20, 0xFF << 40]).tobytes(), 1)
    half = RecentDirections(slots=3)
    half.seen_before(0xFF)
    restored = RecentDirections(slots=3)
    restored.set_state(half.get_state())  # as a full-size ring with an empty slot stored
    for r2 in (half, restored):
        assert not r2.seen_before(0xFF << 20) and not r2.seen_before(0xFF << 40)
        assert r2.seen_before(0xFF) and r2.get_state() == half.get_state()


def test_a_client_keeps_one_model_without_a_dict_and_its_second_model_in_one() -> None:
    from querywatch.detector.engine.clientstate import ClientState
    from querywatch.detector.engine.detector import Detector
    from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
    from tests.detector.test_engine import DIM, SETTINGS, _benign, _events

    rng = np.random.default_rng(0)
    profiles = [build_profile(_benign(rng, 3000), model_id=m, settings=SETTINGS) for m in ("m", "m2")]
    engine = Detector(SETTINGS, MemoryProfileStore(profiles))
    X = rng.normal(size=(9, DIM))
    engine.process_batch(_events("one", X[:3]) + _events("two", X[:3]) + _events("two", X[3:5], 10.0, "m2"))
    engine.process_batch(_events("two", X[5:], 20.0))
    one, two = engine._clients["one"], engine._clients["two"]
    assert isinstance(one, ClientState) and one["m"] is one and one.queries == 3
    assert isinstance(two, dict) and (two["m"].queries, two["m2"].queries) == (7, 2)
    for client_id in ("one", "two"):
        again = Detector(SETTINGS, MemoryProfileStore(profiles))
        again.import_client(client_id, engine.export_client(client_id))
        assert type(again._clients[client_id]) is type(engine._clients[client_id])
        assert again.export_client(client_id) == engine.export_client(client_id)


def test_cell_and_class_counts_take_a_byte_each_until_one_passes_255() -> None:
    from querywatch.features.classes import ClassMix
    from querywatch.features.coverage import CellCoverage

    p = np.full(4, 0.25)
    cov, mix = CellCoverage(p, np.arange(1.0, 400.0)), ClassMix(p)
    visits = [0] * 300 + [1, 2, 1]
    for cell in visits:
        cov.update(cell)
        mix.update(cell)
    expected = np.bincount(visits, minlength=4)
    assert cov._counts.typecode == "H" and mix._counts.typecode == "I"
    assert cov.get_state() == expected.astype(np.uint16).tobytes()
    assert mix.get_state() == expected.astype(np.uint32).tobytes()
    assert (cov.distinct, cov.n) == (3, 303)
    small = CellCoverage(p, np.arange(1.0, 400.0))
    small.set_state(np.array([7, 0, 255, 1], np.uint16).tobytes())  # as stored: uint16
    assert (
        small._counts.typecode == "B" and small.get_state() == np.array([7, 0, 255, 1], np.uint16).tobytes()
    )
    small.update(2)
    assert small._counts.tolist() == [7, 0, 256, 1] and small.entropy > 0


@pytest.mark.parametrize("cells", [4, 64, 300])
def test_cell_visits_are_kept_as_bytes_until_they_would_outgrow_the_counts(cells: int) -> None:
    from querywatch.features.coverage import CellCoverage, entropy_bits, kl_bits

    rng = np.random.default_rng(cells)
    p = rng.dirichlet(np.ones(cells))
    expected = np.cumsum(np.ones(cells * 3))
    cov = CellCoverage(p, expected)
    counts = np.zeros(cells, np.int64)
    for i, cell in enumerate(rng.integers(0, cells, size=2 * cells + 5).tolist()):
        new = counts[cell] == 0
        counts[cell] += 1
        assert cov.update(cell) == new
        assert isinstance(cov._counts, bytes) == (cells <= 256 and i + 1 <= cells)
        assert cov.get_state() == counts.astype(np.uint16).tobytes()
        assert cov.entropy == entropy_bits(counts.astype(np.uint16))
        assert cov.divergence == kl_bits(counts.astype(np.uint16), p)
        restored = CellCoverage(p, expected)
        restored.set_state(cov.get_state())
        assert (restored.get_state(), restored.distinct, restored.n) == (cov.get_state(), cov.distinct, cov.n)
        assert type(restored._counts) is type(cov._counts)


def test_clients_share_a_blank_boundary_estimate_and_directions_until_they_have_their_own() -> None:
    from querywatch.features.client import ClientFeatures, ProfileLimits

    def client(seed: int) -> ClientFeatures:
        p = np.full(4, 0.25)
        return ClientFeatures(
            dim=4, cell_prob=p, expected_cells=np.arange(1.0, 50.0),
            class_prior=p, limits=ProfileLimits(0.1), seed=seed,
        )  # fmt: skip

    a, b = client(1), client(2)
    blank = {name: getattr(a, name).get_state() for name in ("boundary", "extraction")}
    code = np.array([10, 10, 10, 10], np.uint8)
    for i in range(3):  # labels only, far apart: no scores, no directions
        a.update(float(i), i, False, False, code + 60 * i, i + 1, 0, float("nan"), float("nan"))
    assert a.boundary is b.boundary and a.extraction is b.extraction
    assert a.distances._directions is b.distances._directions
    a.update(9.0, 0, False, False, code + 121, 99, 0, 0.01, 0.5)  # a scored answer, a near move
    assert a.boundary is not b.boundary and (a.boundary.count, a.boundary.scored) == (1, 1)
    assert a.distances._directions is not b.distances._directions
    assert {name: getattr(b, name).get_state() for name in blank} == blank  # the shared ones stay blank
    restored = client(1)
    restored.set_state(a.get_state())
    assert restored.get_state() == a.get_state() and restored.boundary is not b.boundary
