"""A bounded, uniform sample of a client's past queries, as 8-bit codes.

PRADA compares each new query with *all* the client's earlier queries; that memory grows
without bound. A uniform reservoir (Vitter's algorithm R) of ``capacity`` past queries keeps
the same statistics in expectation with fixed memory: a thief's perturbation chain of ``s``
seeds leaves, in a reservoir of ``c``, a relative of each new query with probability about
``1 - (1 - 1/s)^c``, while benign clients rarely have one at all (``c`` comes from a byte
budget: ``features.layout``). Replacement choices come
from a hash of (seed, count), so the same events always give the same reservoir.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from querywatch.features.layout import RECENT_QUERIES
from querywatch.features.nearest import is_recent, nearest_code

_MASK = (1 << 64) - 1
#: Rows a new reservoir has; it doubles as it fills, up to its capacity.
_FIRST_ROWS = 1
#: A query the reservoir did not keep, in the ring of recent queries' rows (a row is a byte).
_NOT_KEPT = 255


def mix64(x: int) -> int:
    """splitmix64 finaliser: a well-spread 64-bit hash of an integer.

    >>> mix64(1) != mix64(2)
    True
    """
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class QueryReservoir:
    """Uniform sample of at most ``capacity`` codes of length ``dim``, with their labels.

    Codes, labels and, with ``working_width``, two rows of that many bytes ahead of them
    where the owner keeps codes of its own (the distances: the previous query and the start
    of its chain, which keep more of a query's features than a sampled row: ``features.layout``)
    share one flat array: each numpy array costs a client about 100 bytes of header. Once
    full, it also keeps there which row each of its last ``RECENT_QUERIES`` queries replaced (a ring
    of bytes; while it fills, row ``i`` is query ``i + 1``), to tell a row written a moment
    ago from one sampled long before (``recent``).

    >>> r = QueryReservoir(capacity=3, dim=2, seed=7)
    >>> for v in ([0, 0], [10, 10], [20, 20], [30, 30]):
    ...     r.offer(np.array(v, dtype=np.uint8))
    >>> len(r), r.seen
    (3, 4)
    >>> index, d2, same_label_d2, parent = r.nearest(np.array([11, 9], dtype=np.uint8), label=0)
    >>> d2 <= 2, same_label_d2 == d2
    (True, True)
    """

    __slots__ = ("_filled", "_flat", "_rows", "capacity", "dim", "seed", "seen", "working_width")

    def __init__(self, capacity: int, dim: int, seed: int = 0, *, working_width: int = 0) -> None:
        if not 1 <= capacity < _NOT_KEPT or dim < 1 or working_width < 0:
            raise ValueError(f"capacity must lie in 1..{_NOT_KEPT - 1}, dim >= 1, working_width >= 0")
        self.capacity = capacity
        self.dim = dim
        self.seed = seed
        self.working_width = working_width
        self.seen = 0
        self._filled = 0
        # Rows are added as they fill (most clients send a few queries, and a million
        # clients with a full 72 x 33 block each would need 2.4 GB for it). The layout:
        # the two working rows, then ``_rows`` codes, then their ``_rows`` labels, then (once
        # full) the ring of recent queries' slots.
        self._rows = min(capacity, _FIRST_ROWS)
        self._flat: NDArray[np.uint8] = np.zeros(self._head + self._rows * (dim + 1), dtype=np.uint8)

    def __len__(self) -> int:
        return self._filled

    @property
    def _head(self) -> int:
        """Bytes of the working rows, ahead of the codes."""
        return 2 * self.working_width

    @property
    def _ring(self) -> int:
        """Where the ring of recent queries' slots starts (the array's end before it has one)."""
        return self._head + self._rows * (self.dim + 1)

    def recent(self, index: int) -> bool:
        """Whether the stored code at ``index`` was written by one of the last ``RECENT_QUERIES``
        queries offered (a state stored before the ring has no recent rows once full)."""
        return bool(is_recent(self._flat, self._ring, self._rows, self.seen, RECENT_QUERIES, index))

    def written_before(self, index: int) -> int:
        """The row that the query just before the one that wrote row ``index`` wrote, while
        that query is one of the last ``RECENT_QUERIES`` and its row was not written again
        since; -1 otherwise (kept nowhere, or too long ago to say). A grid walked line by
        line steps from the point one line back, and the point before it from the one
        before that (``features.distance``).

        >>> r = QueryReservoir(capacity=4, dim=1, seed=3)
        >>> for v in range(3):
        ...     r.offer(np.array([v], dtype=np.uint8))
        >>> r.written_before(2), r.written_before(0)
        (1, -1)
        """
        seen, rows = self.seen, self._rows
        oldest = max(1, seen - RECENT_QUERIES + 1)
        if seen <= rows:  # still filling: row i is query i + 1
            return index - 1 if oldest <= index < seen else -1
        ring = self._flat[self._ring :]
        writer = next((q for q in range(seen, oldest - 1, -1) if ring[q % RECENT_QUERIES] == index), 0)
        if writer - 1 < oldest:
            return -1
        row = int(ring[(writer - 1) % RECENT_QUERIES])
        later = (int(ring[q % RECENT_QUERIES]) for q in range(writer, seen + 1))
        return -1 if row == _NOT_KEPT or row in later else row

    def nearest(self, code: NDArray[np.uint8], label: int, step_limit: int = 0) -> tuple[int, int, int, int]:
        """(index of the stored code nearest to ``code``, its squared distance, squared
        distance to the nearest stored code labelled ``label`` or -1, and the index of the
        stored code ``code`` is a structured step from or -1: ``features.nearest.step_parent``,
        looked for when the nearest lies within squared distance ``step_limit``); the
        reservoir must not be empty."""
        flat, start, rows, filled = self._flat, self._head, self._rows, self._filled
        return nearest_code(flat, start, rows, filled, code, label, step_limit, self.seen, RECENT_QUERIES)

    def code(self, index: int) -> NDArray[np.uint8]:
        at = self._head + index * self.dim
        row: NDArray[np.uint8] = self._flat[at : at + self.dim]
        return row

    def working_rows(self) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """The owner's two rows, as views to read and write until the next ``offer`` (which
        may move them)."""
        flat, width = self._flat, self.working_width
        return flat[:width], flat[width : 2 * width]

    def sample(self) -> tuple[NDArray[np.uint8], NDArray[np.uint8], int]:
        """(codes, labels, filled): the first ``filled`` rows are the sample (not copies;
        there may be fewer than ``capacity`` rows)."""
        at = self._head
        end = at + self._rows * self.dim
        codes = self._flat[at:end].reshape(self._rows, self.dim)
        return codes, self._flat[end : end + self._rows], self._filled

    @property
    def labels(self) -> NDArray[np.uint8]:
        """Class index stored with each code (0 when the caller gave none)."""
        at = self._head + self._rows * self.dim
        labels: NDArray[np.uint8] = self._flat[at : at + self._filled]
        return labels

    def offer(self, code: NDArray[np.uint8], label: int = 0) -> None:
        """Show the reservoir one more query; it is kept with probability capacity / seen."""
        self.seen += 1
        if self._filled < self.capacity:
            slot = self._filled
            if slot == self._rows:
                self._reserve(min(self.capacity, 2 * slot))
            self._filled += 1
        else:
            slot = mix64(self.seed ^ (self.seen * 0x2545F4914F6CDD1D & _MASK)) % self.seen
        if self.seen > self.capacity:  # rows are replaced: the ring says which, and when
            at = self._ring
            if len(self._flat) == at:
                self._start_ring()
            self._flat[at + self.seen % RECENT_QUERIES] = slot if slot < self.capacity else _NOT_KEPT
            if slot >= self.capacity:
                return
        dim, flat, head = self.dim, self._flat, self._head
        at = head + slot * dim
        flat[at : at + dim] = code
        flat[head + self._rows * dim + slot] = label

    def _start_ring(self, ring: NDArray[np.uint8] | None = None) -> None:
        """Add ``ring`` to a full reservoir, or by default the queries that filled it (query
        ``q`` wrote row ``q - 1``), each at position ``q % RECENT_QUERIES``."""
        if ring is None:
            ring = np.full(RECENT_QUERIES, _NOT_KEPT, dtype=np.uint8)
            for query in range(max(1, self.seen - RECENT_QUERIES + 1), min(self.seen, self.capacity + 1)):
                ring[query % RECENT_QUERIES] = query - 1
        self._flat = np.concatenate([self._flat, ring])

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` codes, keeping the working rows and the first ``filled``."""
        codes, labels, filled = self.sample()
        head, ring = self._head, self._flat[self._ring :]
        flat = np.zeros(head + rows * (self.dim + 1) + len(ring), dtype=np.uint8)
        flat[:head] = self._flat[:head]
        flat[head : head + filled * self.dim] = codes[:filled].reshape(-1)
        at = head + rows * self.dim
        flat[at : at + filled] = labels[:filled]
        flat[at + rows :] = ring
        self._flat, self._rows = flat, rows

    def get_state(self) -> tuple[int, bytes, bytes, bytes]:
        """(seen, codes, labels, recent): ``recent`` is the ring as a bitmap of the positions
        whose query replaced a row, then those rows, so that a long-running client, whose
        queries rarely replace one, stores a few bytes of it (b"" when none did)."""
        codes, labels, filled = self.sample()
        ring = self._flat[self._ring :]
        kept = ring != _NOT_KEPT
        recent = np.packbits(kept).tobytes() + ring[kept].tobytes() if kept.any() else b""
        return self.seen, codes[:filled].tobytes(), labels[:filled].tobytes(), recent

    def set_state(self, state: tuple[int, bytes, bytes] | tuple[int, bytes, bytes, bytes]) -> None:
        """Restore the sample (the working rows are the owner's: they stay as they are). A
        state stored before the ring of recent queries has none: no row of a full reservoir
        counts as recent until ``RECENT_QUERIES`` more queries have come."""
        seen, raw, labels, *more = state
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, self.dim)
        stored = np.frombuffer(labels, dtype=np.uint8)
        if len(stored) != len(rows):
            raise ValueError(f"{len(stored)} labels for {len(rows)} stored codes")
        ring = _ring_from(bytes(more[0]), len(rows), self.capacity) if more and more[0] else None
        if len(rows) > self.capacity:
            # Stored under a larger budget (a wide input's, before its working rows took their
            # share of it): the first rows are as uniform a sample of the client's queries.
            rows, stored = rows[: self.capacity], stored[: self.capacity]
        self.seen = int(seen)
        self._filled = 0
        self._flat = self._flat[: self._ring]  # any ring of the state replaced goes
        self._reserve(max(len(rows), min(self.capacity, _FIRST_ROWS)))
        self._filled = len(rows)
        codes, kept, _ = self.sample()
        codes[: self._filled] = rows
        kept[: self._filled] = stored
        if self.seen > self.capacity:
            self._start_ring(np.full(RECENT_QUERIES, _NOT_KEPT, dtype=np.uint8) if ring is None else ring)


def _ring_from(stored: bytes, stored_rows: int, capacity: int) -> NDArray[np.uint8]:
    """The ring of recent queries' rows from its stored form (``QueryReservoir.get_state``),
    stored beside ``stored_rows`` rows, for a reservoir of ``capacity`` rows (rows past it,
    which the reservoir drops, are no longer kept)."""
    head = RECENT_QUERIES // 8
    kept = np.unpackbits(np.frombuffer(stored[:head], dtype=np.uint8)).astype(bool)
    rows = np.frombuffer(stored[head:], dtype=np.uint8)
    if len(stored) < head or len(rows) != int(kept.sum()) or (rows >= stored_rows).any():
        raise ValueError("a stored ring of recent queries that does not match its bitmap")
    ring = np.full(RECENT_QUERIES, _NOT_KEPT, dtype=np.uint8)
    ring[kept] = np.where(rows < capacity, rows, _NOT_KEPT)
    return ring
