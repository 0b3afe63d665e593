"""Repeated directions: is this near-duplicate a move the client has already made?

What-if analysis (one record, one or two features swept over a grid; brightness or
contrast of one image) is built like a perturbation chain: each query is a small,
often structured step from an earlier one. What tells it apart is where the steps go: a
sweep moves again and again along one line, so the step from a query to its nearest
earlier one keeps nearly the same *direction*. Extraction steps (sign-gradient
augmentation, random-direction steps, gradient-estimation probes) point somewhere new at
nearly every step, and keep reaching new regions.

A direction is summarised by a 64-bit SimHash of the difference (signs of its projections on
64 fixed pseudo-random hyperplanes, Charikar 2002): two directions at angle ``t`` differ in
about ``64 t / pi`` bits, so "within ``MAX_BITS`` bits, or of all but ``MAX_BITS``" means
"within about 20 degrees of the same line, either way along it". A client remembers the
last ``slots`` directions it took.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from querywatch.features.jit import compiled
from querywatch.features.nearest import BACKGROUND

#: Hamming distance between SimHashes under which two directions count as one line.
MAX_BITS = 7


@compiled
def direction_simhash(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> int:
    """SimHash of the direction ``b - a`` on 63 hyperplanes (a non-negative int), over the
    features that moved by more than one code unit; 0 when none did."""
    acc = np.zeros(64, np.int64)
    moved = False
    for k in range(a.shape[0]):
        d = np.int64(b[k]) - np.int64(a[k])  # signed: numba reads bytes as unsigned words
        if d > 1 or d < -1:
            moved = True
            # The k-th feature's weights on the 64 hyperplanes: signed bytes of 8 hashes of k
            # (varied magnitudes, so that sums of a few equal moves rarely tie at zero).
            for part in range(8):
                h = (np.uint64(8 * k + part) + np.uint64(0x9E3779B97F4A7C15)) * np.uint64(0xBF58476D1CE4E5B9)
                h ^= h >> np.uint64(31)
                h *= np.uint64(0x94D049BB133111EB)
                h ^= h >> np.uint64(29)
                for j in range(8):
                    w = np.int64((h >> np.uint64(8 * j)) & np.uint64(255)) - 128
                    acc[8 * part + j] += d * (2 * w + 1)
    if not moved:
        return 0
    out = np.int64(0)
    for bit in range(63):
        if acc[bit] > 0:
            out |= np.int64(1) << np.int64(bit)
    return int(out)


@compiled
def move_and_shared(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> tuple[int, int]:
    """The squared distance of two codes and how many features they hold at the same value
    (within one code unit, the rounding's) inside the range, in one pass: two records of
    continuous data share few, a record and its explainer's coalition (part of its features
    kept, the rest from another record), occlusion or sweep share many
    (``models.steps.record_limits`` says how many is more than two records share). A value
    at either end of the range (within ``features.nearest.BACKGROUND``, as ``is_masking``
    counts one) is left out: any two records share a background, or a binary or clipped
    feature's value, by chance (random binary inputs hold half their features at one value;
    two images of the simulator's digits up to 18 of 64, at the 99.9th percentile, where
    inside the range they share up to 4).

    >>> a = np.array([10, 200, 31, 90, 0, 255], np.uint8)
    >>> move_and_shared(a, np.array([11, 60, 31, 7, 1, 255], np.uint8))
    (26491, 2)
    """
    d2 = np.int64(0)
    shared = 0
    for k in range(a.shape[0]):
        x = np.int64(b[k]) - np.int64(a[k])
        d2 += x * x
        if -1 <= x <= 1 and min(a[k], b[k]) > BACKGROUND and max(a[k], b[k]) < 255 - BACKGROUND:
            shared += 1
    return int(d2), shared


#: A move of at most this many features (each by more than one code unit) is a sweep's
#: whatever its length: what-if analysis moves one or two features of a record.
SWEPT_FEATURES = 2


@compiled
def is_sparse_move(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> bool:
    """Whether ``b - a`` moves at least one and at most ``SWEPT_FEATURES`` features by more
    than one code unit. A sweep's move is near whatever the input's width in RMS terms only
    on a wide input: half a feature's range is 0.06 of the ranges (RMS) over 64 features, 0.11
    over 20 and 0.17 over 8, past the near-duplicate limit (0.1), so on a narrow model a
    coarse grid of two features (three or five levels each) was new at every point.
    ``features.distance`` takes such a move as a sweep's only while the query also differs
    from the start of its chain in at most as many features: one record's slice, not a
    lattice walked across every feature one at a time. A sweep keeps the rest of its record,
    so on an input of two features only a move of one is a sweep's: every move of a point
    in a plane moves at most two, and taken for sweeps, with a direction among the last
    eight within 20 degrees of most, they hid what a uniform-random thief sent beyond the
    data (a two-input model's thieves, 12% of their queries farther than any reference input,
    were never alerted)."""
    most = min(SWEPT_FEATURES, a.shape[0] - 1)
    moved = 0
    for k in range(a.shape[0]):
        d = np.int64(b[k]) - np.int64(a[k])
        if d > 1 or d < -1:
            moved += 1
            if moved > most:
                return False
    return moved > 0


@compiled
def along_span(last: NDArray[np.uint8], code: NDArray[np.uint8], anchor: NDArray[np.uint8]) -> bool:
    """Whether the move ``last -> code`` goes along the line ``anchor -> code`` (within 60
    degrees, either way), or is too small to have a direction of its own (at most one code
    unit per feature, RMS: 8-bit rounding then sets its angle). A sweep walks its line; probes
    scattered around one point share the line from the chain's start to that point, and move
    across it."""
    dot = np.int64(0)
    move = np.int64(0)
    span = np.int64(0)
    for k in range(code.shape[0]):
        m = np.int64(code[k]) - np.int64(last[k])
        a = np.int64(code[k]) - np.int64(anchor[k])
        dot += m * a
        move += m * m
        span += a * a
    return bool(move <= code.shape[0] or 4 * dot * dot >= move * span)


def _bits(x: int) -> int:
    return int(x).bit_count()


class RecentDirections:
    """The last ``slots`` step directions of one client (8 bytes each).

    >>> r = RecentDirections(slots=2)
    >>> line, other, opposite = 0xFFFF, 0xFFFF << 20, ~0xFFFF & (1 << 63) - 1
    >>> r.seen_before(line), r.seen_before(line ^ 0b101), r.seen_before(other), r.seen_before(opposite)
    (False, True, False, True)
    """

    __slots__ = ("_next", "_ring", "slots")

    def __init__(self, slots: int = 8) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        # Grows to ``slots`` as directions come (most clients never take one); -1: an empty
        # slot of a ring stored full-size.
        self._ring: Sequence[int] = ()
        self._next = 0

    def contains(self, signature: int) -> bool:
        """True if ``signature`` is within ``MAX_BITS`` bits of a remembered direction, or of
        its opposite (all bits but ``MAX_BITS`` differ)."""
        for old in self._ring:
            if old >= 0:
                differ = _bits(old ^ signature)
                if differ <= MAX_BITS or differ >= 63 - MAX_BITS:
                    return True
        return False

    def seen_before(self, signature: int) -> bool:
        """``contains(signature)``; remembers it when not."""
        if self.contains(signature):
            return True
        ring = self._ring
        if not isinstance(ring, array):
            ring = self._ring = array("q", ring)
        if len(ring) < self.slots:
            ring.append(signature)
        else:
            ring[self._next] = signature
        self._next = (self._next + 1) % self.slots
        return False

    def get_state(self) -> tuple[bytes, int]:
        """The ring full-size, empty slots -1."""
        return array("q", [*self._ring, *[-1] * (self.slots - len(self._ring))]).tobytes(), self._next

    def set_state(self, state: tuple[bytes, int]) -> None:
        ring, self._next = state
        self._ring = array("q", ring)
