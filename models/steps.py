"""Null rate of the structured-step test, measured on the model's own reference.

A structured step (``features.nearest.is_structured_step``) is a move from one of the
nearest earlier queries (``features.nearest.step_parent``) that changes at least three
features by nearly one common amount. On a wide input natural data almost never does that by
chance, but on a narrow one it does: with six features, two of the three that differ between
two nearby natural records land within one code unit of each other often enough that
ordinary clients of a held-out six-input model sent 5-7% of their queries as "steps", the
fixed 5% tolerance. So the null is measured: the same check is run over pseudo-clients drawn
from the whole reference (as many rows as a client's reservoir holds, then as many again,
each judged against the nearest rows of the reservoir's worth before it, as a client's
reservoir searches them, on the features a reservoir row keeps: a full reservoir is where
benign clients spend their queries), and the null is the 99th percentile of their underlying
rates (``calibration.underlying_multiple``: sampling noise removed; none is left out, as a
thief's own steps are not counted, below). The steps test never takes a null below its
default tolerance (``models.registry``: what-if analysts sweep one record, which no reference
holds), so on a wide input this measure changes nothing. The draw is not concentrated on a
region as the other tests' pseudo-clients are (``calibration._groups``): a chance step needs
a near neighbour, and 128 rows put into one of 64 cells are far denser than any client's own
queries (on the six-input model, that draw measured 14%, twice the densest benign client's
rate, and hid its random-subset perturbation thieves). When the reference has owners (a
warm-up from live traffic), a row is judged only against other owners' rows: a thief active
in the warm-up makes its steps from its own earlier queries, and would otherwise set the null
that hides the next one; natural rows are as close to another client's records as to their
own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from querywatch.features.direction import move_and_shared
from querywatch.features.distance import distance_limits
from querywatch.features.layout import RECENT_QUERIES, kept_columns, query_layout, reservoir_capacity
from querywatch.features.nearest import STEP_CANDIDATES, count_steps
from querywatch.models.calibration import ISOLATION_QUANTILE, PSEUDO_CLIENTS, underlying_multiple

#: Rows a client's reservoir holds before a query is judged isolated (``isolation_limits``):
#: against fewer, its nearest earlier query says little of how the client picks them.
ISOLATION_FIRST_ROWS = 20


class NeighbourNulls(NamedTuple):
    """What the reference's pseudo-clients say of a query's nearest earlier ones
    (``neighbour_nulls``)."""

    steps: float
    """The steps null (``steps_null``)."""
    isolation: tuple[tuple[int, float], ...]
    """The isolation limits (``isolation_limits``)."""


def neighbour_nulls(
    codes: NDArray[np.uint8], owners: NDArray[Any] | None = None, seed: int = 0, classes: int = 0
) -> NeighbourNulls:
    """The steps null and the isolation limits of reference rows with these 8-bit ``codes``
    (of these ``owners`` if known), each pseudo-client's distances serving both: what a
    profile's fit asks."""
    dim = codes.shape[1]
    capacity = reservoir_capacity(dim, classes)
    _, step_limit = distance_limits(query_layout(dim).kept_width)
    counts = np.zeros((PSEUDO_CLIENTS, 2))
    nearest = []  # per pseudo-client, each judged row's squared distance to its nearest
    start = 0
    for g, (group, masked, start) in enumerate(_pseudo_clients(codes, owners, seed, capacity)):
        counts[g] = _steps_among(group, masked, start, capacity, step_limit)
        nearest.append(masked.min(axis=1))
    # Every pseudo-client judges its rows against as many rows before them, so one band per column.
    distances = np.array(nearest)
    bands = isolation_bands(capacity)
    searched = np.minimum(np.arange(start, start + distances.shape[1]), capacity)
    band = np.searchsorted(bands, searched, side="right") - 1
    limits = []
    if len(codes) >= 2 * ISOLATION_FIRST_ROWS:
        for b, rows in enumerate(bands):
            pooled = distances[:, band == b]
            pooled = pooled[np.isfinite(pooled)]
            if len(pooled):
                limits.append((int(rows), float(np.quantile(pooled, ISOLATION_QUANTILE))))
    return NeighbourNulls(_underlying_rate(counts), tuple(limits))


