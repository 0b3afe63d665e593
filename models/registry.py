"""The registry of evidence tests: one entry per test, and everything else loops over it.

An entry names its test, the field of ``querywatch.features.client.Indicators`` it reads
(the *indicator*), the kind of sequential test run on it, its *calibration* (the null rate a
model's tests use, from the model's reference — ``querywatch.models.calibration`` — and the
``detection.tolerances`` setting) and the *reason* an analyst reads when the test drives a
client's risk. The evidence fusion, the alert threshold (Bonferroni over
the registered tests), the reasons, the ``detection.tolerances`` setting and the stored
client state (keyed by test name) all iterate over ``EVIDENCE_TESTS``; nothing lists the
tests a second time. This module stays light (standard library only): the settings import it.

Adding a test is one entry here, the indicator in ``features/client.py`` if it is new, and a
test (see the README's contributor section).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, MutableSequence, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from querywatch.models.calibration import DRIFT_INFLATION, OOD_TOLERANCE, RANK_SHIFT, Calibration
from querywatch.models.sequential import log_steps, novelty_step, rate_alternatives


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
        # BernoulliCUSUM.learn_one inlined: this runs for every event and every rate test.
        x = self._get(indicators)
        if x is None:
            return
        i = at
        top = 0.0
        for d in self._yes if x else self._no:
            i += 1
            v = s[i] + d
            if v <= 0.0:
                v = 0.0
            elif v > top:
                top = v
            s[i] = v
        s[at] = top

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float:
        x = self._get(indicators)
        if x is None:
            return s[at]
        step = self._yes if x else self._no
        return max(max(0.0, s[at + 1 + i] + d) for i, d in enumerate(step))


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
    """
    return tuple(q for q in (max(0.2, 2.0 * null), null + 0.5 * (1.0 - null), 0.9) if q > null)


class ScaledChanceTest(_Alternatives):
    """ "The indicator comes more often than ``tolerance`` times the reference's own chance",
    the chance read per event from the ``<indicator>_null`` field: for an indicator that
    benign clients show at a real rate that depends on the input (a boundary answer is
    likelier for a noisy input). A thief who selects such queries raises that rate a few
    times over, never to most of its queries: the alternatives multiply the odds of the
    scaled chance by 1.5 and 4 (two floats of state, as the rate tests keep).

    >>> from types import SimpleNamespace
    >>> t = ScaledChanceTest("boundary", 1.0)
    >>> s = [0.0] * t.width
    >>> for _ in range(20):
    ...     t.observe(s, 0, SimpleNamespace(boundary=True, boundary_null=0.05))
    >>> t.observe(s, 0, SimpleNamespace(boundary=None, boundary_null=0.05))
    >>> round(s[0], 1)
    24.9
    """

    __slots__ = ("_get", "_null", "multiple")

    ODDS_RATIOS = (1.5, 4.0)

    def __init__(self, indicator: str, tolerance: float) -> None:
        if not 1.0 <= tolerance < 1e6:
            raise ValueError("the tolerance is a multiple of the reference's chance: at least 1")
        self.multiple = tolerance
        self.width = 1 + len(self.ODDS_RATIOS)
        self._get = attrgetter(indicator)
        self._null = attrgetter(indicator + "_null")

    def _top(self, s: Any, at: int, x: bool, chance: float, learn: bool) -> float:
        steps = _STEPS.get((chance, self.multiple))
        if steps is None:
            steps = _odds_steps(chance, self.multiple, self.ODDS_RATIOS)
        i = at
        top = 0.0
        for d in steps[0] if x else steps[1]:
            i += 1
            v = s[i] + d
            if v <= 0.0:
                v = 0.0
            elif v > top:
                top = v
            if learn:
                s[i] = v
        return top

    def observe(self, s: MutableSequence[float], at: int, indicators: Any) -> None:
        x = self._get(indicators)
        if x is not None:
            s[at] = self._top(s, at, x, self._null(indicators), learn=True)

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float:
        x = self._get(indicators)
        return s[at] if x is None else self._top(s, at, x, self._null(indicators), learn=False)


_STEPS: dict[tuple[float, float], tuple[tuple[float, ...], tuple[float, ...]]] = {}
"""Steps by (chance, multiple): a model has a handful of distinct chances, one per score bin."""


