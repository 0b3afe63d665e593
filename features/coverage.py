"""Input-space coverage against the reference: distinct cells, at the same number of queries.

Distinct cells grow with the number of queries for everyone, so raw coverage is not
comparable across clients. The benign yardstick is the expected number of distinct cells
after ``n`` draws from the reference cell probabilities ``p``: ``sum_k 1 - (1 - p_k)^n``.
The ratio is a feature (the population model's, the dashboard's), not an evidence test:
benign clients differ more in how fast they open cells than any null drawn from the
reference allows (docs/DETECTION_EXPERIMENTS.md, *Tried and not adopted*), and the farthest-first thieves that
spread fastest are the isolation test's. The visits feed the campaign stage's union
coverage (``engine.summaries``).
"""

from __future__ import annotations

from array import array

import numpy as np
from numpy.typing import NDArray


class CellCoverage:
    """Cell visit counts of one client (uint16 each, saturating; one byte each until a count
    passes 255: most clients never visit a cell that often). While a client has made fewer
    visits than there are cells (and there are at most 256), it keeps its visits instead, a
    byte each (most clients of a public API send a handful of queries).

    >>> p = np.full(4, 0.25)
    >>> cov = CellCoverage(p, expected=np.array([1.0, 1.75, 2.3125, 2.734375]))
    >>> [cov.update(c) for c in (0, 1, 2)]
    [True, True, True]
    >>> round(cov.ratio, 3), cov.get_state() == np.array([1, 1, 1, 0], np.uint16).tobytes()
    (1.297, True)
    """

    __slots__ = ("_counts", "_expected", "_prob", "distinct", "n")

    def __init__(self, cell_prob: NDArray[np.float64], expected: NDArray[np.float64]) -> None:
        self._prob = cell_prob
        self._expected = expected
        # array, not numpy: one item is read and written per query, which numpy makes slow.
        self._counts: bytes | array[int] = b"" if len(cell_prob) <= 256 else array("B", bytes(len(cell_prob)))
        self.distinct = 0
        self.n = 0

    def update(self, cell: int) -> bool:
        """Learn one query's cell; True if the cell is new for this client."""
        counts = self._counts
        if isinstance(counts, bytes):  # its visits, a byte each
            if len(counts) < len(self._prob):
                count = counts.count(cell)
                self._counts = counts + _BYTES[cell]
                self.n += 1
                if count:
                    return False
                self.distinct += 1
                return True
            counts = self._counts = narrowest(array("H", self._histogram().tobytes()))
        count = counts[cell]
        if count < 65535:
            try:
                counts[cell] = count + 1
            except OverflowError:  # a count passed 255: two bytes each from now on
                self._counts = array("H", counts)
                self._counts[cell] = count + 1
        self.n += 1
        if count:
            return False
        self.distinct += 1
        return True

    @property
    def ratio(self) -> float:
        """Distinct cells visited / what a reference client reaches after as many queries."""
        if self.n == 0:
            return 0.0
        return self.distinct / float(self._expected[min(self.n, len(self._expected)) - 1])

    @property
    def entropy(self) -> float:
        """Entropy of the client's cell visits, in bits."""
        return entropy_bits(self._histogram())

    @property
    def divergence(self) -> float:
        """KL divergence (bits) of the client's cell visits from the reference cell probabilities."""
        return kl_bits(self._histogram(), self._prob)

    def _histogram(self) -> NDArray[np.uint16]:
        """The visits of each cell."""
        counts = self._counts
        if isinstance(counts, bytes):
            visits = np.frombuffer(counts, dtype=np.uint8)
            return np.bincount(visits, minlength=len(self._prob)).astype(np.uint16)
        return np.array(counts, dtype=np.uint16)

    def get_state(self) -> bytes:
        """The counts as uint16, whatever their form in memory."""
        return self._histogram().tobytes()

    def set_state(self, state: bytes) -> None:
        counts = np.frombuffer(state, dtype=np.uint16)
        if len(counts) != len(self._prob):
            raise ValueError(f"{len(counts)} cell counts for a profile of {len(self._prob)} cells")
        self.distinct = int(np.count_nonzero(counts))
        self.n = int(counts.sum())
        if len(counts) <= 256 and self.n <= len(counts):  # as its visits (their order is not needed)
            self._counts = np.repeat(np.arange(len(counts), dtype=np.uint8), counts).tobytes()
        else:
            self._counts = narrowest(array("H", state))


#: One byte of each value, to append a visit without building it.
_BYTES = tuple(bytes((i,)) for i in range(256))


def narrowest(counts: array[int]) -> array[int]:
    """``counts`` one byte each if every count fits (shared by the class features).

    >>> narrowest(array("H", [3, 255])).typecode, narrowest(array("I", [256])).typecode
    ('B', 'I')
    """
    return array("B", counts) if not counts or max(counts) <= 255 else counts


def entropy_bits(counts: NDArray[np.integer]) -> float:
    """Entropy in bits of a histogram (shared by the class features).

    >>> entropy_bits(np.array([1, 1, 1, 1]))
    2.0
    """
    total = float(counts.sum())
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum())


def kl_bits(counts: NDArray[np.integer], prior: NDArray[np.float64]) -> float:
    """KL divergence in bits of a histogram from a prior (shared by the class features).

    >>> kl_bits(np.array([1, 1]), np.array([0.5, 0.5]))
    0.0
    """
    total = float(counts.sum())
    if total == 0:
        return 0.0
    mask = counts > 0
    p = counts[mask] / total
    return float(max(0.0, (p * np.log2(p / prior[mask])).sum()))
