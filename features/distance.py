"""Query-distance statistics in the spirit of PRADA, with exact resends kept apart.

For each query that is not an exact resend, the nearest earlier query in the client's
reservoir (``querywatch.features.reservoir``; over the features its rows keep, while the moves
from the previous query are measured over those a working row keeps: ``features.layout``) gives:

* *near-duplicate*: closer than ``near_fraction`` of the feature ranges (RMS), yet not
  identical — perturbation chains and probing live here, and so do benign revisits of
  the same item with fresh noise;
* *structured step*: the difference to that neighbour, or to one of the few next nearest
  (``features.nearest.step_parent``: on a dense input other records lie nearer than a
  child's parent), changes many features by one and the
  same amount (a sign-gradient or coordinate step, as JbDA, T-RND, I-FGSM and
  finite-difference probes take). Sensor noise, re-encoding and human edits change
  features by varied amounts, so benign clients almost never produce one. The neighbour is
  looked for up to 1.5 times the near-duplicate limit: a sign-gradient step of a tenth of
  every feature's range (Jacobian augmentation's usual step) lies at RMS 0.1, on the limit,
  where 8-bit rounding would put such steps on both sides of it. A step in a direction the
  client took recently does not count when its neighbour is itself recent (one of the last
  ``RECENT_QUERIES`` queries, ``QueryReservoir.recent``) and the query before it is a
  structured step from the row written just before that neighbour
  (``QueryReservoir.written_before``): an analyst sweeping a grid of two properties steps
  from a point of its previous line, a few queries back, the same way again and again, and
  its point before did the same, while a thief steps the same way (a per-class gradient
  sign repeats) from records anywhere in its past, or, while it is young and every parent
  recent (JbDA on a two-class model, whose children all move along one weight vector's
  sign), from its parents in no such order;
* *revisit*: a near-duplicate of the client's previous query — or a move of one or two
  features, whatever its length, that keeps to one or two features of the start of its
  chain (what-if analysts sweep coarse grids of two features, each move past the
  near-duplicate limit on a narrow input) — whose direction from it is one the client took
  recently
  (``features.direction``): what-if sweeps move along one line again and again, extraction
  keeps changing direction. A revisit explores nothing new. A move along such a line at
  most ``CONVERGING`` times as long as the move before it, which was itself as much shorter
  than the one before, is not a revisit: a line search (a boundary prober's bisection)
  converges, each move halving, while a sweep moves in equal steps (once shorter, after a
  jump back to its start) — counted as a revisit, a bisection's answers on the boundary
  would say nothing. A revisit is *on the line* when the move also goes along the line
  from the start of its chain of near-duplicates (``along_span``): a decision-based thief's
  probes scattered around one boundary point share that line's direction, as a sweep's
  points do, but each moves across it, to a new side of the point. Its answers are new
  (``ClientFeatures.update`` discounts the answers of revisits on the line only), while
  where it lies (out of profile or not, far or not) is its point's. A structured step counts one
  query later, once the next query has not repeated its direction: otherwise the first
  step of every sweep would count;
* *same record*: a query that continues its chain (a near-duplicate or a sweep's move, from
  the previous query and the chain's start) while the client has converged on no line in its
  last ``RECENT_QUERIES`` fresh queries. A video's frames of one record, its copies with
  fresh noise, an explainer's samples of it, all answer as the record does: near its
  decision boundary frame after frame when it lies near it, and the record's answer is the
  chain's first. A decision-based prober bisects its way to the boundary before probing
  around the point it found, and every answer of its counts (``ClientFeatures.update``);
* PRADA's statistic: the minimum distance to earlier queries of the same predicted class,
  whose distribution is near normal for natural data; its skewness and kurtosis are kept
  as running moments (a bounded-memory stand-in for Shapiro-Wilk).
"""

from __future__ import annotations

import functools
import math
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from querywatch.features.direction import (
    RecentDirections,
    along_span,
    direction_simhash,
    is_sparse_move,
    move_and_shared,
)
from querywatch.features.layout import (
    LAYOUT,
    RECENT_QUERIES,
    QueryLayout,
    kept_columns,
    query_layout,
    reservoir_capacity,
    same_features,
)
from querywatch.features.nearest import is_masking, is_structured_step, keeps_the_rest
from querywatch.features.resend import ExactResendFilter
from querywatch.features.reservoir import QueryReservoir


