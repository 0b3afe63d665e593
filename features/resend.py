"""Exact resends: has this client sent this very input recently?

Benign clients resend identical inputs (retries, QA jobs replaying a fixed test set); a
distance statistic that counts those as "near-duplicates" flags them. Exact resends are
told apart first with two rotating Bloom filters of a 64-bit hash of the input's exact
bits: membership in either means "sent within the last ``2 * rotate_every`` distinct
inputs". 512 bytes of state at most: a filter with few bits set is kept as the list of
those bits (two bytes each) until it would outgrow the bitset, so that a client of a few
queries costs a few bytes here (most clients of a public API send a handful).

A resend adds no evidence, so a fresh query mistaken for one is a query the tests never
see. Two defences: 2,048 bits and four positions per filter keep that mistake below 3%
of fresh queries (1,024 bits and three positions let it reach 27%), and the hash is keyed
by a secret of the deployment (``key``: the engine derives it from the reference
profile), so a thief cannot craft fresh queries that land on bits it has already set.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from querywatch.features.jit import compiled

_BITS = 2048
_MASK = _BITS - 1
_BYTES = _BITS // 8
#: A sparse filter's bit ``p`` as two bytes, the first with its high bit set and the second
#: without, so that ``_CODES[p] in sparse`` can only match where a bit's code starts.
_CODES = tuple(bytes((0x80 | p >> 7, p & 0x7F)) for p in range(_BITS))
#: Bytes a sparse filter holds at most (64 bits) before it becomes the bitset.
_SPARSE_BYTES = 128


@compiled
def input_hashes(rows: NDArray[np.float64], key: int) -> NDArray[np.uint64]:
    """A 64-bit hash, keyed by ``key`` (0 <= key < 2**63), of the exact bits of each row
    (equal rows, equal hashes).

    Every word is folded in with a multiply and a shift, so that values with few
    significant bits (whole numbers, halves) still spread over all 64 bits.
    """
    bits = rows.view(np.uint64)
    out = np.empty(bits.shape[0], np.uint64)
    multiplier = np.uint64(0xFF51AFD7ED558CCD)
    shift = np.uint64(32)
    for i in range(bits.shape[0]):
        h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(key) ^ np.uint64(bits.shape[1])
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
    >>> a, b = input_hashes(np.array([[0.5, 1.0], [0.5, 2.0]]), key=12345).tolist()
    >>> f.seen_before(a), f.seen_before(a), f.seen_before(b)
    (False, True, False)
    """

    __slots__ = ("_current", "_inserted", "_previous", "rotate_every")

    def __init__(self, rotate_every: int = 256) -> None:
        if rotate_every < 1:
            raise ValueError("rotate_every must be >= 1")
        self.rotate_every = rotate_every
        # Both filters start sparse (the codes of their set bits); read-only until written,
        # so every new filter shares the empty ones.
        self._current: bytes | bytearray = b""
        self._previous: bytes | bytearray = b""
        self._inserted = 0

    def seen_before(self, input_hash: int) -> bool:
        """True if an input with this hash was seen recently; remembers it either way."""
        # Unrolled: this runs for every query.
        p, q, r, s = (
            input_hash & _MASK,
            input_hash >> 11 & _MASK,
            input_hash >> 22 & _MASK,
            input_hash >> 33 & _MASK,
        )
        c, o = self._current, self._previous
        if len(c) == _BYTES:
            if c[p >> 3] >> (p & 7) & c[q >> 3] >> (q & 7) & c[r >> 3] >> (r & 7) & c[s >> 3] >> (s & 7) & 1:
                return True
        elif _CODES[p] in c and _CODES[q] in c and _CODES[r] in c and _CODES[s] in c:
            return True
        if len(o) == _BYTES:
            if o[p >> 3] >> (p & 7) & o[q >> 3] >> (q & 7) & o[r >> 3] >> (r & 7) & o[s >> 3] >> (s & 7) & 1:
                return True
        elif _CODES[p] in o and _CODES[q] in o and _CODES[r] in o and _CODES[s] in o:
            return True
        if len(c) == _BYTES:
            c[p >> 3] |= 1 << (p & 7)  # type: ignore[index]
            c[q >> 3] |= 1 << (q & 7)  # type: ignore[index]
            c[r >> 3] |= 1 << (r & 7)  # type: ignore[index]
            c[s >> 3] |= 1 << (s & 7)  # type: ignore[index]
        else:
            # A sparse filter is immutable bytes, copied on write: a bytearray keeps its
            # bytes in a second block, 32 bytes more for a client of a few queries.
            for bit in (p, q, r, s):
                code = _CODES[bit]
                if code not in c:
                    c += code
            self._current = c if len(c) <= _SPARSE_BYTES else _dense(c)
        self._inserted += 1
        if self._inserted >= self.rotate_every:
            # A client that fills a filter fills the next: it starts as the bitset.
            self._previous, self._current, self._inserted = self._current, bytearray(_BYTES), 0
        return False

    def get_state(self) -> tuple[bytes, bytes, int]:
        """Both filters as bitsets, whatever their form in memory."""
        return _bitset(self._current), _bitset(self._previous), self._inserted

    def set_state(self, state: tuple[bytes, bytes, int]) -> None:
        current, previous, inserted = state
        if len(current) != _BYTES or len(previous) != _BYTES:
            raise ValueError(f"a resend filter is {_BYTES} bytes")
        self._current, self._previous = _compact(current), _compact(previous)
        self._inserted = int(inserted)


def _dense(sparse: bytes | bytearray) -> bytearray:
    """The bitset of a sparse filter."""
    bits = bytearray(_BYTES)
    for i in range(0, len(sparse), 2):
        bit = (sparse[i] & 0x7F) << 7 | sparse[i + 1]
        bits[bit >> 3] |= 1 << (bit & 7)
    return bits


def _bitset(f: bytes | bytearray) -> bytes:
    return bytes(f) if len(f) == _BYTES else bytes(_dense(f))


def _compact(bits: bytes) -> bytes | bytearray:
    """A stored bitset in the smaller of the two forms (sparse bytes are rebuilt on write)."""
    if int.from_bytes(bits, "little").bit_count() * 2 > _SPARSE_BYTES:
        return bytearray(bits)
    return b"".join(
        _CODES[8 * i + j] for i, byte in enumerate(bits) if byte for j in range(8) if byte >> j & 1
    )