def steps_null(
    codes: NDArray[np.uint8], owners: NDArray[Any] | None = None, seed: int = 0, classes: int = 0
) -> float:
    """The 99th percentile of the underlying structured-step rate of pseudo-clients drawn from
    reference rows with these 8-bit ``codes``, of these ``owners`` if known (0: none seen),
    each with the reservoir a client of a model with ``classes`` class counts holds.

    >>> rng = np.random.default_rng(0)
    >>> steps_null(rng.integers(0, 256, size=(3000, 20)).astype(np.uint8))
    0.0
    """
    return neighbour_nulls(codes, owners, seed, classes).steps


def isolation_limits(
    codes: NDArray[np.uint8], owners: NDArray[Any] | None = None, seed: int = 0, classes: int = 0
) -> tuple[tuple[int, float], ...]:
    """(rows searched, squared code distance) pairs: from that many rows of a client's
    reservoir on, a natural query's nearest earlier one lies farther than the distance only
    at ISOLATION_QUANTILE's complement, over pseudo-clients drawn from reference rows with
    these 8-bit ``codes`` (of these ``owners`` if known: a client's own rows may be one
    record again), each with the reservoir a client of a model with ``classes`` class counts
    holds. Rows searched come in bands (``isolation_bands``), each band's distances pooled:
    a query judged against fewer rows lies farther from its nearest. Empty with too few rows.

    >>> rng = np.random.default_rng(0)
    >>> limits = isolation_limits(rng.integers(0, 256, size=(3000, 20)).astype(np.uint8))
    >>> [rows for rows, _ in limits][:4], limits[0][1] > limits[-1][1]
    ([20, 25, 31, 39], True)
    """
    return neighbour_nulls(codes, owners, seed, classes).isolation


def _underlying_rate(counts: NDArray[np.float64]) -> float:
    """The 99th percentile of the pseudo-clients' underlying structured-step rates, from their
    (steps, queries judged) ``counts``, at most 0.5."""
    steps, trials = counts[:, 0], counts[:, 1]
    rate = steps.sum() / max(trials.sum(), 1.0)
    if rate <= 0.0:
        return 0.0
    return float(min(underlying_multiple(steps, rate * trials) * rate, 0.5))


def _steps_among(
    group: NDArray[np.uint8], masked: NDArray[np.float64], start: int, capacity: int, step_limit: float
) -> tuple[int, int]:
    """(structured steps, queries judged) of one pseudo-client (``_pseudo_clients``), its rows
    judged once the reservoir's worth before them is full: where benign clients spend their
    queries."""
    size = len(group)
    masked = masked[min(capacity, size - 1) - start :]
    judged = np.arange(size - len(masked), size)
    before = np.arange(size)[None, :]
    nearest = np.argmin(masked, axis=1)
    # Then the STEP_CANDIDATES - 1 next nearest sent before the last RECENT_QUERIES, as a
    # client's reservoir searches them (``features.nearest.step_parent``).
    older = np.where(before < judged[:, None] - RECENT_QUERIES, masked, np.inf)
    older[np.arange(len(judged)), nearest] = np.inf
    others = np.argpartition(older, STEP_CANDIDATES - 2, axis=1)[:, : STEP_CANDIDATES - 1]
    candidates = np.where(np.take_along_axis(older, others, axis=1) <= step_limit, others, -1)
    candidates = np.column_stack([nearest, candidates])
    reach = masked[np.arange(len(judged)), nearest]
    candidates[~((reach > 0) & (reach <= step_limit))] = -1
    return count_steps(group, judged, candidates), len(judged)


def _pseudo_clients(
    codes: NDArray[np.uint8], owners: NDArray[Any] | None, seed: int, capacity: int
) -> Iterator[tuple[NDArray[np.uint8], NDArray[np.float64], int]]:
    """PSEUDO_CLIENTS draws of as many rows as a reservoir of ``capacity`` holds and as many
    again, on the features a reservoir row keeps: per draw (its codes, the squared distance
    of each row from ISOLATION_FIRST_ROWS on to each row of the reservoir's worth before it,
    inf elsewhere and between rows of one owner, and the first row so judged)."""
    n = len(codes)
    codes = kept_columns(codes)
    owner = None if owners is None else np.unique(np.asarray(owners), return_inverse=True)[1]
    size = min(2 * capacity, n)
    start = min(ISOLATION_FIRST_ROWS, size - 1)
    rng = np.random.default_rng(seed)
    before = np.arange(size)[None, :]
    judged = np.arange(start, size)
    window = (before < judged[:, None]) & (before >= judged[:, None] - capacity)
    for _ in range(PSEUDO_CLIENTS):
        rows = rng.choice(n, size=size, replace=False)
        group = codes[rows]
        x = group.astype(np.float64)
        sq = np.einsum("ij,ij->i", x, x)
        d2 = np.rint(sq[judged, None] + sq[None, :] - 2.0 * x[judged] @ x.T)  # exact: integers below 2**53
        mask = window if owner is None else window & (owner[rows][None, :] != owner[rows][judged][:, None])
        yield group, np.where(mask, d2, np.inf), start


