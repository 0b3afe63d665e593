"""Rate and regularity of one client's queries, in event time (never the clock).

``rate_per_hour`` is an exponentially decayed count (half-life ``half_life`` seconds);
``burstiness`` is (sigma - mu) / (sigma + mu) of inter-arrival gaps (Goh & Barabási):
-1 for a metronome, 0 for a Poisson process, towards 1 for bursts. Events that arrive
slightly out of order count as simultaneous.
"""

from __future__ import annotations

import functools
import math
import struct

#: A rate's decayed level and its gaps' weighted mean and mean square (seconds): one bytes
#: object of 64 bytes rather than three floats of 32 each, which every client's second query
#: would set.
_LEVEL_AND_GAPS = struct.Struct("<3d")
#: Those of no query yet, and of one (a level of 1.0): shared by every client until its next.
_NO_QUERY = _LEVEL_AND_GAPS.pack(0.0, 0.0, 0.0)
_ONE_QUERY = _LEVEL_AND_GAPS.pack(1.0, 0.0, 0.0)


class QueryRate:
    """Decayed rate and inter-arrival burstiness.

    >>> r = QueryRate(half_life=3600.0)
    >>> for t in range(0, 3600, 60):
    ...     r.update(float(t))
    >>> round(r.rate_per_hour, 1), round(r.burstiness, 2)
    (30.2, -1.0)
    """

    __slots__ = ("_gaps", "_level_and_gaps", "_t", "half_life")

    def __init__(self, half_life: float = 3600.0) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self.half_life = half_life
        self._t: float | None = None
        self._level_and_gaps = _NO_QUERY
        self._gaps = 0

    def update(self, ts: float) -> None:
        if self._t is None:
            self._t, self._level_and_gaps = ts, _ONE_QUERY
            return
        gap = max(0.0, ts - self._t)
        level, gap_mean, gap_sq = _LEVEL_AND_GAPS.unpack(self._level_and_gaps)
        level *= math.exp(-_decay(self.half_life) * gap)
        self._gaps += 1
        w = 1.0 / min(self._gaps, 200)
        gap_mean += w * (gap - gap_mean)
        gap_sq += w * (gap * gap - gap_sq)
        self._level_and_gaps = _LEVEL_AND_GAPS.pack(level + 1.0, gap_mean, gap_sq)
        self._t = max(self._t, ts)

    @property
    def rate_per_hour(self) -> float:
        """Decayed queries per hour at the last event."""
        level: float = _LEVEL_AND_GAPS.unpack(self._level_and_gaps)[0]
        return level * math.log(2) / self.half_life * 3600.0

    @property
    def burstiness(self) -> float:
        if self._gaps < 2:
            return 0.0
        _, gap_mean, gap_sq = _LEVEL_AND_GAPS.unpack(self._level_and_gaps)
        sigma = math.sqrt(max(0.0, gap_sq - gap_mean**2))
        total = sigma + gap_mean
        return (sigma - gap_mean) / total if total > 0 else 0.0

    def get_state(self) -> tuple[float | None, float, int, float, float]:
        level, gap_mean, gap_sq = _LEVEL_AND_GAPS.unpack(self._level_and_gaps)
        return self._t, level, self._gaps, gap_mean, gap_sq

    def set_state(self, state: tuple[float | None, float, int, float, float]) -> None:
        self._t, level, self._gaps, gap_mean, gap_sq = state
        self._level_and_gaps = _LEVEL_AND_GAPS.pack(level, gap_mean, gap_sq)


@functools.cache
def _decay(half_life: float) -> float:
    """The decay rate per second of a half-life: computed once, read at each query, kept by no client."""
    return math.log(2) / half_life
