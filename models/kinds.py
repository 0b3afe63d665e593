"""The kinds of sequential test an evidence test's entry builds (``EvidenceTest.test`` in
``querywatch.models.registry``): each reads one indicator of ``Indicators`` event by event
and keeps its statistic in a few floats of the client's evidence list
(``querywatch.models.evidence``); the parameters (a null, its alternatives, a bet) are the
model's, shared by every client. Standard library only, as the registry: the settings import
it.

* ``RateTest``: a yes/no indicator's rate above a null (CUSUM e-detectors,
  ``querywatch.models.sequential``); ``CountTest``, ``NearRateTest`` and ``SteadyRateTest``
  are the same test with alternatives for a diluted count, a rate near the null, and a steady
  rate rather than a burst.
* ``ScaledChanceTest``: yes/no events against each event's own chance, times a multiple.
* ``RankTest``: the mean rank of the answers' margins below the reference's (a betting
  e-process).
"""

from __future__ import annotations

import math
from collections.abc import MutableSequence, Sequence
from operator import attrgetter
from typing import Any, Protocol

from querywatch.models.sequential import log_steps, rate_alternatives


class SequentialTest(Protocol):
    """What the evidence needs of one test of one model. The test holds its parameters only,
    shared by every client of the model; a client's state is ``width`` floats of its evidence
    list (``models.evidence``), from ``at``, the first of them the test's statistic (what
    crossing ``log(1/alpha)`` alarms on). Learn an event's indicators, score without learning,
    and a stored state of plain floats."""

    width: int

    def observe(self, s: MutableSequence[float], at: int, indicators: Any) -> None: ...

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float: ...

    def get_state(self, s: Sequence[float], at: int) -> list[float]: ...

    def set_state(self, s: MutableSequence[float], at: int, state: Sequence[float]) -> None:
        """ValueError (or TypeError) if ``state`` is not of this test's shape; ``s`` unchanged then."""


class _Alternatives:
    """State of a test with one float per alternative: the statistic (their maximum), then each."""

    __slots__ = ("width",)

    width: int

    def get_state(self, s: Sequence[float], at: int) -> list[float]:
        return list(s[at + 1 : at + self.width])

    def set_state(self, s: MutableSequence[float], at: int, state: Sequence[float]) -> None:
        if len(state) != self.width - 1:
            raise ValueError("state does not match the alternatives")
        values = [float(v) for v in state]
        s[at] = max(values)
        for i, v in enumerate(values, at + 1):
            s[i] = v


def _cusum(s: Any, at: int, steps: Sequence[float], learn: bool) -> float:
    """One event's CUSUM step on each alternative's statistic (``s[at + 1:]``, each floored at
    zero), stored when ``learn``: the largest of them, the test's statistic
    (``BernoulliCUSUM.learn_one`` over a client's evidence list; every event and every rate
    and chance test runs it)."""
    i = at
    top = 0.0
    for d in steps:
        i += 1
        v = s[i] + d
        if v <= 0.0:
            v = 0.0
        elif v > top:
            top = v
        if learn:
            s[i] = v
    return top


class RateTest(_Alternatives):
    """ "The rate of a yes/no indicator exceeds the tolerance" (None: the event says nothing):
    a ``BernoulliCUSUM`` whose state (the statistic, then one float per alternative) lives in
    the client's evidence.

    >>> from types import SimpleNamespace
    >>> t = RateTest("steps", 0.05)
    >>> s = [0.0] * t.width
    >>> for _ in range(20):
    ...     t.observe(s, 0, SimpleNamespace(steps=True))
    >>> t.observe(s, 0, SimpleNamespace(steps=None))
    >>> round(s[0], 1)
    54.5
    """

    __slots__ = ("_get", "_no", "_yes", "alternatives", "null_rate")

    def __init__(
        self, indicator: str, tolerance: float, alternatives: tuple[float, ...] | None = None
    ) -> None:
        if not 0.0 < tolerance < 1.0:
            raise ValueError("null_rate must lie in (0, 1)")
        self.null_rate = tolerance
        self.alternatives, self._yes, self._no = log_steps(tolerance, alternatives)
        self.width = 1 + len(self.alternatives)
        self._get = attrgetter(indicator)

    def observe(self, s: MutableSequence[float], at: int, indicators: Any) -> None:
        x = self._get(indicators)
        if x is not None:
            s[at] = _cusum(s, at, self._yes if x else self._no, learn=True)

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float:
        x = self._get(indicators)
        return s[at] if x is None else _cusum(s, at, self._yes if x else self._no, learn=False)