def isolation_bands(capacity: int) -> NDArray[np.int64]:
    """The fewest rows searched of each band ``isolation_limits`` pools: from
    ISOLATION_FIRST_ROWS, each a quarter more than the one before, the last a full reservoir.

    >>> isolation_bands(77).tolist()
    [20, 25, 31, 39, 49, 61, 76, 77]
    """
    bands = [ISOLATION_FIRST_ROWS]
    while round(bands[-1] * 1.25) < capacity:
        bands.append(round(bands[-1] * 1.25))
    return np.array([*bands, capacity] if bands[-1] < capacity else bands, dtype=np.int64)


#: Pairs of reference rows compared by ``record_limits``.
RECORD_PAIRS = 4000
#: Quantile of the features two reference rows share taken as the most two records share; its
#: complement, of their distances, as the closest two records lie.
RECORD_QUANTILE = 0.999


class RecordLimits(NamedTuple):
    """What tells two of a client's consecutive queries apart from two records
    (``record_limits``): -1 for each when not measured."""

    shared: float
    """The most features two records hold at the same value inside the range
    (``features.direction.move_and_shared``): a query sharing more with the one before is a
    part of the same record (an explainer's coalition, an occlusion)."""
    move: float
    """The squared code distance closer than which two records lie only at RECORD_QUANTILE's
    complement: a query closer to the one before is the same record again (an explainer's
    noisy samples of one row)."""


def record_limits(
    codes: NDArray[np.uint8], owners: NDArray[Any] | None = None, seed: int = 0
) -> RecordLimits:
    """Over pairs of different reference rows with these 8-bit ``codes`` (of different
    ``owners`` if known: a client's own rows may be parts of one record), on the features a
    working row keeps, with ``features.direction.move_and_shared``: the RECORD_QUANTILE of the
    features they hold at the same value, and the complementary quantile of their squared
    distances; -1 each with too few rows. ``features.client`` compares each query with the one
    before against them.

    Continuous features are rarely equal in two records, and a coalition keeps many of its
    record's (the simulator's 128-input victim: 8 at this quantile, an explainer's coalitions
    27 as a median). Discrete ones often are, at the ends of their range above all, which
    ``move_and_shared`` leaves out: two of its digits share up to 4 of 64 values inside the
    range, an explainer's coalitions of two of them 6 as a median. Two records of the
    128-input victim lie at least 0.19 of the features' ranges apart (RMS) at the other
    quantile, where LIME's samples of one row (each field moved by N(0, 0.1)) lie 0.14 apart;
    on the simulator's 16-input table, 0.08.

    >>> rng = np.random.default_rng(0)
    >>> limits = record_limits(rng.integers(0, 256, size=(2000, 40)).astype(np.uint8))
    >>> limits.shared, round(float(np.sqrt(limits.move / 40)) / 255, 2)
    (4.0, 0.29)
    """
    n = len(codes)
    if n < 2:
        return RecordLimits(-1.0, -1.0)
    a, b = np.random.default_rng(seed).integers(0, n, size=(2, RECORD_PAIRS))
    other = a != b if owners is None else np.asarray(owners)[a] != np.asarray(owners)[b]
    if other.sum() < 100:
        return RecordLimits(-1.0, -1.0)
    working = query_layout(codes.shape[1]).working
    rows = codes if working is None else codes[:, working]
    pairs = np.array([move_and_shared(rows[i], rows[j]) for i, j in zip(a[other], b[other], strict=True)])
    shared, move = np.quantile(pairs[:, 1], RECORD_QUANTILE), np.quantile(pairs[:, 0], 1.0 - RECORD_QUANTILE)
    return RecordLimits(float(shared), float(move))
