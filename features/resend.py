"""Exact resends: has this client sent this very input recently?

Benign clients resend identical inputs (retries, QA jobs replaying a fixed test set); a
distance statistic that counts those as "near-duplicates" flags them. Exact resends are
told apart first with two rotating Bloom filters of the input bytes: membership in either
means "sent within the last ``2 * rotate_every`` distinct inputs". 256 bytes of state.
"""

from __future__ import annotations

import zlib

_BITS = 1024


class ExactResendFilter:
    """Remember recent inputs by hash, in fixed memory.

    >>> f = ExactResendFilter()
    >>> f.seen_before(b"abc"), f.seen_before(b"abc"), f.seen_before(b"abd")
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

    def seen_before(self, data: bytes) -> bool:
        """True if ``data`` was seen recently; remembers it either way."""
        a = zlib.crc32(data)
        b = zlib.adler32(data)
        positions = (a % _BITS, (a >> 16) % _BITS, b % _BITS)
        current, previous = self._current, self._previous
        if all(current[p >> 3] >> (p & 7) & 1 for p in positions) or all(
            previous[p >> 3] >> (p & 7) & 1 for p in positions
        ):
            return True
        for p in positions:
            current[p >> 3] |= 1 << (p & 7)
        self._inserted += 1
        if self._inserted >= self.rotate_every:
            self._previous, self._current, self._inserted = current, bytearray(_BITS // 8), 0
        return False

    def get_state(self) -> tuple[bytes, bytes, int]:
        return bytes(self._current), bytes(self._previous), self._inserted

    def set_state(self, state: tuple[bytes, bytes, int]) -> None:
        current, previous, inserted = state
        self._current, self._previous, self._inserted = bytearray(current), bytearray(previous), int(inserted)