class CountTest(RateTest):
    """A rate test tuned to low rates: the *count* of indicated queries against what a benign
    client of the same size sends, so that natural queries interleaved with the indicated
    ones (dilution) do not hide them."""

    __slots__ = ()

    def __init__(self, indicator: str, tolerance: float) -> None:
        super().__init__(indicator, tolerance, count_alternatives(tolerance))


class NearRateTest(RateTest):
    """A rate test that also hears rates just above its tolerance, for an indicator whose
    tolerance is a floor set for behaviours no reference holds, far above what benign clients
    show (steps: 5% for what-if sweeps, where benign clients send about none). A thief
    diluted 1:4 shows a fifth of its rate there or less: a structured step needs its parent
    in the client's reservoir, which then holds a fifth as many of the thief's queries. Tuned
    to the rate test's alternatives only (0.335 and 0.762 at a tolerance of 0.05), the test
    gains nothing below 16%; tuned to 0.1 as well, from 7.2% (the simulator's tabular JbDA
    diluted: 11%). The others keep an undiluted chain's alert as early.

    ``reference_rate`` is the indicator's rate over the reference's pseudo-clients (drawn
    from the whole reference): a client concentrated on one region shows it up to about
    twice as often (an 8-input held-out model: 7.7% against 3.7%, under the 5% floor), so
    the near alternative is at least eight times it: it then breaks even at four times the
    reference's rate or more, twice what such a client shows (at four times, a client at
    7.7% reached the alert threshold by chance within 5,000 queries).

    >>> [round(q, 3) for q in NearRateTest("steps", 0.05).alternatives]
    [0.1, 0.335, 0.762]
    >>> [round(q, 3) for q in NearRateTest("steps", 0.05, 0.037).alternatives]
    [0.296, 0.335, 0.762]
    """

    __slots__ = ()

    def __init__(self, indicator: str, tolerance: float, reference_rate: float = 0.0) -> None:
        super().__init__(indicator, tolerance, near_alternatives(tolerance, reference_rate))

    def set_state(self, s: MutableSequence[float], at: int, state: Sequence[float]) -> None:
        """Also a state stored with the near alternative where the test now has none, or
        without it where it now has one (an earlier release; a profile revision whose
        reference rate moved it past the others): the others keep theirs, and a near
        alternative not stored starts at 0."""
        if len(state) in (_FARTHER, _FARTHER + 1):
            near = list(state[:-_FARTHER]) or [0.0]
            state = (near if len(self.alternatives) > _FARTHER else []) + list(state[-_FARTHER:])
        super().set_state(s, at, state)


class SteadyRateTest(RateTest):
    """A rate test deaf to a short burst: tuned to twice its tolerance and to the rate test's
    first alternative, not to its last (0.76 at a tolerance of 0.05), at which each indicated
    query gains 2.7 nats and four in a row reach the alert. For an indicator a benign client
    shows in a burst now and then (isolation: a client's first queries in a region its
    reservoir holds none of; the bench's ordinary digits clients, two or three within a few
    queries, stood at risk 0.19-0.43 with it), while a thief shows it query after query.

    >>> [round(q, 3) for q in SteadyRateTest("isolated", 0.05).alternatives]
    [0.1, 0.335]
    """

    __slots__ = ()

    def __init__(self, indicator: str, tolerance: float) -> None:
        twice = 2.0 * tolerance if tolerance < 0.5 else (1.0 + tolerance) / 2  # a rate, below 1
        super().__init__(indicator, tolerance, (twice, rate_alternatives(tolerance)[0]))


#: How many of a near rate test's alternatives are the rate test's own.
_FARTHER = len(rate_alternatives(0.5))


