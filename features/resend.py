"""Exact resends: has this client sent this very input recently?

Benign clients resend identical inputs (retries, QA jobs replaying a fixed test set); a
distance statistic that counts those as "near-duplicates" flags them. Exact resends are
told apart first with two rotating Bloom filters of a 64-bit hash of the input's exact
bits: membership in either means "sent within the last ``2 * rotate_every`` distinct
inputs". 256 bytes of state.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from features.jit import compiled

_BITS = 1024


@compiled
def input_hashes(rows: NDArray[np.float64]) -> NDArray[np.uint64]:
    """A 64-bit hash of the exact bits of each row (equal rows, equal hashes).

    Every word is folded in with a multiply and a shift, so that values with few
    significant bits (whole numbers, halves) still spread over all 64 bits.
    """
    bits = rows.view(np.uint64)
    out = np.empty(bits.shape[0], np.uint64)
    multiplier = np.uint64(0xFF51AFD7ED558CCD)
    shift = np.uint64(32)
    for i in range(bits.shape[0]):
        h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(bits.shape[1])
        for word in bits[i]:
            h = (h ^ word) * multiplier
            h ^= h >> shift
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        out[i] = h ^ (h >> shift)
    return out


class ExactResendFilter:
    """Remember recent inputs by their hash, in fixed memory.

    >>> f = ExactResendFilter()
    >>> a, b = input_hashes(np.array([[0.5, 1.0], [0.5, 2.0]])).tolist()
    >>> f.seen_before(a), f.seen_before(a), f.seen_before(b)
    (False, True, False)
    """

    __slots__ = ("_current", "_inserted", "_previous", "rotate_every")

    def __init__(self, rotate_every: int = 256) -> None:
        if rotate_every < 1:
            raise ValueError("rotate_every must be >= 1")
        self.rotate_every = rotate_every
        self._current = bytearray(_BITS // 8)
        self._previous = bytearray(_BITS // 8)
        self._inserted = 0

    def seen_before(self, input_hash: int) -> bool:
        """True if an input with this hash was seen recently; remembers it either way."""
        p, q, r = input_hash & 1023, (input_hash >> 10) & 1023, (input_hash >> 20) & 1023
        current, previous = self._current, self._previous
        if (
            current[p >> 3] >> (p & 7) & current[q >> 3] >> (q & 7) & current[r >> 3] >> (r & 7) & 1
            or previous[p >> 3] >> (p & 7) & previous[q >> 3] >> (q & 7) & previous[r >> 3] >> (r & 7) & 1
        ):
            return True
        current[p >> 3] |= 1 << (p & 7)
        current[q >> 3] |= 1 << (q & 7)
        current[r >> 3] |= 1 << (r & 7)
        self._inserted += 1
        if self._inserted >= self.rotate_every:
            self._previous, self._current, self._inserted = current, bytearray(_BITS // 8), 0
        return False

    def get_state(self) -> tuple[bytes, bytes, int]:
        return bytes(self._current), bytes(self._previous), self._inserted

    def set_state(self, state: tuple[bytes, bytes, int]) -> None:
        current, previous, inserted = state
        self._current, self._previous, self._inserted = bytearray(current), bytearray(previous), int(inserted)
