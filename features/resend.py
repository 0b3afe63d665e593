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
        self._current = 0
        self._previous = 0
        self._inserted = 0

    @staticmethod
    def _mask(data: bytes) -> int:
        a = zlib.crc32(data)
        b = zlib.adler32(data)
        return (1 << (a % _BITS)) | (1 << ((a >> 16) % _BITS)) | (1 << (b % _BITS))

    def seen_before(self, data: bytes) -> bool:
        """True if ``data`` was seen recently; remembers it either way."""
        mask = self._mask(data)
        if self._current & mask == mask or self._previous & mask == mask:
            return True
        self._current |= mask
        self._inserted += 1
        if self._inserted >= self.rotate_every:
            self._previous, self._current, self._inserted = self._current, 0, 0
        return False

    def get_state(self) -> tuple[int, int, int]:
        return self._current, self._previous, self._inserted

    def set_state(self, state: tuple[int, int, int]) -> None:
        self._current, self._previous, self._inserted = (int(v) for v in state)
