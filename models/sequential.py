"""Per-client evidence tests that may be checked after every event.

Re-testing a fixed p-value threshold after each event inflates false alarms without bound.
These tests are CUSUM e-detectors (Shin, Ramdas & Rinaldo, 2022) for a Bernoulli rate:
the null hypothesis is "this client's rate of the indicator is at most ``null_rate``"; for
each alternative rate ``q`` the log likelihood ratio of every event is added and the sum is
floored at zero (the detector restarts whenever the evidence turns against ``q``). The
statistic is the maximum over the alternatives. Under the null its average run length to
a crossing of ``log(1 / alpha)`` is at least ``1 / alpha`` events per alternative, whatever
the client's history; a thief who starts benign and turns later is caught as fast as one
who starts right away.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence


class BernoulliCUSUM:
    """CUSUM e-detector for "rate of a yes/no indicator exceeds ``null_rate``".

    ``alternatives`` are rates above ``null_rate`` the test is tuned to detect. The
    state is one float per alternative.

    >>> test = BernoulliCUSUM(null_rate=0.1)
    >>> for _ in range(50):
    ...     test.learn_one(False)
    >>> test.statistic
    0.0
    >>> for _ in range(20):
    ...     test.learn_one(True)
    >>> round(test.statistic, 1)
    41.0
    >>> test.score_one(True) > test.statistic
    True
    """

    def __init__(self, null_rate: float, alternatives: tuple[float, ...] | None = None) -> None:
        if not 0.0 < null_rate < 1.0:
            raise ValueError("null_rate must lie in (0, 1)")
        self.null_rate = null_rate
        self.alternatives, self._yes, self._no = log_steps(null_rate, alternatives)
        self._s = [0.0] * len(self.alternatives)
        self.statistic = 0.0
        """Log e-detector value: crossing ``log(1/alpha)`` is the alarm."""

    def learn_one(self, x: bool) -> None:
        """Add one event's indicator."""
        step = self._yes if x else self._no
        s = self._s
        top = 0.0
        for i in range(len(s)):
            v = s[i] + step[i]
            if v <= 0.0:
                v = 0.0
            elif v > top:
                top = v
            s[i] = v
        self.statistic = top

    def score_one(self, x: bool) -> float:
        """The statistic as it would be after ``x``, without learning it."""
        step = self._yes if x else self._no
        return max(max(0.0, s + d) for s, d in zip(self._s, step, strict=True))

    def get_state(self) -> list[float]:
        return list(self._s)

    def set_state(self, state: Sequence[float]) -> None:
        if len(state) != len(self.alternatives):
            raise ValueError("state does not match the alternatives")
        self._s = [float(v) for v in state]
        self.statistic = max(self._s)


def rate_alternatives(null_rate: float) -> tuple[float, float]:
    """The rates a rate test is tuned to unless told otherwise: 0.3 and 0.75 of the way from
    ``null_rate`` to 1."""
    return null_rate + 0.3 * (1 - null_rate), null_rate + 0.75 * (1 - null_rate)


@functools.lru_cache(maxsize=256)
def log_steps(
    null_rate: float, alternatives: tuple[float, ...] | None
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(alternatives, log-likelihood ratio of a yes, of a no): the same for every client of a
    model, so one copy serves them all (five tests per client would otherwise hold a million
    clients' worth of identical lists). Plain floats, not numpy: they are read per event."""
    if alternatives is None:
        alternatives = rate_alternatives(null_rate)
    if not alternatives or any(not null_rate < q < 1.0 for q in alternatives):
        raise ValueError("every alternative must lie in (null_rate, 1)")
    yes = tuple(math.log(q / null_rate) for q in alternatives)
    no = tuple(math.log((1.0 - q) / (1.0 - null_rate)) for q in alternatives)
    return tuple(alternatives), yes, no