def near_alternatives(null: float, reference_rate: float = 0.0) -> tuple[float, ...]:
    """Twice the null or eight times the reference's own rate (``NearRateTest``), where that
    is below the rate test's first alternative, then the rate test's own
    (``models.sequential.rate_alternatives``).

    >>> [round(q, 3) for q in near_alternatives(0.3)], [round(q, 3) for q in near_alternatives(0.2, 0.2)]
    ([0.51, 0.825], [0.44, 0.8])
    """
    farther = rate_alternatives(null)
    near = max(2.0 * null, 8.0 * reference_rate)
    return ((near,) if near < farther[0] else ()) + farther


def count_alternatives(null: float) -> tuple[float, ...]:
    """Rates the count test is tuned to: a fifth of the queries (a thief who interleaves four
    natural queries per stolen one; natural queries are indicated at the reference's own
    rate, about none, not at the null, which is the most a benign client may reach) or twice
    the null if that is more, then half the queries beyond the null, and 90%.

    Tuned to a fifth beyond the null (0.28 at a null of 0.1), the test gained 0.027 nats a
    query from such a thief (whose rate is 0.2): 400 queries to the threshold; tuned to 0.2,
    0.044 (250 queries).

    >>> [round(q, 3) for q in count_alternatives(0.01)], [round(q, 3) for q in count_alternatives(0.15)]
    ([0.2, 0.505, 0.9], [0.3, 0.575, 0.9])
    >>> [round(q, 3) for q in count_alternatives(0.5)]  # twice the null is no rate
    [0.75, 0.9]
    """
    return tuple(q for q in (max(0.2, 2.0 * null), null + 0.5 * (1.0 - null), 0.9) if null < q < 1.0)


class ScaledChanceTest(_Alternatives):
    """ "The indicator comes more often than ``tolerance`` times the reference's own chance",
    the chance read per event from the ``<indicator>_null`` field: for an indicator that
    benign clients show at a real rate that depends on the input (a boundary answer is
    likelier for a noisy input). A thief who selects such queries raises that rate a few
    times over, never to most of its queries: two alternatives multiply the odds of the
    scaled chance by 2 and 4.

    Not 1.5: a CUSUM against odds ``r`` times the null's (rate ``p``, small) gains
    ``p (k ln r - (r - 1))`` an event from a rate of ``k p``. Odds of 2 gain at least as much as
    1.5 from ``k`` = 1.74 up, where a selecting thief's rate lies, and nothing below 1.44
    ``p`` where 1.5 gains from 1.23 ``p``: fewer clients a little above a tight multiple
    creep to an alert over thousands of queries, while a stretch of hundreds at twice the
    null comes to one sooner (bench credit traces: as many heavy users alerted either way,
    other ones; uncertainty samplers alerted sooner, none later).

    A third alternative moves no rate: it puts half of the indicator's events among its
    *deep* ones (``<indicator>_deep``), of which the reference has the share
    ``<indicator>_deep_share`` (0: none measured, and the alternative is silent). A prober's
    line searches end at the boundary itself, where few benign answers fall; diluted with
    natural queries, its rate of boundary answers comes near the null's, but its deep answers
    stay many times their chance, and a query that is not one costs this alternative only
    what the deep chance is (a fraction of the rate's). One float of state each.

    >>> from types import SimpleNamespace
    >>> t = ScaledChanceTest("boundary", 1.0)
    >>> s = [0.0] * t.width
    >>> def answer(on: bool | None, share: float = 0.0) -> SimpleNamespace:  # deep when on
    ...     n = SimpleNamespace(boundary=on, boundary_null=0.05, boundary_deep=on)
    ...     n.boundary_deep_share = share
    ...     return n
    >>> for _ in range(20):
    ...     t.observe(s, 0, answer(True))
    >>> t.observe(s, 0, answer(None))
    >>> round(s[0], 1)
    24.9
    >>> probe, natural = answer(True, 0.2), answer(False, 0.2)
    >>> s = [0.0] * t.width
    >>> for _ in range(10):  # a probe's deep answer among four natural ones
    ...     t.observe(s, 0, probe)
    ...     for _ in range(4):
    ...         t.observe(s, 0, natural)
    >>> [round(v, 1) for v in s]
    [12.4, 4.5, 6.9, 12.4]
    """

    __slots__ = ("_deep", "_deep_share", "_get", "_null", "multiple")

    ODDS_RATIOS = (2.0, 4.0)
    #: The deep alternative's share of the indicator's events that are deep.
    DEEP_AMONG = 0.5

    def __init__(self, indicator: str, tolerance: float) -> None:
        if not 1.0 <= tolerance < 1e6:
            raise ValueError("the tolerance is a multiple of the reference's chance: at least 1")
        self.multiple = tolerance
        self.width = 2 + len(self.ODDS_RATIOS)
        self._get = attrgetter(indicator)
        self._null = attrgetter(indicator + "_null")
        self._deep = attrgetter(indicator + "_deep")
        self._deep_share = attrgetter(indicator + "_deep_share")

    def _top(self, s: Any, at: int, x: bool, indicators: Any, learn: bool) -> float:
        chance, deep_share = self._null(indicators), self._deep_share(indicators)
        steps = _STEPS.get((chance, self.multiple, deep_share))
        if steps is None:
            steps = _chance_steps(chance, self.multiple, self.ODDS_RATIOS, deep_share, self.DEEP_AMONG)
        return _cusum(s, at, steps[(2 if self._deep(indicators) else 0) if x else 1], learn)

    def observe(self, s: MutableSequence[float], at: int, indicators: Any) -> None:
        x = self._get(indicators)
        if x is not None:
            s[at] = self._top(s, at, x, indicators, learn=True)

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float:
        x = self._get(indicators)
        return s[at] if x is None else self._top(s, at, x, indicators, learn=False)

    def set_state(self, s: MutableSequence[float], at: int, state: Sequence[float]) -> None:
        """A state stored before the deep alternative (one float fewer) starts it at 0."""
        if len(state) == self.width - 2:
            state = [*state, 0.0]
        super().set_state(s, at, state)


