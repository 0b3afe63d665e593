"""A bounded, uniform sample of a client's past queries, as 8-bit codes.

PRADA compares each new query with *all* the client's earlier queries; that memory grows
without bound. A uniform reservoir (Vitter's algorithm R) of ``capacity`` past queries keeps
the same statistics in expectation with fixed memory: a thief's perturbation chain of ``s``
seeds leaves, in a reservoir of ``c``, a relative of each new query with probability about
``1 - (1 - 1/s)^c``, while benign clients rarely have one at all (``c`` comes from a byte
budget: ``features.distance.reservoir_capacity``). Replacement choices come
from a hash of (seed, count), so the same events always give the same reservoir.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from querywatch.features.nearest import nearest_code

_MASK = (1 << 64) - 1
#: Rows a new reservoir has; it doubles as it fills, up to its capacity.
_FIRST_ROWS = 1


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
    """Uniform sample of at most ``capacity`` codes of length ``dim``.

    >>> r = QueryReservoir(capacity=3, dim=2, seed=7)
    >>> for v in ([0, 0], [10, 10], [20, 20], [30, 30]):
    ...     r.offer(np.array(v, dtype=np.uint8))
    >>> len(r), r.seen
    (3, 4)
    >>> index, d2, same_label_d2 = r.nearest(np.array([11, 9], dtype=np.uint8), label=0)
    >>> d2 <= 2, same_label_d2 == d2
    (True, True)
    """

    __slots__ = ("_codes", "_filled", "_labels", "capacity", "dim", "seed", "seen")

    def __init__(self, capacity: int, dim: int, seed: int = 0) -> None:
        if capacity < 1 or dim < 1:
            raise ValueError("capacity and dim must be >= 1")
        self.capacity = capacity
        self.dim = dim
        self.seed = seed
        self.seen = 0
        self._filled = 0
        # Rows are added as they fill (most clients send a few queries, and a million
        # clients with a full 40 x 64 block each would need 2.7 GB for it).
        rows = min(capacity, _FIRST_ROWS)
        self._codes: NDArray[np.uint8] = np.zeros((rows, dim), dtype=np.uint8)
        self._labels: NDArray[np.uint8] = np.zeros(rows, dtype=np.uint8)

    def __len__(self) -> int:
        return self._filled

    def nearest(self, code: NDArray[np.uint8], label: int) -> tuple[int, int, int]:
        """(index of the stored code nearest to ``code``, its squared distance, squared
        distance to the nearest stored code labelled ``label`` or -1); the reservoir must
        not be empty."""
        return nearest_code(self._codes, self._labels, self._filled, code, label)

    def code(self, index: int) -> NDArray[np.uint8]:
        row: NDArray[np.uint8] = self._codes[index]
        return row

    def sample(self) -> tuple[NDArray[np.uint8], NDArray[np.uint8], int]:
        """(codes, labels, filled): the first ``filled`` rows are the sample (not copies;
        there may be fewer than ``capacity`` rows)."""
        return self._codes, self._labels, self._filled

    @property
    def labels(self) -> NDArray[np.uint8]:
        """Class index stored with each code (0 when the caller gave none)."""
        return self._labels[: self._filled]

    def offer(self, code: NDArray[np.uint8], label: int = 0) -> None:
        """Show the reservoir one more query; it is kept with probability capacity / seen."""
        self.seen += 1
        if self._filled < self.capacity:
            slot = self._filled
            if slot == len(self._codes):
                self._reserve(min(self.capacity, 2 * slot))
            self._filled += 1
        else:
            slot = mix64(self.seed ^ (self.seen * 0x2545F4914F6CDD1D & _MASK)) % self.seen
            if slot >= self.capacity:
                return
        self._codes[slot] = code
        self._labels[slot] = label

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` codes, keeping the first ``filled``."""
        codes = np.zeros((rows, self.dim), dtype=np.uint8)
        labels = np.zeros(rows, dtype=np.uint8)
        codes[: self._filled] = self._codes[: self._filled]
        labels[: self._filled] = self._labels[: self._filled]
        self._codes, self._labels = codes, labels

    def get_state(self) -> tuple[int, bytes, bytes]:
        return self.seen, self._codes[: self._filled].tobytes(), self.labels.tobytes()

    def set_state(self, state: tuple[int, bytes, bytes]) -> None:
        seen, raw, labels = state
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, self.dim)
        if len(rows) > self.capacity:
            raise ValueError(f"{len(rows)} stored codes exceed the capacity of {self.capacity}")
        self.seen = int(seen)
        self._filled = 0
        self._reserve(max(len(rows), min(self.capacity, _FIRST_ROWS)))
        self._filled = len(rows)
        self._codes[: self._filled] = rows
        self._labels[: self._filled] = np.frombuffer(labels, dtype=np.uint8)