@functools.cache
def distance_limits(dim: int, near_fraction: float = 0.1) -> tuple[int, int]:
    """Squared code distances (over ``dim`` features) of a near-duplicate and of a step's
    neighbour: one pair for every client of a model, held by one slot of each client."""
    return int((near_fraction * 255.0) ** 2 * dim), int((1.5 * near_fraction * 255.0) ** 2 * dim)


#: A move along a swept line this much shorter than the previous move, or less, converges
#: (a bisection's moves halve; a sweep's 10-30 equal steps vary by 8-bit rounding only).
CONVERGING = 0.6

#: A client's running numbers: count, mean, M2, M3 and M4 of its PRADA distances, then the
#: squared length (codes) of the move to its previous query. One bytes object of 96 bytes
#: rather than a tuple of five floats and an int (232): every client that sends a second query
#: holds them, and they are read and written once per query.
_RUNNING = struct.Struct("<5dq")
#: The running numbers of no distance and no move yet, shared by every client until its second query.
_NO_RUNNING = _RUNNING.pack(0.0, 0.0, 0.0, 0.0, 0.0, 0)
#: The directions of a client that has taken none (most never take one), shared, never written.
_NO_DIRECTIONS = RecentDirections()


@functools.cache
def _limits(
    dim: int, near_fraction: float, record_move: float
) -> tuple[QueryLayout, int, int, int, int, float]:
    """A client's layout (``features.layout``) and ``distance_limits`` over a reservoir row,
    then over a working row, then ``record_move`` over a reservoir row (0: none): one tuple
    for every client of a model."""
    layout = query_layout(dim)
    return (
        layout,
        *distance_limits(layout.kept_width, near_fraction),
        *distance_limits(layout.working_width, near_fraction),
        max(record_move, 0.0) * layout.kept_width / layout.working_width,
    )


def _noisy_copy(parent: NDArray[np.uint8], kept: NDArray[np.uint8], record_move: float) -> bool:
    """Whether a structured step from ``parent`` is rather the same record sent again with
    fresh noise: closer to it than two records lie (``record_move``, over a reservoir row),
    and moving features it does not set (``features.nearest.keeps_the_rest``)."""
    if record_move <= 0.0:
        return False
    move = parent.astype(np.int64) - kept
    return int(move @ move) < record_move and not keeps_the_rest(parent, kept)


def _direction_from(
    parent: NDArray[np.uint8], code: NDArray[np.uint8], features: NDArray[np.intp] | None
) -> int:
    """``direction_simhash`` of the move from a reservoir row to a query, over the features
    the row keeps (each weighed as in a whole query's direction: a sweep of kept features
    has the same direction, from a row or from the previous query)."""
    if features is None:
        return direction_simhash(parent, code)
    origin = code.copy()
    origin[features] = parent
    return direction_simhash(origin, code)


def _walks_lines(res: QueryReservoir, parent: int, last: NDArray[np.uint8]) -> bool:
    """Whether the client walks a grid line by line at ``parent``: the previous query
    (``last``, as a reservoir row keeps it) is a structured step from the row written just
    before the parent, as a grid's point is from the one a line back. A thief's children
    step from parents drawn in any order (JbDA's two-class children all move along one
    weight vector's sign, from parents all recent while the client is young), so the query
    before a child is no step from the row before its parent. When that row is not kept,
    nothing says the client is not sweeping: True."""
    before = res.written_before(parent)
    return before < 0 or is_structured_step(res.code(before), last)