def _odds_steps(
    chance: float, multiple: float, odds_ratios: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Log-likelihood steps of a yes and of a no, per alternative, at null ``multiple`` x
    ``chance`` (remembered in ``_STEPS``)."""
    p = min(max(multiple * chance, 1e-6), 0.95)
    qs = [r * p / (1.0 - p + r * p) for r in odds_ratios]
    steps = tuple(math.log(q / p) for q in qs), tuple(math.log((1.0 - q) / (1.0 - p)) for q in qs)
    if len(_STEPS) >= 4096:  # many models, or profiles replaced many times
        _STEPS.clear()
    _STEPS[(chance, multiple)] = steps
    return steps


class NoveltyTest:
    """ "Novel events come ``tolerance`` times likelier (odds) than the reference's own chance",
    read from the indicator and its ``<indicator>_null`` field: a ``TimeVaryingBernoulliCUSUM``
    whose one float of state, its statistic, lives in the client's evidence."""

    __slots__ = ("_get", "_null", "odds_ratio")

    #: The reference's tiny chances for rare cells are its least reliable numbers.
    MIN_NULL = 0.05
    width = 1

    def __init__(self, indicator: str, tolerance: float) -> None:
        if tolerance <= 1.0:
            raise ValueError("odds_ratio must exceed 1")
        self.odds_ratio = tolerance
        self._get = attrgetter(indicator)
        self._null = attrgetter(indicator + "_null")

    def observe(self, s: MutableSequence[float], at: int, indicators: Any) -> None:
        v = s[at] + novelty_step(
            self._get(indicators), self._null(indicators), self.odds_ratio, self.MIN_NULL
        )
        s[at] = v if v > 0.0 else 0.0

    def score(self, s: Sequence[float], at: int, indicators: Any) -> float:
        step = novelty_step(self._get(indicators), self._null(indicators), self.odds_ratio, self.MIN_NULL)
        return max(0.0, s[at] + step)

    def get_state(self, s: Sequence[float], at: int) -> list[float]:
        return [s[at]]

    def set_state(self, s: MutableSequence[float], at: int, state: Sequence[float]) -> None:
        (value,) = state
        s[at] = float(value)


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


def percent(share: float) -> str:
    """A share as a reason prints it: in percent, to one decimal at most.

    >>> percent(0.2), percent(0.016), percent(0.05)
    ('20%', '1.6%', '5%')
    """
    return f"{round(100 * share, 1):g}%"


Reason = Callable[[Mapping[str, float], int, float], str]
"""Text of a reason from the client's feature snapshot, its number of queries and the test's
null for the client's model (``Registry.nulls``): what a benign client may reach there, which
differs from model to model, so a reason says it rather than a number true of one model."""


Calibrate = Callable[["Calibration | None", "float | None"], float]
"""The null a model's test uses, from the model's reference calibration (None for a profile
made before calibration existed) and the configured tolerance (None when not set)."""


@dataclass(frozen=True, slots=True)
class EvidenceTest:
    """One registered evidence test."""

    name: str
    """Key of the test in statistics, reasons, settings and stored state (never reuse one)."""
    indicator: str
    """The ``Indicators`` field the test reads."""
    test: Callable[..., SequentialTest]
    """The kind of test: builds one on ``indicator`` from a null (ValueError if out of range),
    and from the indicator's rate on the reference where ``reference_rate`` is given."""
    calibration: Calibrate
    meaning: str
    """What the tolerance setting means for this test, for the settings' description."""
    reason: Reason
    implies: str | None = None
    """The test whose indicator this one's implies (a far query is out of profile), if any:
    the two measure one signal, so the fusion counts only the stronger of them."""
    reference_rate: Callable[[Calibration | None], float] | None = None
    """The indicator's rate on the model's reference (from its calibration), for a kind of
    test whose alternatives depend on it (``NearRateTest``); None for the others."""

    def null(self, calibration: Calibration | None = None, configured: float | None = None) -> float:
        return self.calibration(calibration, configured)

    def make(self, null: float | None = None, calibration: Calibration | None = None) -> SequentialTest:
        """The test at ``null`` (default: the test's null without a reference calibration),
        for a model whose reference has this ``calibration``."""
        null = self.null() if null is None else null
        if self.reference_rate is None:
            return self.test(self.indicator, null)
        return self.test(self.indicator, null, self.reference_rate(calibration))


class Registry:
    """Evidence tests in registration order (the order ties are broken in)."""

    def __init__(self) -> None:
        self._tests: dict[str, EvidenceTest] = {}

    def register(self, test: EvidenceTest) -> EvidenceTest:
        if test.name in self._tests:
            raise ValueError(f"an evidence test named {test.name!r} is already registered")
        test.make()  # a bad default tolerance fails here, not at the first client
        self._tests[test.name] = test
        return test

    def unregister(self, name: str) -> None:
        del self._tests[name]

    @contextmanager
    def extended(self, *tests: EvidenceTest) -> Iterator[None]:
        """Register ``tests`` for the duration of a block (for tests and experiments)."""
        for test in tests:
            self.register(test)
        try:
            yield
        finally:
            for test in tests:
                self._tests.pop(test.name, None)

    def __iter__(self) -> Iterator[EvidenceTest]:
        return iter(tuple(self._tests.values()))

    def __len__(self) -> int:
        return len(self._tests)

    def __getitem__(self, name: str) -> EvidenceTest:
        return self._tests[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._tests)

    def families(self) -> tuple[int, ...]:
        """Per test (in order), the index of its family: a test joins the family of the test
        its indicator implies (``EvidenceTest.implies``, followed to the end), so that nested
        indicators are not added up as independent evidence.

        >>> EVIDENCE_TESTS.names(), EVIDENCE_TESTS.families()
        (('out_of_profile', 'steps', 'boundary', 'coverage', 'far', 'confidence'), (0, 1, 2, 3, 0, 2))
        """
        names = self.names()
        roots = []
        for entry in self._tests.values():
            seen = {entry.name}
            while entry.implies is not None and entry.implies in self._tests and entry.implies not in seen:
                seen.add(entry.implies)
                entry = self._tests[entry.implies]
            roots.append(names.index(entry.name))
        return tuple(sorted(set(roots)).index(r) for r in roots)

    def check_tolerances(self, tolerances: Mapping[str, float]) -> dict[str, float]:
        """``tolerances`` itself; ValueError naming an unknown test or a tolerance its test
        refuses."""
        unknown = sorted(set(tolerances) - set(self._tests))
        if unknown:
            raise ValueError(f"no evidence test named {', '.join(unknown)} (known: {', '.join(self._tests)})")
        for name, value in tolerances.items():
            try:
                self._tests[name].make(self._tests[name].null(None, value))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"tolerance of {name!r}: {exc}") from None
        return dict(tolerances)

    def nulls(
        self, calibration: Calibration | None, tolerances: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """The null of every test for a model with this reference ``calibration``."""
        configured = tolerances or {}
        return {t.name: t.null(calibration, configured.get(t.name)) for t in self._tests.values()}

    def threshold(self, false_alarm_rate: float) -> float:
        """Log e-value at which the fused evidence raises an alert (Bonferroni over the tests).

        >>> round(EVIDENCE_TESTS.threshold(1e-4), 2)
        11.0
        """
        return math.log(len(self._tests) / false_alarm_rate)


EVIDENCE_TESTS = Registry()

EVIDENCE_TESTS.register(
    EvidenceTest(
        name="out_of_profile",
        indicator="out_of_profile",
        test=RateTest,
        # The share test is the drift-tolerant one: never below the configured share of noisy
        # but genuine queries (default 20%), higher if the reference's own clients send more or
        # if a drifted client would (a model with many inputs: ``calibration.drift_share``).
        calibration=lambda cal, configured: max(
            OOD_TOLERANCE if configured is None else configured,
            0.0 if cal is None else cal.ood_null,
            0.0 if cal is None else cal.drift_share,
        ),
        meaning="share of queries beyond the reference's 99.9th percentile a benign client may send "
        f"(default {OOD_TOLERANCE:g}; higher if the reference's own clients send more, or a client whose "
        f"scores drifted {DRIFT_INFLATION:.0%} would)",
        reason=lambda f, n, null: (
            f"{100 * f['ood_share']:.0f}% of {n} queries lie outside the model's reference data "
            f"(a benign client at most {percent(null)}); recent share {100 * f['ood_recent']:.0f}%"
        ),
    )
)
EVIDENCE_TESTS.register(
    EvidenceTest(
        name="steps",
        indicator="step",
        test=NearRateTest,
        reference_rate=lambda cal: 0.0 if cal is None else cal.steps_null,
        # What-if analysts sweep one record (no reference holds them): at least 5%; more where
        # the reference's own natural rows make steps by chance (a narrow input).
        calibration=lambda cal, configured: (
            configured if configured is not None else max(0.05, 0.0 if cal is None else cal.steps_null)
        ),
        meaning="share of queries that are a structured step from an earlier one "
        "(default 0.05; the reference's own rate if higher)",
        reason=lambda f, n, null: (
            f"{100 * f['step_share']:.0f}% of {n} queries are small fixed-size steps from an earlier "
            "query (a perturbation chain, as in Jacobian or random-step augmentation; a benign client "
            f"at most {percent(null)})"
        ),
    )
)
EVIDENCE_TESTS.register(
    EvidenceTest(
        name="boundary",
        indicator="boundary",
        test=ScaledChanceTest,
        calibration=lambda cal, configured: (
            configured if configured is not None else (1.0 if cal is None else cal.boundary_multiple)
        ),
        meaning="multiple of the reference's chance of an answer at or below its 5th-percentile margin, "
        "for inputs as far from the data, that a benign client may reach "
        "(default: derived from the reference's clients, at least 1)",
        reason=lambda f, n, null: (
            f"{100 * f['boundary_share']:.0f}% of answers sit on the decision boundary (a benign client at "
            f"most {null:.1f}× the reference's rate for inputs as typical) — boundary probing or "
            "uncertainty sampling"
        ),
    )
)
EVIDENCE_TESTS.register(
    EvidenceTest(
        name="coverage",
        indicator="new_cell",
        test=NoveltyTest,
        calibration=lambda cal, configured: 4.0 if configured is None else configured,
        meaning="odds of opening a new input cell against the reference's own chance at the same coverage "
        "(default 4)",
        # The test hears new cells against their chance query by query: a burst of them (a
        # client moving on to new regions) raises it whatever the overall ratio, which the
        # reason gives beside it (at 1.0-1.2, most of the bench's clients with this reason,
        # "coverage 1.1 times what a benign client reaches" read as no reason at all).
        reason=lambda f, n, null: (
            f"new input cells opened faster than a benign client opens them over a stretch of its {n} "
            f"queries (overall coverage {f['coverage_ratio']:.1f}× a benign client's)"
        ),
    )
)
EVIDENCE_TESTS.register(
    EvidenceTest(
        name="far",
        indicator="far",
        test=CountTest,
        calibration=lambda cal, configured: (
            configured if configured is not None else (0.01 if cal is None else cal.far_null)
        ),
        meaning="share of queries farther from the profile than every reference input "
        "(default: the reference's own rate, 0.01 without one)",
        reason=lambda f, n, null: (
            f"{100 * f['far_share']:.0f}% of {n} queries lie farther from the model's data than any "
            "reference input (synthetic or other-domain queries, however many natural ones surround "
            f"them; a benign client at most {percent(null)})"
        ),
        # The far threshold lies beyond the out-of-profile one: every far query is out of profile.
        implies="out_of_profile",
    )
)
EVIDENCE_TESTS.register(
    EvidenceTest(
        name="confidence",
        indicator="margin_rank",
        test=RankTest,
        # A profile stored before the rank tables has a calibration without them: no rank
        # reaches the test there, whatever its tolerance.
        calibration=lambda cal, configured: (
            configured
            if configured is not None
            else (cal.rank_shift if cal is not None and cal.rank_margins else RANK_SHIFT)
        ),
        meaning="how far below the reference's mean a benign client's mean rank of its answers' margins may "
        "lie, among the reference's answers as far from the data and of the same class "
        f"(default: derived from the reference's clients; {RANK_SHIFT:g} without them)",
        reason=lambda f, n, null: (
            "answers less confident than the model gives its own data as far from it and of the same "
            f"classes (mean output entropy {f['output_entropy']:.2f}; {100 * f['boundary_share']:.0f}% "
            "on the boundary) — uncertainty sampling: the queries a copy learns most from"
        ),
        # The same answers as the boundary test, which reads only their low end.
        implies="boundary",
    )
)
