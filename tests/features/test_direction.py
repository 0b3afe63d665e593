import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from querywatch.features.direction import RecentDirections, along_span, direction_simhash


def _bits(x: int) -> int:
    return int(x).bit_count()


@given(st.lists(st.integers(20, 200), min_size=20, max_size=20), st.integers(2, 30), st.integers(2, 30))
@settings(max_examples=50, deadline=None)
def test_steps_along_one_line_share_their_simhash_either_way(values: list[int], a: int, b: int) -> None:
    x = np.array(values, dtype=np.uint8)
    mask = np.arange(20) < 6
    y, z = (x + a * mask).astype(np.uint8), (x + b * mask).astype(np.uint8)
    assert direction_simhash(x, y) == direction_simhash(x, z)
    assert _bits(direction_simhash(x, y) ^ direction_simhash(y, x)) == 63


def test_unrelated_directions_are_about_orthogonal() -> None:
    rng = np.random.default_rng(0)
    x = np.full(64, 128, dtype=np.uint8)
    differ = [
        _bits(
            direction_simhash(x, (x + rng.integers(-20, 21, 64)).astype(np.uint8))
            ^ direction_simhash(x, (x + rng.integers(-20, 21, 64)).astype(np.uint8))
        )
        for _ in range(200)
    ]
    assert 25 <= float(np.mean(differ)) <= 38


def test_recent_directions_forget_the_oldest_and_round_trip() -> None:
    r = RecentDirections(slots=2)
    a, b, c = 0, (1 << 20) - 1, ((1 << 40) - 1) ^ ((1 << 20) - 1)
    assert not r.seen_before(a)
    assert not r.seen_before(b)
    assert not r.seen_before(c)  # evicts a
    assert not r.seen_before(a)
    copy = RecentDirections(slots=2)
    copy.set_state(r.get_state())
    assert copy.seen_before(a) and copy.seen_before(c) and not copy.seen_before(b)


def test_a_sweep_moves_along_its_span_and_probes_around_a_point_move_across_it() -> None:
    rng = np.random.default_rng(3)
    start = np.full(16, 60, dtype=np.uint8)
    line = np.zeros(16, dtype=np.int64)
    line[:2] = 6  # one what-if sweep: two fields, equal steps
    points = [(start + k * line).astype(np.uint8) for k in range(1, 6)]
    assert all(along_span(a, b, start) for a, b in itertools.pairwise(points))
    # Probes scattered around one point at the end of a bisection from ``start``.
    edge = (start + 5 * line + 40).astype(np.uint8)
    probes = [(edge + rng.integers(-5, 6, 16)).astype(np.uint8) for _ in range(20)]
    across = [not along_span(a, b, start) for a, b in itertools.pairwise(probes)]
    assert np.mean(across) > 0.8


def test_a_move_within_rounding_has_no_direction_of_its_own() -> None:
    start = np.full(64, 100, dtype=np.uint8)
    last = (start + 30).astype(np.uint8)
    jitter = last.copy()
    jitter[::2] += 1  # a brightness step of half a code unit, rounded
    assert along_span(last, jitter, start)


def test_on_a_plane_only_a_move_of_one_input_is_a_sweeps() -> None:
    """Every move of a point in a plane moves at most two inputs. Taken for what-if sweeps,
    with a recent direction within 20 degrees of most, nearly every uniform-random query on
    a two-input model was a revisit, which adds no out-of-profile or far evidence; a sweep of
    one input of a record still is one."""
    from querywatch.features.direction import is_sparse_move
    from querywatch.features.distance import QueryDistances

    a = np.array([40, 200], np.uint8)
    assert is_sparse_move(a, np.array([90, 200], np.uint8))
    assert not is_sparse_move(a, np.array([90, 150], np.uint8))
    assert is_sparse_move(np.array([40, 200, 7], np.uint8), np.array([90, 150, 7], np.uint8))
    rng = np.random.default_rng(0)
    random = QueryDistances(2, seed=1)
    revisits = sum(
        random.update(code, input_hash=i + 1, label=0)[2]
        for i, code in enumerate(rng.integers(0, 256, size=(500, 2), dtype=np.uint8))
    )
    assert revisits <= 100, revisits  # 491 of 500 when any move of both was a sweep's
    sweep = QueryDistances(2, seed=1)
    record = np.array([120, 60], np.uint8)
    points = [np.array([v, record[1]], np.uint8) for v in np.linspace(10, 250, 25).astype(np.uint8)]
    assert sum(sweep.update(p, input_hash=i + 1, label=0)[2] for i, p in enumerate(points)) >= 20