class QueryDistances:
    """Reservoir-based distance features of one client.

    >>> qd = QueryDistances(dim=4, seed=1)
    >>> base = np.array([100, 100, 100, 100], dtype=np.uint8)
    >>> qd.update(base, input_hash=7, label=0)
    (False, False, False, False, False)
    >>> qd.update(base, input_hash=7, label=0)
    (True, False, False, False, False)
    """

    __slots__ = (
        "_directions",
        "_isolation",
        "_limits",
        "_pending",
        "_resend",
        "_reservoir",
        "_running",
        "_search",
        "_shrinking",
        "apart",
        "exact",
        "isolated",
        "move",
        "near",
        "near_fraction",
        "same_record",
        "shared",
        "steps",
    )

    def __init__(
        self,
        dim: int,
        *,
        capacity: int | None = None,
        near_fraction: float = 0.1,
        seed: int = 0,
        isolation: tuple[float, ...] = (),
        record_move: float = 0.0,
    ) -> None:
        self.near_fraction = near_fraction
        #: By rows the reservoir holds, the squared distance to its nearest row beyond which a
        #: query lies apart from the client's earlier ones (``ProfileLimits.isolation``;
        #: shared by every client of a model).
        self._isolation = isolation
        # The layout, then (near-duplicate, step's neighbour) over a reservoir row and over a working row.
        self._limits = limits = _limits(dim, near_fraction, record_move)
        # Two working rows: the previous query's code and the first query of the current near
        # chain (in the reservoir's array: each numpy array costs a client about 100 bytes).
        # They keep more features than a reservoir row (all of most inputs, ``features.layout``):
        # a sweep of a feature the reservoir's rows leave out is still a revisit.
        self._reservoir = QueryReservoir(
            reservoir_capacity(dim) if capacity is None else capacity,
            limits[0].kept_width,
            seed,
            working_width=limits[0].working_width,
        )
        self._resend = ExactResendFilter()
        self._directions = _NO_DIRECTIONS
        self._pending = False  # the previous query was a structured step, not yet confirmed
        self._shrinking = False  # the move to it was at most CONVERGING times the one before
        self._search = 0  # fresh queries for which the last converged line search is recent
        #: Whether the last fresh query was the *same record* (module docstring).
        self.same_record = False
        #: How many features the last fresh query held at its previous query's values
        #: (``features.direction.move_and_shared``, on the features a working row keeps).
        self.shared = 0
        #: The squared distance of the last fresh query from its previous query (as ``shared``;
        #: 0 for a client's first).
        self.move = 0
        #: Whether the last fresh query lay beyond the isolation limit (at the rows the
        #: reservoir held then: a query judged against fewer lies farther) from every row of
        #: the reservoir and from the query before it.
        self.apart = False
        #: Fresh queries the client's features judged isolated (``features.client``).
        self.isolated = 0
        self.exact = 0
        self.near = 0
        self.steps = 0
        self._running = _NO_RUNNING

    def update(
        self, code: NDArray[np.uint8], input_hash: int, label: int
    ) -> tuple[bool, bool, bool, bool, bool]:
        """Learn one query: ``code`` from the profile, ``input_hash`` of its exact input,
        ``label`` its class. Returns (exact resend, near-duplicate, revisit, revisit on the
        line, and whether the *previous* fresh query was a structured step in a direction
        this one did not repeat)."""
        if self._resend.seen_before(input_hash):
            self.exact += 1
            return True, False, False, False, False  # a pending step stays pending
        near = step = revisit = along = chained = converged = False
        shared = move = 0
        res = self._reservoir
        last, anchor = res.working_rows()  # written before the offer below, which may move them
        layout, near_limit, step_limit, move_near, move_step, record_move = self._limits
        if layout.working is not None:
            code = code[layout.working]
        features = layout.kept
        kept = code if features is None else code[features]
        apart = False
        filled = len(res)
        if filled:
            _, nearest, same_label, p = res.nearest(kept, label, step_limit)
            isolation = self._isolation
            if filled < len(isolation) and nearest > isolation[filled]:
                # The previous query is one the client keeps too: an explainer's noisy samples
                # of one record lie apart from every row its reservoir holds (a sample of the
                # record joins it one time in tens), not from the sample before.
                before = (last if features is None else last[features]).astype(np.int64) - kept
                apart = int(before @ before) > isolation[filled]
            near = 0 < nearest <= near_limit
            # A structured step from one of the nearest earlier queries (``step_parent``), unless
            # it goes along a line the client has been sweeping from a point it just sent.
            # Remembered like the moves from the previous query (when the neighbour is the
            # previous query, the check below judges that move).
            if p >= 0:
                parent = res.code(p)
                kept_last = last if features is None else last[features]
                step = (
                    np.array_equal(parent, kept_last)
                    or not self._seen_direction(_direction_from(parent, code, features))
                    or not res.recent(p)
                    or not _walks_lines(res, p, kept_last)
                ) and not _noisy_copy(parent, kept, record_move)
            # Only a move from the previous query: a sweep walks one line point after point,
            # while a thief stepping many records the same way (a fixed per-class gradient
            # sign) moves from a different record each time.
            # The direction from the previous query, and from the start of the current chain of
            # near-duplicates (small sweep steps are mostly 8-bit rounding; the chain's span is not).
            # One distance from the previous query serves the near, step and converging checks.
            move, shared = move_and_shared(last, code)
            # Or a sweep's move, whatever its length: one or two features of the record it
            # started from (a narrow input's coarse grid, ``features.direction.is_sparse_move``).
            if 0 < move <= move_near or (
                move > move_near and is_sparse_move(last, code) and is_sparse_move(anchor, code)
            ):
                repeated = self._seen_direction(direction_simhash(last, code))
                revisit = repeated or self._seen_direction(direction_simhash(anchor, code))
                along = repeated or (revisit and along_span(last, code, anchor))
                chained = True
            else:
                anchor[:] = code
                if nearest <= step_limit and 0 < move <= move_step:
                    # A step candidate: a sweep's wider moves repeat too.
                    revisit = self._seen_direction(direction_simhash(last, code))
                along = revisit
            n, mean, m2, m3, m4, last_move = _RUNNING.unpack(self._running)
            shrinking = 0 < move <= CONVERGING**2 * last_move
            converged = shrinking and self._shrinking
            revisit = revisit and not converged
            self._shrinking = shrinking
            step = step and not revisit
            if same_label >= 0:
                n, mean, m2, m3, m4 = _with_distance(n, mean, m2, m3, m4, math.sqrt(same_label) / 255.0)
            self._running = _RUNNING.pack(n, mean, m2, m3, m4, move)
        step, self._pending = self._pending and not revisit, step
        self._search = RECENT_QUERIES if converged else max(self._search - 1, 0)
        self.same_record = chained and not self._search
        self.shared = shared
        self.move = move
        self.apart = apart
        self.near += near
        self.steps += step
        last[:] = code
        res.offer(kept, label)
        return False, near, revisit, revisit and along, step

    def masks_previous(self, code: NDArray[np.uint8]) -> bool:
        """Whether ``code`` and the client's previous query are one input with different
        parts masked (``features.nearest.is_masking``), on the features a working row keeps.
        Asked before ``update``, which makes ``code`` the previous query."""
        if not len(self._reservoir):
            return False
        last, _ = self._reservoir.working_rows()
        working = self._limits[0].working
        return bool(is_masking(last, code if working is None else code[working]))

    @property
    def probing(self) -> bool:
        """Whether the client converged on a line search in its last RECENT_QUERIES fresh
        queries: a decision-based prober bisects its way to the boundary, then probes around
        the point it found, each probe close to the one before and every answer new."""
        return self._search > 0

    def _seen_direction(self, signature: int) -> bool:
        """``RecentDirections.seen_before``, the client's own ring made at its first direction."""
        directions = self._directions
        if directions is _NO_DIRECTIONS:
            directions = self._directions = RecentDirections()
        return directions.seen_before(signature)

    @property
    def reservoir(self) -> QueryReservoir:
        return self._reservoir

    def _working_rows(self, both: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """Stored working rows as this release keeps them: a state of version 2 holds a wide
        input's rows whole (one row in a state from before the chain's anchor)."""
        layout = self._limits[0]
        if layout.working is None or len(both) == 2 * layout.working_width or len(both) % layout.dim:
            return both
        return both.reshape(-1, layout.dim)[:, layout.working].reshape(-1)

    def _kept_rows(self, stored: tuple[Any, ...]) -> tuple[Any, ...]:
        """A stored sample as this release keeps it: a state stored before rows kept a subset
        of a wide input's features (client state version 2) holds whole queries, whose kept
        features are what this release would have kept of them."""
        seen, raw, labels, *ring = stored
        dim = self._limits[0].dim
        if dim == self._reservoir.dim or not labels or len(raw) != len(labels) * dim:
            return stored
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(len(labels), dim)
        return seen, kept_columns(rows).tobytes(), labels, *ring

    @property
    def normality_gap(self) -> float:
        """Jarque-Bera statistic per distance, (S^2 + (K-3)^2 / 4) / 6: 0 for normal distances."""
        n, _, m2, m3, m4, _ = _RUNNING.unpack(self._running)
        if n < 8 or m2 <= 0:
            return 0.0
        skew = np.sqrt(n) * m3 / m2**1.5
        kurt = n * m4 / (m2 * m2)
        return float((skew * skew + (kurt - 3.0) ** 2 / 4.0) / 6.0)

    def get_state(self) -> tuple[object, ...]:
        *moments, last_move = _RUNNING.unpack(self._running)
        return (
            self._reservoir.get_state(),
            self._resend.get_state(),
            self._directions.get_state(),
            b"".join(row.tobytes() for row in self._reservoir.working_rows()),
            self._pending,
            self.exact,
            self.near,
            self.steps,
            tuple(moments),
            last_move,
            self._shrinking,
            self._search,
            self.isolated,
            LAYOUT,
        )

    def set_state(self, state: tuple[object, ...]) -> None:
        """Restore a stored state. ValueError for one whose rows hold other features of a wide
        input than this release keeps (another layout generation: ``features.layout``), which
        the family cannot read: it starts fresh (``FeatureSet.set_state``), since comparing a
        query with rows of other features finds steps and near neighbours that are not there."""
        if len(state) == 6:  # stored by 0.1, before sweep directions: those start empty
            res, resend, self.exact, self.near, self.steps, m = state  # type: ignore[assignment]
            last_move = 0
        else:
            res, resend, directions, last, self._pending, self.exact, self.near, self.steps, m, *move = state  # type: ignore[assignment]
            # Stored before the layout had generations: the first one's.
            layout = int(move[4]) if len(move) > 4 else 1  # type: ignore[call-overload]
            raw, labels = bytes(res[1]), bytes(res[2])  # type: ignore[index]
            if labels and not same_features(layout, self._limits[0].dim, len(raw) // len(labels)):
                raise ValueError(f"rows of layout generation {layout}, not {LAYOUT}")
            # Stored before converging lines: no move yet; before line searches were followed: none recent.
            last_move, self._shrinking = (int(move[0]), bool(move[1])) if move else (0, False)  # type: ignore[call-overload]
            self._search = int(move[2]) if len(move) > 2 else 0  # type: ignore[call-overload]
            # Stored before isolated queries were counted: none.
            self.isolated = int(move[3]) if len(move) > 3 else 0  # type: ignore[call-overload]
            self._directions = RecentDirections()
            self._directions.set_state(directions)  # type: ignore[arg-type]
            both = self._working_rows(np.frombuffer(last, dtype=np.uint8))  # type: ignore[call-overload]
            dim = self._reservoir.working_width
            previous, anchor = self._reservoir.working_rows()
            previous[:] = both[:dim]
            # A state from before the chain's anchor holds the previous query only.
            anchor[:] = both[dim:] if len(both) == 2 * dim else both
        self._reservoir.set_state(self._kept_rows(res))  # type: ignore[arg-type]
        self._resend.set_state(resend)  # type: ignore[arg-type]
        n, mean, m2, m3, m4 = (float(v) for v in m)  # type: ignore[attr-defined]
        self._running = _RUNNING.pack(n, mean, m2, m3, m4, last_move)


def _with_distance(
    n0: float, mean: float, m2: float, m3: float, m4: float, x: float
) -> tuple[float, float, float, float, float]:
    """The moments (count, mean, M2, M3, M4) with one more distance ``x``: Pébay's one-pass
    update of the first four central moments.

    >>> _with_distance(1.0, 2.0, 0.0, 0.0, 0.0, 4.0)
    (2.0, 3.0, 2.0, 0.0, 2.0)
    """
    n = n0 + 1
    delta = x - mean
    dn = delta / n
    term = delta * dn * n0
    mean += dn
    m4 += term * dn * dn * (n * n - 3 * n + 3) + 6 * dn * dn * m2 - 4 * dn * m3
    m3 += term * dn * (n - 2) - 3 * dn * m2
    m2 += term
    return n, mean, m2, m3, m4
