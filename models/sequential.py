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
from typing import Any

import numpy as np
from numpy.typing import NDArray


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


class TimeVaryingBernoulliCUSUM:
    """CUSUM for indicators whose null probability changes with every event.

    Used for coverage novelty: the chance that a benign client's n-th query lands in a cell
    it has not visited shrinks with n (``null_prob`` is given per event by the reference).
    The alternative multiplies the null odds by ``odds_ratio``; null probabilities below
    ``min_null`` are raised to it.

    >>> t = TimeVaryingBernoulliCUSUM(odds_ratio=4.0)
    >>> for _ in range(30):
    ...     t.learn_one(True, 0.2)
    >>> t.statistic > 20
    True
    """

    def __init__(self, odds_ratio: float = 4.0, min_null: float = 0.02) -> None:
        if odds_ratio <= 1.0:
            raise ValueError("odds_ratio must exceed 1")
        if not 0.0 < min_null < 1.0:
            raise ValueError("min_null must lie in (0, 1)")
        self.odds_ratio = odds_ratio
        self.min_null = min_null
        self.statistic = 0.0

    def _step(self, x: bool, null_prob: float) -> float:
        return novelty_step(x, null_prob, self.odds_ratio, self.min_null)

    def learn_one(self, x: bool, null_prob: float) -> None:
        v = self.statistic + self._step(x, null_prob)
        self.statistic = v if v > 0.0 else 0.0

    def score_one(self, x: bool, null_prob: float) -> float:
        return max(0.0, self.statistic + self._step(x, null_prob))

    def get_state(self) -> list[float]:
        return [self.statistic]

    def set_state(self, state: Sequence[float]) -> None:
        (value,) = state
        self.statistic = float(value)


#: The floor of a novelty test's null: the reference's tiny chances for rare cells are its
#: least reliable numbers (``novelty_step``).
NOVELTY_MIN_NULL = 0.05


def grown_odds(p: Any, multiple: Any) -> Any:
    """The probability whose odds are ``multiple`` times those of ``p`` (floats or arrays).

    >>> grown_odds(0.2, 4.0)
    0.5
    """
    return multiple * p / (1.0 - p + multiple * p)


def novelty_step(
    x: bool, null_prob: float, odds_ratio: float, min_null: float, multiple: float = 1.0
) -> float:
    """Log-likelihood ratio of one event of ``TimeVaryingBernoulliCUSUM``: a novel event
    (``x``) at null probability ``null_prob``, its odds grown ``multiple`` times (what a
    benign client may show: ``models.calibration.coverage_multiple``), against
    ``odds_ratio`` times those odds."""
    # The reference's tiny probabilities for rare cells are its least reliable numbers:
    # flooring the null keeps a few rare-but-benign visits from piling up evidence.
    p = grown_odds(min(max(null_prob, min_null), 1.0 - 1e-9), multiple)
    q = grown_odds(p, odds_ratio)
    return math.log(q / p) if x else math.log((1.0 - q) / (1.0 - p))


def novelty_peaks(
    new: NDArray[np.bool_],
    null_prob: NDArray[np.float64],
    odds_ratio: float,
    multiples: Sequence[float],
    min_null: float = NOVELTY_MIN_NULL,
) -> NDArray[np.float64]:
    """``novelty_step``'s CUSUM over many sequences at once: for each row of events ``new``
    at null probabilities ``null_prob`` (same shape), the highest statistic it reaches, one
    column per null multiple in ``multiples`` (a calibration asks it of hundreds of
    pseudo-clients, which one call per event would take seconds over).

    >>> new, null = np.array([[True, True, False, True]]), np.array([[1.0, 0.6, 0.3, 0.1]])
    >>> s = peak = 0.0
    >>> for x, p in zip(new[0], null[0]):
    ...     s = max(0.0, s + novelty_step(bool(x), float(p), 4.0, NOVELTY_MIN_NULL, 1.5))
    ...     peak = max(peak, s)
    >>> bool(np.isclose(novelty_peaks(new, null, 4.0, (1.5,))[0, 0], peak))
    True
    """
    m = np.asarray(multiples, dtype=np.float64)
    floored = np.clip(np.asarray(null_prob, dtype=np.float64), min_null, 1.0 - 1e-9)
    statistic = np.zeros((len(new), len(m)))
    peak = np.zeros_like(statistic)
    for t in range(new.shape[1]):
        p = grown_odds(floored[:, t, None], m)
        q = grown_odds(p, odds_ratio)
        step = np.where(new[:, t, None], np.log(q / p), np.log((1.0 - q) / (1.0 - p)))
        statistic = np.maximum(statistic + step, 0.0)
        peak = np.maximum(peak, statistic)
    return peak