_STEPS: dict[tuple[float, float, float], tuple[tuple[float, ...], ...]] = {}
"""Steps by (chance, multiple, deep share): a model has a handful of distinct chances, one per score bin."""


def _chance_steps(
    chance: float, multiple: float, odds_ratios: tuple[float, ...], deep_share: float, deep_among: float
) -> tuple[tuple[float, ...], ...]:
    """Log-likelihood steps of a yes, a no and a deep yes, per alternative (the odds ratios',
    then the deep one's), at null ``multiple`` x ``chance`` (remembered in ``_STEPS``)."""
    p = min(max(multiple * chance, 1e-6), 0.95)
    qs = [r * p / (1.0 - p + r * p) for r in odds_ratios]
    yes = [math.log(q / p) for q in qs]
    no = [math.log((1.0 - q) / (1.0 - p)) for q in qs]
    # The deep alternative: a deep yes ``k`` times likelier than under the null, every other
    # outcome as likely as each other, so that deep ones are ``deep_among`` of its yeses.
    k = deep_among * (1.0 - deep_share) / ((1.0 - deep_among) * deep_share) if deep_share > 0.0 else 1.0
    k = max(k, 1.0)
    norm = -math.log1p((k - 1.0) * deep_share * p)
    steps = (*yes, norm), (*no, norm), (*yes, math.log(k) + norm)
    if len(_STEPS) >= 4096:  # many models, or profiles replaced many times
        _STEPS.clear()
    _STEPS[(chance, multiple, deep_share)] = steps
    return steps


