"""Rate and regularity of one client's queries, in event time (never the clock).

``rate_per_hour`` is an exponentially decayed count (half-life ``half_life`` seconds);
``burstiness`` is (sigma - mu) / (sigma + mu) of inter-arrival gaps (Goh & Barabási):
-1 for a metronome, 0 for a Poisson process, towards 1 for bursts. Events that arrive
slightly out of order count as simultaneous.
"""

from __future__ import annotations

import functools
import math


class QueryRate:
    """Decayed rate and inter-arrival burstiness.

    >>> r = QueryRate(half_life=3600.0)
    >>> for t in range(0, 3600, 60):
    ...     r.update(float(t))
    >>> round(r.rate_per_hour, 1), round(r.burstiness, 2)
    (30.2, -1.0)
    """

    __slots__ = ("_gap_mean", "_gap_sq", "_gaps", "_level", "_t", "half_life")

    def __init__(self, half_life: float = 3600.0) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self.half_life = half_life
        self._t: float | None = None
        self._level = 0.0
        self._gaps = 0
        self._gap_mean = 0.0
        self._gap_sq = 0.0

    def update(self, ts: float) -> None:
        if self._t is None:
            # The first query: a level of 1.0 as the constant, one float object shared by
            # every client of one query rather than 32 bytes each.
            self._t, self._level = ts, 1.0
            return
        gap = max(0.0, ts - self._t)
        self._level *= math.exp(-_decay(self.half_life) * gap)
        self._gaps += 1
        w = 1.0 / min(self._gaps, 200)
        self._gap_mean += w * (gap - self._gap_mean)
        self._gap_sq += w * (gap * gap - self._gap_sq)
        self._level += 1.0
        self._t = max(self._t, ts)

    @property
    def rate_per_hour(self) -> float:
        """Decayed queries per hour at the last event."""
        return self._level * math.log(2) / self.half_life * 3600.0

    @property
    def burstiness(self) -> float:
        if self._gaps < 2:
            return 0.0
        sigma = math.sqrt(max(0.0, self._gap_sq - self._gap_mean**2))
        total = sigma + self._gap_mean
        return (sigma - self._gap_mean) / total if total > 0 else 0.0

    def get_state(self) -> tuple[float | None, float, int, float, float]:
        return self._t, self._level, self._gaps, self._gap_mean, self._gap_sq

    def set_state(self, state: tuple[float | None, float, int, float, float]) -> None:
        self._t, self._level, self._gaps, self._gap_mean, self._gap_sq = state


@functools.cache
def _decay(half_life: float) -> float:
    """The decay rate per second of a half-life: computed once, read at each query, kept by no client."""
    return math.log(2) / half_life
