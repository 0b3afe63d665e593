"""The nearest earlier query, and whether the step to it is structured (compiled).

Codes are 8-bit, so squared distances are computed in integers: exact, and the same
whatever the machine, BLAS or summation order.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from querywatch.features.jit import compiled


@compiled
def nearest_code(
    flat: NDArray[np.uint8],
    start: int,
    rows: int,
    filled: int,
    code: NDArray[np.uint8],
    label: int,
    limit: int,
    seen: int,
    recent_queries: int,
) -> tuple[int, int, int, int]:
    """Among the first ``filled`` of the ``rows`` codes laid out from ``start`` in ``flat``
    (each ``len(code)`` bytes, their ``rows`` labels right after them, then a full
    reservoir's ring of recent rows: ``features.reservoir``): the index of the code nearest to
    ``code`` (the first on ties), its squared distance, the squared distance to the nearest
    code whose label is ``label`` (-1 if there is none), and, when the nearest lies within
    squared distance ``limit`` (and is not ``code`` itself), the index of the code ``code`` is
    a structured step from (``step_parent``, with ``seen`` and ``recent_queries``), else -1
    (always, with a ``limit`` of 0). ``filled`` must be at least 1."""
    # Signed 64-bit throughout: numba turns int() of an unsigned byte into an unsigned word.
    dim = code.shape[0]
    labels = start + rows * dim
    far = np.int64(1 << 62)
    best = 0
    best_d2 = far
    same_d2 = far
    within = np.empty(filled if limit > 0 else 0, np.int64)
    for i in range(filled):
        at = start + i * dim
        row = flat[at : at + dim]  # a row, not flat[at + k]: that loop is not vectorized (2.5x slower)
        d2 = np.int64(0)
        for k in range(dim):
            x = np.int64(row[k]) - np.int64(code[k])
            d2 += x * x
        if d2 < best_d2:
            best, best_d2 = i, d2
        if flat[labels + i] == label and d2 < same_d2:
            same_d2 = d2
        if limit > 0:
            within[i] = d2 if 0 < d2 <= limit else far
    parent = -1
    if 0 < best_d2 <= limit:
        parent = step_parent(flat, start, rows, code, within, seen, recent_queries)
    return best, int(best_d2), int(same_d2) if same_d2 < far else -1, parent


#: The smallest common amount (in code units) a structured step moves its features by: the
#: 8-bit rounding moves each by up to one unit, so a smaller "common amount" is within 20% of
#: rounding noise, which is what a near-identical record with fresh noise looks like.
MIN_STEP = 5


@compiled
def is_structured_step(a: NDArray[np.uint8], b: NDArray[np.uint8], min_changed: int = 3) -> bool:
    """True if ``b - a`` moves at least ``min_changed`` features (and an eighth of them)
    by nearly one common amount (60% of them within one code unit of it), that amount
    being a small step (at most a quarter of the feature range). Three features, because a
    what-if sweep moves one or two; an eighth, so that a wide input needs a wider move (a
    20-input model's random-subset steps move 3 to 10 features, an image's many more).
    The common amount is at least ``MIN_STEP`` code units. One test; loops over many pairs
    call ``structured_step`` with one scratch table instead."""
    return structured_step(a, b, np.zeros(256, np.int64), min_changed)


@compiled
def structured_step(
    a: NDArray[np.uint8], b: NDArray[np.uint8], counts: NDArray[np.int64], min_changed: int = 3
) -> bool:
    """``is_structured_step`` with ``counts``, 256 zeros, as its table of move magnitudes
    (left zeroed again). Counting every magnitude, branch-free, and clearing only what was
    counted is about twice as fast per pair as counting into a fresh table behind a branch
    per feature (the campaign stage's lineage tests millions of pairs)."""
    n = a.shape[0]
    for k in range(n):
        counts[abs(np.int64(b[k]) - np.int64(a[k]))] += 1  # signed: see nearest_code
    changed = n - counts[0] - counts[1]
    found = False
    if changed >= max(min_changed, n // 8):
        # The most populated window of three adjacent magnitudes (the first, on ties). A
        # window holding 60% of the moves that is centred beyond 66 cannot coexist with one
        # at 64 or below (they would be disjoint), so centres MIN_STEP..66 decide exactly.
        top = 0
        mode = 0
        for centre in range(MIN_STEP, 67):
            window = counts[centre - 1] + counts[centre] + counts[centre + 1]
            if window > top:
                top, mode = window, centre
        found = top >= 0.6 * changed and mode <= 64
    for k in range(n):
        counts[abs(np.int64(b[k]) - np.int64(a[k]))] = 0
    return found and content_follows(a, b, mode, counts)


@compiled
def content_follows(a: NDArray[np.uint8], b: NDArray[np.uint8], mode: int, counts: NDArray[np.int64]) -> bool:
    """True unless most of the *content* features (those not at their row's most common
    value, in either row) move farther than the common amount ``mode`` (by more than one
    code unit).

    A step moves every feature by the common amount, or by less where the range clips it;
    so do its relatives (a sibling, a grandparent: twice the amount is their common one).
    Two different records of a sparse input also show one common amount, on their blank
    features: a brightened digit, its blank pixels raised a few code units, against another
    digit of its cell; a thief's child, its blank pixels raised by its step, against another
    natural digit. Blank pixels are most of a digit, so the window of common moves held
    them, while the digits' strokes, where the records differ, moved far. On the bench's
    digits with the extras (seed 5), such pairs took two what-if analysts into a campaign of
    perturbation thieves, while no thief's own step, and no pair of one campaign's accounts,
    has more than 40% of its content moving farther (digits seeds 1 and 5, credit seed 1). On an input
    without a blank value (a table's fields) nearly every feature is content, and the 60%
    window already leaves at most 40% of the moved ones to move farther. ``counts``: 256
    zeros, as ``structured_step`` takes them (left zeroed again)."""
    blank_a = most_common(a, counts)
    blank_b = most_common(b, counts)
    content = 0
    farther = 0
    for k in range(a.shape[0]):
        if a[k] != blank_a or b[k] != blank_b:
            content += 1
            if abs(np.int64(b[k]) - np.int64(a[k])) > mode + 1:  # signed: see nearest_code
                farther += 1
    return 2 * farther <= content


@compiled
def keeps_the_rest(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> bool:
    """True unless ``b - a`` moves a feature by more than 8-bit rounding (one code unit) yet
    by less than the smallest common amount a structured step has (MIN_STEP, less the unit
    its window allows), away from the ends of the range: a step sets the features it moves
    by its amount (or by a multiple, from a relative; by less only where the range clips
    them) and keeps the rest; fresh noise moves every feature by a little.

    A record sent again with fresh measurement noise (a client rescoring the same customers)
    moves every feature a little, and on a narrow input three of those moves land within one
    code unit of each other often enough to pass as a structured step: ordinary clients of
    a held-out 12-input model, sending one rare class's few records again and again with
    noise, had 4-10% of their queries counted as steps against a null of 5%, nearly all of
    them closer to their parent than two records lie. ``QueryDistances`` asks this only of a
    step shorter than ``Calibration.record_move``; a longer one is judged as before.

    Tried first, and not kept: every moved feature within one unit of the common amount or
    beyond it. A feature whose reference range is narrower than another's moves by more code
    units for the same step, and a relative's moves are multiples of the amount, so the
    simulator's JbDA thieves diluted 1:4 on its wide victim, alerted after 1,142 and 1,847
    queries before, were never alerted; by this rule, at 1,142 and 1,867 (``bench_dilution``).

    >>> a = np.full(12, 100, np.uint8)
    >>> b = a.copy(); b[:3] += 25; b[3] += 11; keeps_the_rest(a, b)
    True
    >>> b[5] += 3; keeps_the_rest(a, b)
    False
    """
    for k in range(a.shape[0]):
        d = abs(np.int64(b[k]) - np.int64(a[k]))  # signed: see nearest_code
        if 1 < d < MIN_STEP - 1 and BACKGROUND < b[k] < 255 - BACKGROUND:
            return False
    return True


#: Rows within a step's reach searched for its parent, nearest first (``step_parent``). A
#: thief's child lies one step from its parent, but on a dense input other records can lie
#: nearer: on a 7-input table of five classes (the bench's generator on other data) the
#: nearest earlier query was a JbDA child's parent, or a relative one step away, for 10% of
#: its children, against 66-73% on its 20-input credit table. Searched to the fourth nearest,
#: 34-36% (99% on credit), and its JbDA thieves alerted after 110 queries instead of 220
#: (118 instead of 312 on breast cancer's 30 inputs), while the steps null of the 7-input
#: table (``models.steps``, which searches as many) rose from 4.9% to 8.6%; with every row in
#: reach, its pseudo-clients' 99th percentile rate rose from 7.5% to 20%.
STEP_CANDIDATES = 4


@compiled
def step_parent(
    flat: NDArray[np.uint8],
    start: int,
    rows: int,
    code: NDArray[np.uint8],
    within: NDArray[np.int64],
    seen: int,
    recent_queries: int,
) -> int:
    """The index of the nearest code (laid out as ``nearest_code`` reads them) from which
    ``code`` is a structured step, among the STEP_CANDIDATES nearest whose squared distances
    ``within`` gives (at least 2**62: out of reach); -1 if none is. Beyond the nearest, rows one
    of the last ``recent_queries`` of ``seen`` queries wrote are passed over (as
    ``QueryReservoir.recent`` tells them: while the reservoir fills, row ``i`` is query
    ``i + 1``; once full, a ring of the rows they replaced follows the labels): a what-if
    sweep's own points, a few queries back, are steps from one another, while a thief's
    parent was sent anywhere in its past. Leaves ``within`` marked out of reach where it
    looked."""
    dim = code.shape[0]
    far = np.int64(1 << 62)
    counts = np.zeros(256, np.int64)
    ring = start + rows * (dim + 1)
    checked = 0
    while checked < STEP_CANDIDATES:
        best = -1
        best_d2 = far
        for i in range(within.shape[0]):
            if within[i] < best_d2:
                best, best_d2 = i, within[i]
        if best < 0:
            return -1
        within[best] = far
        if checked > 0 and is_recent(flat, ring, rows, seen, recent_queries, best):
            continue
        checked += 1
        at = start + best * dim
        if structured_step(flat[at : at + dim], code, counts, 3):
            return best
    return -1


@compiled
def is_recent(
    flat: NDArray[np.uint8], ring: int, rows: int, seen: int, recent_queries: int, index: int
) -> bool:
    """Whether row ``index`` of a reservoir (``features.reservoir``) of ``rows`` rows that has
    seen ``seen`` queries was written by one of the last ``recent_queries``: while it fills,
    row ``i`` is query ``i + 1`` (a full reservoir has as many rows as its capacity and has
    seen more); once full, the ring from ``ring`` to the end of ``flat`` holds the rows they
    replaced."""
    if seen <= rows:
        return seen - index <= recent_queries
    return bool((flat[ring:] == index).any())


@compiled
def count_steps(rows: NDArray[np.uint8], judged: NDArray[np.intp], candidates: NDArray[np.intp]) -> int:
    """How many of the ``judged`` rows of ``rows`` are a structured step from one of their
    ``candidates`` (one line of row indices per judged row, -1 for none): the steps null's
    pseudo-clients (``models.steps``) ask it of hundreds of rows at a time."""
    counts = np.zeros(256, np.int64)
    steps = 0
    for k in range(judged.shape[0]):
        for j in candidates[k]:
            if j >= 0 and structured_step(rows[j], rows[judged[k]], counts, 3):
                steps += 1
                break
    return steps


#: A feature at or below this code is at its reference minimum (at or above 255 minus it, at
#: its maximum): what masking an input (an explainer blanking patches) sets it to.
BACKGROUND = 1
#: Features at a value between the extremes that two masked copies of one record must share:
#: one, since a faint record's samples (most of its few lit pixels blanked) share one or two;
#: with three, 11 of one such record's 59 samples counted beyond every reference input, and
#: ``bench_heldout``'s LIME client alerted on 2 of 13 seeds. What keeps two records apart is
#: that they differ somewhere both are above the minimum, not how much they share.
MIN_SHARED = 1


@compiled
def is_masking(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> bool:
    """True if ``a`` and ``b`` are one input with different parts masked: every feature on
    which they differ (by more than one code unit) is at its minimum in one of them, and
    they share at least MIN_SHARED features at the same value between the extremes. An image
    explainer's samples (LIME: patches of one record blanked, sample after sample) are such
    pairs: 95% of the simulator's share at least 4, a faint record's one or two. Two
    different records are not: among
    2,000 consecutive pairs of the simulator's natural digits, none without noise but an
    identical record had fewer than 14 features above the minimum in both and different.
    Nor is a perturbation step, which moves features that stay above the minimum, nor two
    random binary inputs (what they share is at the extremes).

    >>> a = np.array([0, 200, 180, 90, 0, 40, 70], dtype=np.uint8)
    >>> bool(is_masking(a, np.array([0, 200, 0, 90, 0, 40, 70], dtype=np.uint8)))  # one blanked
    True
    >>> bool(is_masking(a, np.array([0, 190, 180, 90, 0, 40, 70], dtype=np.uint8)))  # a step
    False
    >>> bool(is_masking(a, np.array([0, 0, 60, 0, 120, 40, 70], dtype=np.uint8)))  # another record
    False
    >>> faint = np.array([0, 0, 0, 90, 0, 40, 0], dtype=np.uint8)  # one lit value left in both
    >>> bool(is_masking(faint, np.array([0, 0, 0, 90, 0, 0, 0], dtype=np.uint8)))
    True
    >>> on = np.array([255, 255, 0, 255, 0, 255, 0], np.uint8)
    >>> bool(is_masking(on, np.array([255, 0, 255, 255, 0, 255, 255], np.uint8)))  # random binary
    False
    """
    shared = 0
    differ = 0
    for k in range(a.shape[0]):
        x, y = np.int64(a[k]), np.int64(b[k])
        high, low = max(x, y), min(x, y)
        if high <= BACKGROUND:
            continue
        if high - low <= 1:
            if low > BACKGROUND and high < 255 - BACKGROUND:
                shared += 1
        elif low > BACKGROUND:
            return False
        else:
            differ += 1
    return differ > 0 and shared >= MIN_SHARED


@compiled
def most_common(row: NDArray[np.uint8], counts: NDArray[np.int64]) -> int:
    """The value ``row`` holds most often (the smallest, on ties), counted in ``counts`` (256
    zeros, left zeroed again)."""
    best = 0
    top = 0
    for k in range(row.shape[0]):
        v = row[k]
        counts[v] += 1
        if counts[v] > top or (counts[v] == top and v < best):
            top, best = counts[v], v
    for k in range(row.shape[0]):
        counts[row[k]] = 0
    return int(best)