class RankTest:
    """ "The answers' mean rank lies more than ``tolerance`` below the reference's", each
    answer's rank read from the indicator (in [0, 1]; None: the event says nothing) and the
    reference's mean rank for it from the ``<indicator>_null`` field: for a selection that
    shows in the whole distribution of the answers' confidence, not only in the few that
    fall on the boundary (an uncertainty-sampling thief gets few of the confident answers
    every benign client gets).

    A betting e-process (Waudby-Smith & Ramdas, 2024), valid for ranks of any distribution
    in [0, 1] whose mean is at least the null: each answer multiplies the wealth by
    ``1 + lambda (null - rank)``, whose expectation under the null is at most 1.

    * The bet ``lambda`` is half the growth-optimal one (to second order) against ranks as far
      below the null as the null lies below the reference's mean, at the spread of a
      uniform rank (1/12): ``shift / (1/12 + shift^2) / 2``, and at most BET_CAP of the
      largest the null allows, ``1 / (1 - null)``. Half the optimal bet keeps three quarters
      of its growth and stakes half as much on each answer.
    * The log-wealth is floored at FLOOR, below zero, where the CUSUM tests floor theirs at
      zero (Shin, Ramdas & Rinaldo, 2022): a client whose answers were as confident as the
      reference's for a while needs -FLOOR more before it alerts. A burst of unsure answers
      about one record (an explainer's samples of a record on the boundary) then stays short
      of an alert, and a thief that starts benign and turns to selecting is delayed by a
      bounded number of answers. The floored wealth ``W`` keeps ``W - t exp(FLOOR)`` a
      supermartingale: as valid as the zero floor.

    State: the statistic (the log-wealth, at least 0) and the log-wealth; one float stored.

    >>> from types import SimpleNamespace
    >>> t = RankTest("margin_rank", 0.1)
    >>> s = [0.0] * t.width
    >>> for _ in range(40):
    ...     t.observe(s, 0, SimpleNamespace(margin_rank=0.05, margin_rank_null=0.5))
    >>> round(s[0], 1)
    6.9
    >>> for _ in range(200):  # a benign client's ranks, a little above the reference's mean
    ...     t.observe(s, 0, SimpleNamespace(margin_rank=0.6, margin_rank_null=0.5))
    >>> s[0], s[1] == RankTest.FLOOR
    (0.0, True)
    """

    __slots__ = ("_bets", "_get", "_null", "bet", "shift")

    #: The most of the largest bet the null allows that the test stakes.
    BET_CAP = 0.9
    #: A rank's variance under the reference (uniform in [0, 1]).
    VARIANCE = 1.0 / 12.0
    #: The log-wealth's floor: half the alert threshold at the default false-alarm rate.
    FLOOR = -5.5
    width = 2

    def __init__(self, indicator: str, tolerance: float) -> None:
        if not 0.0 < tolerance <= 0.5:
            raise ValueError("the tolerance is a difference of mean ranks: above 0, at most 0.5")
        self.shift = tolerance
        self.bet = 0.5 * tolerance / (self.VARIANCE + tolerance * tolerance)
        self._get = attrgetter(indicator)
        self._null = attrgetter(indicator + "_null")
        self._bets: dict[float, tuple[float, float]] = {}
        """(null, bet) by the reference's mean rank: a model has one mean per class."""

    def _step(self, rank: float, mean: float) -> float:
        bet = self._bets.get(mean)
        if bet is None:
            null = min(max(mean - self.shift, 0.0), 0.99)
            bet = (null, min(self.bet, self.BET_CAP / (1.0 - null)))
            if len(self._bets) < 4096:
                self._bets[mean] = bet
        return math.log1p(bet[1] * (bet[0] - rank))

    def observe(self, s: MutableSequence[float], at: int, indicators: Any) -> None:
        rank = self._get(indicators)
        if rank is not None:
            v = s[at + 1] + self._step(rank, self._null(indicators))
            if v < self.FLOOR:
                v = self.FLOOR
            s[at + 1] = v
            s[at] = v if v > 0.0 else 0.0

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float:
        rank = self._get(indicators)
        return s[at] if rank is None else max(0.0, s[at + 1] + self._step(rank, self._null(indicators)))

    def get_state(self, s: Sequence[float], at: int) -> list[float]:
        return [s[at + 1]]

    def set_state(self, s: MutableSequence[float], at: int, state: Sequence[float]) -> None:
        (value,) = state
        wealth = max(float(value), self.FLOOR)
        s[at + 1] = wealth
        s[at] = max(wealth, 0.0)
