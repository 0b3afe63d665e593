"""Unit tests of the per-client feature families."""

from __future__ import annotations

import pickle

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from querywatch.features.client import ClientFeatures, ProfileLimits
from querywatch.features.coverage import CellCoverage
from querywatch.features.distance import QueryDistances
from querywatch.features.jit import compiled
from querywatch.features.layout import RECENT_QUERIES
from querywatch.features.nearest import MIN_STEP, STEP_CANDIDATES, is_structured_step, nearest_code
from querywatch.features.rate import QueryRate
from querywatch.features.resend import ExactResendFilter, input_hashes
from querywatch.features.reservoir import QueryReservoir


def _codes(rng: np.random.Generator, n: int, dim: int = 64) -> np.ndarray:
    return rng.integers(0, 256, size=(n, dim)).astype(np.uint8)


def test_reservoir_is_deterministic_and_bounded() -> None:
    rng = np.random.default_rng(0)
    codes = _codes(rng, 500)
    a, b = QueryReservoir(40, 64, seed=3), QueryReservoir(40, 64, seed=3)
    for c in codes:
        a.offer(c)
        b.offer(c)
    assert len(a) == 40 and a.seen == 500
    assert a.get_state() == b.get_state()


def test_reservoir_sample_is_uniform_over_history() -> None:
    kept = []
    for seed in range(100):
        r = QueryReservoir(10, 2, seed=seed)
        for i in range(1000):
            r.offer(np.array([i // 256, i % 256], dtype=np.uint8))
        rows = np.frombuffer(r.get_state()[1], dtype=np.uint8).reshape(-1, 2).astype(int)
        kept.extend((rows[:, 0] * 256 + rows[:, 1]).tolist())
    assert len(kept) == 1000
    assert 450 < np.mean(kept) < 550  # uniform over 0..999 has mean 499.5
    assert np.mean(np.array(kept) < 500) > 0.4


def test_reservoir_state_round_trip_keeps_nearest_answers() -> None:
    rng = np.random.default_rng(1)
    r = QueryReservoir(8, 16, seed=1)
    for c in _codes(rng, 30, 16):
        r.offer(c, label=int(c[0] % 3))
    restored = QueryReservoir(8, 16, seed=1)
    restored.set_state(pickle.loads(pickle.dumps(r.get_state())))
    for q in _codes(rng, 20, 16):
        assert r.nearest(q, int(q[0] % 3)) == restored.nearest(q, int(q[0] % 3))
    assert restored.labels.tolist() == r.labels.tolist()


@given(st.integers(1, 40), st.integers(1, 64), st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_nearest_code_agrees_with_a_brute_force_search(filled: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes, labels = _codes(rng, 40, dim), rng.integers(0, 4, 40).astype(np.uint8)
    code, label = _codes(rng, 1, dim)[0], int(rng.integers(0, 4))
    d2 = ((codes[:filled].astype(np.int64) - code.astype(np.int64)) ** 2).sum(axis=1)
    same = d2[labels[:filled] == label]
    expected = (int(d2.argmin()), int(d2.min()), int(same.min()) if len(same) else -1, -1)
    # As a reservoir lays them out: spare rows, the codes, then their labels.
    flat = np.concatenate([_codes(rng, 2, dim).reshape(-1), codes.reshape(-1), labels])
    assert nearest_code(flat, 2 * dim, 40, filled, code, label, 0, filled, RECENT_QUERIES) == expected


def _step_reference(a: np.ndarray, b: np.ndarray, min_changed: int = 3) -> bool:
    """The structured-step rule written with numpy, as a second opinion on the compiled one."""
    mags = np.abs(b.astype(np.int64) - a.astype(np.int64))
    changed = mags[mags > 1]
    if changed.size < max(min_changed, a.size // 8):
        return False
    counts = np.bincount(changed, minlength=MIN_STEP + 2)
    window = (counts[:-2] + counts[1:-1] + counts[2:])[MIN_STEP - 1 :]  # centres MIN_STEP, ...
    mode = int(window.argmax()) + MIN_STEP
    if not (window.max() >= 0.6 * changed.size and mode <= 64):
        return False
    content = (a != np.bincount(a, minlength=256).argmax()) | (b != np.bincount(b, minlength=256).argmax())
    return bool(2 * np.count_nonzero(mags[content] > mode + 1) <= np.count_nonzero(content))


@given(st.integers(1, 120), st.integers(0, 2**32 - 1))
@settings(max_examples=80, deadline=None)
def test_step_parent_agrees_with_a_brute_force_search(offered: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dim = 12
    code = _codes(rng, 1, dim)[0]
    # Rows near the query, some a structured step from it, some not, through a reservoir that
    # fills (row i is query i + 1) or replaces rows (a ring says which were written recently).
    reservoir = QueryReservoir(40, dim, seed=seed % 7)
    for _ in range(offered):
        moves = rng.choice([-8, 0, 8], size=dim) + rng.integers(-3, 4, size=dim) * (rng.random() < 0.5)
        reservoir.offer(np.clip(code.astype(np.int64) + moves, 0, 255).astype(np.uint8))
    codes, _, filled = reservoir.sample()
    d2 = ((codes[:filled].astype(np.int64) - code.astype(np.int64)) ** 2).sum(axis=1)
    limit = int(np.median(d2))
    within = [int(i) for i in np.argsort(d2, kind="stable") if 0 < d2[i] <= limit]
    order = within[:1] + [i for i in within[1:] if not reservoir.recent(i)][: STEP_CANDIDATES - 1]
    expected = next((i for i in order if is_structured_step(codes[i], code)), -1) if d2.min() > 0 else -1
    assert reservoir.nearest(code, 0, limit)[3] == expected


def test_a_child_is_a_step_though_another_record_lies_nearer_than_its_parent() -> None:
    # A dense, narrow input: the child of a sign step lies 10 code units from its parent on
    # every feature, while an unrelated record lies nearer, with varied differences.
    rng = np.random.default_rng(4)
    parent = np.full(8, 120, dtype=np.uint8)
    child = (parent.astype(np.int64) + 10 * rng.choice([-1, 1], 8)).astype(np.uint8)
    decoy = (child.astype(np.int64) + np.array([1, -6, 3, 0, 7, -2, 4, -5])).astype(np.uint8)
    qd = QueryDistances(dim=8, seed=0)
    for i, row in enumerate((parent, decoy)):
        qd.update(row, input_hash=i, label=0)
    for i in range(40):  # the parent is no longer recent
        qd.update(_codes(rng, 1, 8)[0], input_hash=100 + i, label=0)
    qd.update(child, input_hash=2, label=0)
    qd.update(_codes(rng, 1, 8)[0], input_hash=3, label=0)  # confirms the step: another direction
    assert qd.steps == 1


def test_a_common_amount_within_rounding_noise_is_no_step() -> None:
    # A near-identical record with fresh noise: many features moved by 2-4 code units.
    a = np.full(20, 100, dtype=np.uint8)
    noise = np.array([2, -3, 4, 3, -2, 0, 3, -4, 2, 0, 3, 2, -3, 0, 4, 2, 0, -2, 3, 0])
    steps = np.array([5, -5, 5, 6, -4, 0, 5, -5, 5, 0, 5, 5, -5, 0, 5, 5, 0, -5, 5, 0])
    noisy, stepped = (100 + noise).astype(np.uint8), (100 + steps).astype(np.uint8)
    assert not is_structured_step(a, noisy)
    assert is_structured_step(a, stepped)


@given(st.integers(0, 2**32 - 1), st.integers(0, 60), st.floats(0, 12))
@settings(max_examples=200, deadline=None)
def test_structured_step_agrees_with_a_numpy_reference(seed: int, step: int, noise: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, 64).astype(np.int64)
    moved = rng.random(64) < rng.uniform(0.05, 1.0)
    b = a + moved * rng.choice([-step, step], 64) + rng.normal(0, noise, 64).round().astype(np.int64)
    a8, b8 = a.astype(np.uint8), np.clip(b, 0, 255).astype(np.uint8)
    assert is_structured_step(a8, b8) == _step_reference(a8, b8)


def test_input_hashes_tell_equal_inputs_from_different_ones() -> None:
    rng = np.random.default_rng(3)
    # Whole numbers and halves have few significant bits: the hash must still spread them.
    rows = np.vstack([rng.integers(0, 256, (5000, 64)), rng.integers(0, 4, (5000, 64)) / 2.0])
    rows[-1] = rows[0]
    hashes = input_hashes(rows, 7)
    distinct_rows = len({r.tobytes() for r in rows})
    assert distinct_rows == 9999 and len(set(hashes.tolist())) == distinct_rows
    assert input_hashes(rows[:3].copy(), 7).tolist() == hashes[:3].tolist()
    assert not set(input_hashes(rows[:100], 8).tolist()) & set(hashes.tolist())  # another key, other hashes
    for shift in (0, 11, 22, 33):  # the four Bloom-filter positions
        positions = ((hashes[:9999] >> np.uint64(shift)) & np.uint64(2047)).astype(np.int64)
        assert np.bincount(positions, minlength=2048).max() < 20  # about 5 per position expected


def test_fresh_inputs_are_rarely_mistaken_for_resends() -> None:
    # A fresh query taken for a resend is invisible to the evidence tests.
    f = ExactResendFilter()
    hashes = input_hashes(np.random.default_rng(4).random((5000, 64)), 99).tolist()
    mistaken = sum(f.seen_before(h) for h in hashes[1000:])
    assert mistaken / 4000 < 0.03


def test_resend_filter_remembers_recent_and_forgets_old() -> None:
    f = ExactResendFilter(rotate_every=10)
    first, *others = input_hashes(np.arange(41, dtype=np.float64)[:, None], 0).tolist()
    assert not f.seen_before(first)
    assert f.seen_before(first)
    for h in others:
        f.seen_before(h)
    assert not f.seen_before(first)  # rotated out after 2 * rotate_every inserts


def test_sign_steps_are_structured_and_noise_is_not() -> None:
    rng = np.random.default_rng(2)
    base = rng.integers(30, 220, size=64).astype(np.int16)
    signs = rng.choice([-1, 1], size=64)
    stepped = np.clip(base + 25 * signs, 0, 255).astype(np.uint8)
    assert is_structured_step(base.astype(np.uint8), stepped)
    hits = sum(
        is_structured_step(
            base.astype(np.uint8), np.clip(base + rng.normal(0, 10, 64), 0, 255).astype(np.uint8)
        )
        for _ in range(200)
    )
    assert hits <= 2


def test_two_sparse_records_whose_blanks_differ_by_one_amount_are_no_step() -> None:
    """Two digits of one cell: most pixels blank in both, the strokes elsewhere. Raise one's
    blank pixels a few code units (a brightness sweep) and every blank pixel moves by that
    amount, yet the strokes, where the records differ, move far: not a step. A sign step
    from the same digit, or a sibling of it, moves its strokes by the step too."""
    rng = np.random.default_rng(5)

    def digit(strokes: np.ndarray) -> np.ndarray:
        image = np.zeros(64, dtype=np.int16)
        image[strokes] = rng.integers(60, 256, size=len(strokes))
        return image

    for _ in range(50):
        strokes = rng.choice(64, size=14, replace=False)  # one cell: the same shape, drawn twice
        one, other = digit(strokes), digit(strokes)
        brightened = np.clip(one + 8, 0, 255).astype(np.uint8)
        assert not is_structured_step(other.astype(np.uint8), brightened)
        child = np.clip(one + 25 * rng.choice([-1, 1], size=64), 0, 255).astype(np.uint8)
        sibling = np.clip(one + 25 * rng.choice([-1, 1], size=64), 0, 255).astype(np.uint8)
        assert is_structured_step(one.astype(np.uint8), child)
        assert is_structured_step(child, sibling)


def test_on_a_narrow_input_a_few_equal_moves_are_a_step_and_a_two_feature_sweep_is_not() -> None:
    """A 20-input record: random-subset steps move 3 to 10 features by one amount; a what-if
    sweep moves one or two; measurement noise moves all of them by varied amounts."""
    rng = np.random.default_rng(4)
    base = rng.integers(40, 210, size=20).astype(np.int16)
    for k in (3, 6, 10):
        moved = np.zeros(20, dtype=np.int16)
        moved[rng.permutation(20)[:k]] = 25 * rng.choice([-1, 1], size=k)
        assert is_structured_step(base.astype(np.uint8), (base + moved).astype(np.uint8))
    sweep = base.copy()
    sweep[[2, 7]] += 25
    assert not is_structured_step(base.astype(np.uint8), sweep.astype(np.uint8))
    noisy = sum(
        is_structured_step(
            base.astype(np.uint8), np.clip(base + rng.normal(0, 10, 20), 0, 255).astype(np.uint8)
        )
        for _ in range(200)
    )
    assert noisy <= 4  # 2%, well under the steps test's 5% null


def test_a_sign_step_of_a_tenth_of_every_range_is_a_structured_step() -> None:
    """Jacobian augmentation's usual step: every feature moved by a tenth of its range (on the
    near-duplicate limit, so 8-bit rounding puts it on either side)."""
    rng = np.random.default_rng(5)
    for dim in (20, 64):
        qd = QueryDistances(dim=dim, seed=0)
        base = rng.integers(40, 210, size=dim).astype(np.int16)
        qd.update(base.astype(np.uint8), 1, 0)
        qd.update((base + 26 * rng.choice([-1, 1], size=dim)).astype(np.uint8), 2, 0)
        qd.update(rng.integers(0, 256, size=dim).astype(np.uint8), 3, 0)  # confirms the step
        assert qd.steps == 1


def test_a_record_sent_again_with_noise_is_no_step_where_a_three_feature_step_is() -> None:
    """A 12-input model whose records lie at least ``record_move`` apart: a client rescoring
    a few records again and again, each time with fresh noise on every field, sends moves as
    short as a random-subset perturbation's (three of twelve features), and by chance some
    pass the common-amount test; only the perturbation leaves its other features as they
    were."""
    rng = np.random.default_rng(3)
    record_move = 12 * 14.0**2  # two records, 14 code units apart on every field (RMS)
    records = rng.integers(40, 210, size=(4, 12)).astype(np.float64)
    noisy = QueryDistances(dim=12, seed=0, record_move=record_move)
    unguarded = QueryDistances(dim=12, seed=0)
    for i in range(400):
        code = np.rint(records[i % 4] + rng.normal(0.0, 4.0, 12)).astype(np.uint8)
        noisy.update(code, i, 0)
        unguarded.update(code, i, 0)
    assert unguarded.steps >= 8  # what the guard is for: chance steps, 2% and more
    assert noisy.steps <= unguarded.steps // 4
    # T-RND: 40 seeds, each perturbed in turn on three features by a tenth of their range.
    thief = QueryDistances(dim=12, seed=0, record_move=record_move)
    seeds = rng.integers(40, 210, size=(40, 12)).astype(np.float64)
    for i in range(200):
        current = seeds[i % 40]
        if i >= 40:
            moved = rng.choice(12, size=3, replace=False)
            current[moved] += 26.0 * rng.choice([-1.0, 1.0], size=3)  # closer than two records lie
        thief.update(np.rint(np.clip(current, 0.0, 255.0)).astype(np.uint8), 1000 + i, 0)
    assert thief.steps >= 100


@given(st.lists(st.integers(0, 255), min_size=64, max_size=64), st.integers(0, 40))
@settings(max_examples=60, deadline=None)
def test_an_identical_code_is_never_a_step(values: list[int], shift: int) -> None:
    a = np.array(values, dtype=np.uint8)
    assert not is_structured_step(a, a)


def test_distances_keep_exact_resends_apart_from_near_duplicates() -> None:
    qd = QueryDistances(dim=64, seed=0)
    base = np.full(64, 100, dtype=np.uint8)
    assert qd.update(base, 1, 0) == (False, False, False, False, False)
    assert qd.update(base, 1, 0) == (True, False, False, False, False)
    step = base.copy()
    step[:32] += 25
    assert qd.update(step, 2, 0) == (False, True, False, False, False)
    far = np.full(64, 10, dtype=np.uint8)  # not a repeat of the step's direction: it counts now
    assert qd.update(far, 3, 0) == (False, False, False, False, True)
    assert (qd.exact, qd.near, qd.steps) == (1, 1, 1)


def test_a_sweep_along_one_line_is_a_revisit_and_not_a_step() -> None:
    """What-if analysis: one record, one direction, many small structured steps."""
    qd = QueryDistances(dim=64, seed=0)
    base = np.full(64, 60, dtype=np.uint8)
    results = [qd.update(base + 6 * i * (np.arange(64) < 40), i, 0) for i in range(20)]
    assert sum(r[2] and r[3] for r in results) >= 17  # revisits, on the line
    assert qd.steps == 0


def test_a_coarse_grid_of_two_features_is_a_revisit_on_a_narrow_input() -> None:
    """What-if analysis on an 8-input model: two features of one record over a grid of three
    by five levels. Each move is half a feature's range, 0.18 of the ranges (RMS) over 8
    features, past the near-duplicate limit; it moves two features at most, as a sweep
    does, so once its directions repeat the grid explores nothing new."""
    qd = QueryDistances(dim=8, seed=0)
    record = np.array([70, 195, 76, 203, 163, 202, 73, 119], dtype=np.uint8)
    results = []
    for i, second in enumerate((76, 135, 195, 254, 20)):
        for j, first in enumerate((0, 125, 250)):
            grid = record.copy()
            grid[0], grid[2] = first, second
            results.append(qd.update(grid, 3 * i + j, 0))
    assert sum(r[2] for r in results) >= 10  # all but the first moves of each kind
    assert qd.steps == 0
    # A third feature of the record moved: off the grid's slice, a query of its own.
    third = grid.copy()
    third[4] = 20
    assert not qd.update(third, 100, 0)[2]


def test_probes_around_one_point_are_revisits_across_the_line() -> None:
    """A decision-based prober, after a bisection from ``a`` to a boundary point, probes
    around that point: the line from the chain's start repeats, as a sweep's does, but each
    probe moves across it (its answer counts; where it lies is its point's)."""
    rng = np.random.default_rng(5)
    qd = QueryDistances(dim=16, seed=0)
    a = np.full(16, 60.0)
    edge = a + 30.0 * (np.arange(16) < 8)
    for i, t in enumerate((0.5, 0.75, 0.625, 0.6875)):  # the bisection's last steps, near one another
        qd.update(np.rint(a + t * (edge - a) / 0.6875).astype(np.uint8), i, 0)
    results = [
        qd.update(np.rint(edge + rng.normal(0.0, 4.0, 16)).astype(np.uint8), 10 + i, 0) for i in range(30)
    ]
    revisits = sum(r[2] for r in results)
    on_line = sum(r[3] for r in results)
    assert revisits >= 10 and on_line <= revisits // 4


def test_a_bisection_along_one_line_converges_and_is_no_revisit() -> None:
    """A boundary prober's line search halves its moves: its answers on the boundary count,
    where a sweep's equal steps along its line are revisits (above)."""
    qd = QueryDistances(dim=64, seed=0)
    a, b = np.full(64, 40.0), np.full(64, 40.0) + 180.0 * (np.arange(64) < 40)
    low, high, revisits = 0.0, 1.0, []
    qd.update(a.astype(np.uint8), 0, 0)
    qd.update(b.astype(np.uint8), 1, 0)
    for i in range(6):
        mid = (low + high) / 2
        revisits.append(qd.update(np.rint(a + mid * (b - a)).astype(np.uint8), 2 + i, 0)[2])
        low, high = (mid, high) if i % 2 else (low, mid)
    assert not any(revisits)


def test_steps_in_new_directions_count() -> None:
    """Random-direction steps (T-RND-like) from a few seeds keep counting."""
    rng = np.random.default_rng(3)
    qd = QueryDistances(dim=64, seed=0)
    seeds = rng.integers(60, 190, size=(5, 64)).astype(np.uint8)
    for i, s in enumerate(seeds):
        qd.update(s, 1000 + i, 0)
    for i in range(200):
        s = seeds[i % 5]
        mask = rng.permutation(64) < 20
        step = (s.astype(int) + 12 * mask * rng.choice([-1, 1], size=64)).astype(np.uint8)
        qd.update(step, i, 0)
    assert qd.steps >= 150


def test_coverage_ratio_compares_with_the_reference_at_the_same_n() -> None:
    p = np.full(8, 1 / 8)
    n = np.arange(1, 101)[:, None]
    expected = (1 - (1 - p[None, :]) ** n).sum(axis=1)
    spread, narrow = CellCoverage(p, expected), CellCoverage(p, expected)
    for i in range(8):
        spread.update(i)
        narrow.update(0)
    assert spread.ratio > 1.0 > narrow.ratio
    assert spread.entropy == 3.0 and narrow.entropy == 0.0


def test_rate_uses_event_time_and_tolerates_out_of_order_events() -> None:
    r = QueryRate(half_life=60.0)
    for t in (0.0, 10.0, 5.0, 20.0):
        r.update(t)
    assert r.rate_per_hour > 0
    assert r.get_state()[0] == 20.0


def _profile_arrays(cells: int = 4) -> dict[str, np.ndarray]:
    p = np.full(cells, 1 / cells)
    n = np.arange(1, 20001)[:, None]
    return {
        "cell_prob": p,
        "expected_cells": (1 - (1 - p[None, :]) ** n).sum(axis=1),
        "class_prior": np.full(11, 1 / 11),
    }


def test_client_state_stays_under_4_kb_once_warmed_up() -> None:
    rng = np.random.default_rng(5)
    f = ClientFeatures(dim=64, limits=ProfileLimits(0.05), seed=1, **_profile_arrays(64))
    for i, code in enumerate(_codes(rng, 2000)):
        f.update(
            ts=float(i),
            cell=int(code[0] % 64),
            out_of_profile=False,
            far=False,
            code=code,
            input_hash=i,
            class_index=int(code[1] % 10),
            margin=0.5,
            entropy=0.1,
        )
    assert len(pickle.dumps(f.get_state(), protocol=5)) <= 4096


def test_features_degrade_gracefully_without_scores_or_labels() -> None:
    f = ClientFeatures(dim=4, limits=ProfileLimits(0.05), seed=1, **_profile_arrays())
    code = np.array([1, 2, 3, 4], dtype=np.uint8)
    ind = f.update(
        ts=0.0,
        cell=0,
        out_of_profile=False,
        far=False,
        code=code,
        input_hash=0,
        class_index=-1,
        margin=float("nan"),
        entropy=float("nan"),
    )
    assert ind.boundary is None
    snap = f.snapshot()
    assert snap["boundary_share"] == 0.0 and snap["class_entropy"] == 0.0
    assert all(np.isfinite(v) for v in snap.values())


def _boundary_evidence(codes: np.ndarray) -> list[bool | None]:
    """The boundary evidence of a client whose every answer sits on the boundary."""
    f = ClientFeatures(dim=codes.shape[1], limits=ProfileLimits(0.05), seed=1, **_profile_arrays(10))
    return [f.update(float(i), 0, False, False, c, i, i % 2, 0.01, 0.9).boundary for i, c in enumerate(codes)]


def test_occlusions_of_one_record_on_the_boundary_count_its_answer_once() -> None:
    """An explainer blanks one part of a record after another, each sample masking what the
    one before masked (``is_masking``), and a record lying on the decision boundary answers
    near it every time, in profile or not: that is the record's answer, counted once.
    Records of their own, each answered on the boundary, count every one."""
    record = np.array([0, 200, 180, 90, 0, 40, 70, 120, 150, 60], dtype=np.uint8)
    occluded = np.repeat(record[None, :], 8, axis=0)
    occluded[np.arange(8), [1, 2, 3, 5, 6, 7, 8, 9]] = 0
    evidence = _boundary_evidence(occluded)
    assert evidence[0] is True and not any(evidence[1:])
    assert all(_boundary_evidence(_codes(np.random.default_rng(2), 8, dim=10)))


def test_a_walk_around_one_record_on_the_boundary_counts_its_answer_once() -> None:
    """Frames of a record (each a small move from the one before, in no repeated direction)
    lying on the boundary answer on it frame after frame: the record's answer, counted once.
    A client whose records each lie on the boundary counts every one."""
    rng = np.random.default_rng(3)
    walk = np.clip(120 + np.cumsum(rng.integers(-3, 4, size=(20, 8)), axis=0), 0, 255).astype(np.uint8)
    assert _boundary_evidence(walk) == [True] + [None] * 19
    assert all(_boundary_evidence(_codes(rng, 20, dim=8)))


def test_noisy_samples_of_one_record_are_that_record_again() -> None:
    """LIME's samples of a record (each field moved by noise) lie closer to each other than
    two records ever do (``record_move``, a squared code distance): where each lies and
    whether its answer sits on the boundary are the record's, counted once, while its rank
    still counts. Records of their own count every one; without a measured limit (-1), so do
    the samples."""
    rng = np.random.default_rng(6)
    record = rng.integers(80, 176, size=16)
    samples = np.clip(record + rng.normal(0, 25, size=(12, 16)), 0, 255).astype(np.uint8)
    records = _codes(rng, 12, dim=16)
    limit = 16 * 60.0**2  # two records at least 60 code units apart (RMS)

    def indicators(codes: np.ndarray, out: bool, record_move: float) -> list[tuple[bool, bool | None, bool]]:
        f = ClientFeatures(
            dim=16, limits=ProfileLimits(0.05, record_move=record_move), seed=1, **_profile_arrays(10)
        )
        seen = []
        for i, c in enumerate(codes):
            ind = f.update(float(i), 0, out, False, c, i, 0, 0.01, 0.9, 0.05, 0.2, 0.5)
            seen.append((ind.out_of_profile, ind.boundary, ind.margin_rank is not None))
        return seen

    told = indicators(samples, True, limit)
    assert told[0] == (True, True, False) and set(told[1:]) == {(False, None, False)}
    assert set(indicators(records, True, limit)) == {(True, True, False)}
    assert set(indicators(samples, True, -1.0)) == {(True, True, False)}
    # In profile, each sample's answer keeps its rank (the confidence test's floor absorbs a burst).
    assert set(indicators(samples, False, limit)[1:]) == {(False, None, True)}


def test_an_explainers_coalitions_of_two_images_lie_where_their_records_do() -> None:
    """KernelSHAP's coalitions of two images (each pixel from one or the other) lie beyond
    every reference input together: each holds more of the one before's values inside the
    range than two records do (``record_shared``), so it is a part of their records and
    adds no far or out-of-profile query. Random binary inputs share half their values, all at
    the ends of the range: every one of them counts."""
    rng = np.random.default_rng(7)
    images = np.where(rng.random((2, 64)) < 0.6, 0, rng.integers(20, 240, size=(2, 64))).astype(np.uint8)
    coalitions = np.where(rng.random((12, 64)) < 0.5, images[0], images[1]).astype(np.uint8)
    binary = np.where(rng.random((12, 64)) < 0.3, 255, 0).astype(np.uint8)

    def far(codes: np.ndarray) -> list[bool]:
        f = ClientFeatures(
            dim=64, limits=ProfileLimits(0.05, record_shared=4.0), seed=1, **_profile_arrays(10)
        )
        return [
            f.update(float(i), 0, True, True, c, i, 0, 0.5, 0.5, 0.05, 0.5, 0.5).far
            for i, c in enumerate(codes)
        ]

    assert far(coalitions)[0] and not any(far(coalitions)[1:])
    assert all(far(binary))


def bisection_then_probes(rng: np.random.Generator, spread: int, probes: int = 15) -> np.ndarray:
    """A decision-based prober's 8-input codes: a bisection of a segment (its moves halve),
    then ``probes`` probes within ``spread`` code units of the point it found."""
    a, b = np.full(8, 40.0), np.full(8, 200.0)
    t, step, points = 0.5, 0.25, []
    for _ in range(6):
        points.append(a + t * (b - a))
        t, step = t + step * (1 if len(points) % 2 else -1), step / 2
    around = points[-1] + rng.integers(-spread, spread + 1, size=(probes, 8))
    return np.clip(np.vstack([points, around]), 0, 255).astype(np.uint8)


def test_probes_after_a_line_search_count_every_answer() -> None:
    """A decision-based prober bisects a segment down to the boundary (its moves halve), then
    probes around the point it found: its answers on the boundary are searched for, not one
    record's, and each counts."""
    codes = bisection_then_probes(np.random.default_rng(4), spread=3)
    evidence = _boundary_evidence(codes)
    # (a probe along the bisection's line is a sweep's revisit: its answer says nothing, False)
    assert None not in evidence[-15:] and sum(e is None for e in evidence) <= 2


def test_kernels_compile_without_a_cache_where_none_can_be_written(monkeypatch: pytest.MonkeyPatch) -> None:
    real_njit = numba.njit

    def njit_without_locator(**options: object) -> object:
        if options.get("cache"):  # what numba raises when no cache directory is writable
            raise RuntimeError("cannot cache function 'f': no locator available for file 'f.py'")
        return real_njit(**options)

    monkeypatch.setattr(numba, "njit", njit_without_locator)

    def double(x: int) -> int:
        return 2 * x

    assert compiled(double)(21) == 42


def test_the_reservoir_knows_which_rows_its_last_queries_wrote() -> None:
    """``recent`` against the query each row holds (its code is the query's number), while
    the reservoir fills, once it replaces rows, and after a state round trip."""
    reservoir = QueryReservoir(capacity=20, dim=2, seed=4)
    for query in range(1, 400):
        reservoir.offer(np.array([query & 255, query >> 8], dtype=np.uint8))
        if query in (10, 20, 21, 33, 55, 399):
            codes, _, filled = reservoir.sample()
            writer = codes[:filled, 0].astype(int) + 256 * codes[:filled, 1].astype(int)
            expected = [query - int(w) < RECENT_QUERIES for w in writer]
            assert [reservoir.recent(row) for row in range(filled)] == expected, query
            restored = QueryReservoir(capacity=20, dim=2, seed=4)
            restored.set_state(reservoir.get_state())
            assert [restored.recent(row) for row in range(filled)] == expected


def test_a_state_stored_before_the_ring_loads_with_no_recent_row_and_samples_alike() -> None:
    reservoir = QueryReservoir(capacity=5, dim=2, seed=1)
    for i in range(50):
        reservoir.offer(np.array([i, i], dtype=np.uint8))
    seen, codes, labels, ring = reservoir.get_state()
    assert 0 < len(ring) < RECENT_QUERIES  # a bitmap and the few rows its last queries replaced
    old = QueryReservoir(capacity=5, dim=2, seed=1)
    old.set_state((seen, codes, labels))
    assert not any(old.recent(row) for row in range(5))
    for i in range(50, 90):
        for r in (reservoir, old):
            r.offer(np.array([i, i], dtype=np.uint8))
    assert old.get_state() == reservoir.get_state()


def _grid_analyst(dim: int) -> list[np.ndarray]:
    """A what-if grid: for each of 10 brightness levels (every feature up by one amount: a
    structured step), the record at three stroke widths (features moved by varied, large
    amounts: no step, and no near-duplicate of the query before)."""
    rng = np.random.default_rng(8)
    record = rng.integers(80, 150, size=dim)
    widths = rng.integers(-50, 51, size=(3, dim))
    return [
        np.clip(record + width + 6 * level, 0, 255).astype(np.uint8)
        for level in range(10)
        for width in widths
    ]


def test_a_grid_of_two_properties_steps_from_recent_points_and_is_not_a_chain() -> None:
    """Each brightness step of the grid starts from the same contrast three queries back, the
    same way every time: a sweep, not a perturbation chain."""
    qd = QueryDistances(dim=20, seed=0)
    rng = np.random.default_rng(9)
    for i in range(150):  # an ordinary client first: the grid's points are its newest rows
        qd.update(rng.integers(0, 256, size=20).astype(np.uint8), 10_000 + i, 0)
    for i, code in enumerate(_grid_analyst(20)):
        qd.update(code, i, 0)
    assert qd.steps <= 2


def test_steps_the_same_way_from_old_records_count() -> None:
    """JbDA with a linear substitute: every child of a class moves its parent the same way
    (the gradient's sign repeats), from parents anywhere in the client's past."""
    rng = np.random.default_rng(10)
    qd = QueryDistances(dim=20, seed=0)
    for i in range(150):
        qd.update(rng.integers(40, 216, size=20).astype(np.uint8), 10_000 + i, 0)
    sign = rng.choice([-1, 1], size=20)
    codes, _, filled = qd.reservoir.sample()
    old = [codes[row].copy() for row in range(filled) if not qd.reservoir.recent(row)]
    for i, parent in enumerate(old[:60]):
        qd.update((parent.astype(np.int64) + 25 * sign).astype(np.uint8), i, 0)
    assert qd.steps >= 45


def test_steps_one_way_from_recent_records_in_any_order_count() -> None:
    """JbDA on a two-class model: every child moves its parent along the sign of one weight
    vector, and while the client is young every parent is one of its last queries. Unlike a
    grid's line (``test_a_grid_of_two_properties_steps_from_recent_points_and_is_not_a_chain``),
    the query before a child is no step from the row before its parent."""
    rng = np.random.default_rng(11)
    qd = QueryDistances(dim=20, seed=0)
    sign = rng.choice([-1, 1], size=20)
    generation = [rng.integers(60, 196, size=20) for _ in range(8)]
    sent = 0
    for _ in range(6):  # seeds, then five generations of children, each in a new order
        for code in generation:
            qd.update(np.clip(code, 0, 255).astype(np.uint8), sent, 0)
            sent += 1
        generation = [generation[j] + 20 * sign for j in rng.permutation(len(generation))]
    assert qd.steps >= 25  # of 40 children (6-10 when a repeated direction from a recent row never counted)


@pytest.mark.parametrize("capacity", [6, 40])
def test_the_row_written_before_a_recent_one_is_the_query_before_its_writer(capacity: int) -> None:
    """Each query writes its own number: the row written before a recent one holds the number
    before it, while that query is among the last 32 and its row was not written again."""
    reservoir = QueryReservoir(capacity=capacity, dim=2, seed=5)
    for query in range(1, 120):
        reservoir.offer(np.array([query // 256, query % 256], dtype=np.uint8))
        codes, _, filled = reservoir.sample()
        held = {int(code[0]) * 256 + int(code[1]): row for row, code in enumerate(codes[:filled])}
        for number, row in held.items():
            if reservoir.recent(row):
                known = number - 1 >= max(1, query - 31)
                assert reservoir.written_before(row) == (held.get(number - 1, -1) if known else -1)


def test_a_stored_ring_that_does_not_match_its_bitmap_is_refused() -> None:
    reservoir = QueryReservoir(capacity=5, dim=2, seed=1)
    for i in range(50):
        reservoir.offer(np.array([i, i], dtype=np.uint8))
    seen, codes, labels, ring = reservoir.get_state()
    for broken in (ring[:-1], ring + b"\x01", b"\xff" * 4 + b"\x07" * 32):
        with pytest.raises(ValueError):
            QueryReservoir(capacity=5, dim=2, seed=1).set_state((seen, codes, labels, broken))
