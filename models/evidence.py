"""The per-client evidence tests and their fusion into one risk with reasons.

Each test is a CUSUM e-detector (``querywatch.models.sequential``) on an indicator whose benign rate
is bounded by a tolerance: a client is suspect only when its rate is clearly above what
benign clients are allowed, never because it merely differs from the average client.

* ``out_of_profile`` — share of queries beyond the reference's 99.9th percentile; random,
  synthetic and other-domain queries are mostly out of profile.
* ``far`` — queries farther from the profile than every reference input: their *count*
  against what a benign client of the same size sends, with an alternative as low as a fifth
  of the queries, so that four natural queries interleaved per stolen one do not hide it.
* ``steps`` — share of queries that are a fixed-size step from an earlier one
  (perturbation chains). Tolerance 5%.
* ``boundary`` — share of answers below the reference's 5th-percentile margin.

The null rates of ``out_of_profile``, ``far`` and ``boundary`` are derived from the model's
own reference (``models.calibration``); a setting may override them.
* ``coverage`` — new input-space cells opened faster than a reference client would
  (odds ratio 4 against the reference's own new-cell probability at the same n).

Fusion: the strongest test counts in full and the others add what they carry beyond an
allowance (a quarter of the threshold); ``fuse`` maps that to a risk that reaches
``alert_risk`` exactly when the evidence crosses ``log(tests / alpha)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from querywatch.features.client import Indicators
from querywatch.models.sequential import BernoulliCUSUM, TimeVaryingBernoulliCUSUM

TESTS = ("out_of_profile", "steps", "boundary", "coverage", "far")


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Benign rates each test tolerates (the null hypotheses)."""

    out_of_profile: float = 0.2
    steps: float = 0.05
    boundary: float = 0.25
    coverage_odds: float = 4.0
    coverage_min_null: float = 0.05
    far: float = 0.01


class ClientEvidence:
    """The five sequential tests of one client.

    >>> ev = ClientEvidence()
    >>> ind = Indicators(out_of_profile=True, step=False, boundary=None, new_cell=False,
    ...                  new_cell_null=0.5, exact=False)
    >>> for _ in range(40):
    ...     ev.update(ind)
    >>> ev.statistics()["out_of_profile"] > 20
    True
    """

    __slots__ = ("boundary", "coverage", "far", "out_of_profile", "steps")

    def __init__(self, tolerances: Tolerances | None = None) -> None:
        t = tolerances or Tolerances()
        self.out_of_profile = BernoulliCUSUM(t.out_of_profile)
        self.steps = BernoulliCUSUM(t.steps)
        self.boundary = BernoulliCUSUM(t.boundary)
        self.coverage = TimeVaryingBernoulliCUSUM(t.coverage_odds, t.coverage_min_null)
        self.far = BernoulliCUSUM(t.far, _count_alternatives(t.far))

    def update(self, ind: Indicators) -> None:
        if ind.exact:
            return  # a resend adds no information about what is being explored
        self.out_of_profile.learn_one(ind.out_of_profile)
        self.steps.learn_one(ind.step)
        if ind.boundary is not None:
            self.boundary.learn_one(ind.boundary)
        self.coverage.learn_one(ind.new_cell, ind.new_cell_null)
        self.far.learn_one(ind.far)

    def total(self, allowance: float) -> float:
        """Fused evidence: the strongest test in full, the others only beyond ``allowance``.

        Benign clients wander a few nats up on several tests at once; a plain sum would
        add that noise up, while a real signal shows in one test far beyond it.
        """
        a = self.out_of_profile.statistic
        b = self.steps.statistic
        c = self.boundary.statistic
        d = self.coverage.statistic
        e = self.far.statistic
        top = max(a, b, c, d, e)
        excess = 0.0
        for v in (a, b, c, d, e):
            if v > allowance:
                excess += v - allowance
        if top > allowance:
            excess -= top - allowance
        return top + excess

    def statistics(self) -> dict[str, float]:
        return {
            "out_of_profile": self.out_of_profile.statistic,
            "steps": self.steps.statistic,
            "boundary": self.boundary.statistic,
            "coverage": self.coverage.statistic,
            "far": self.far.statistic,
        }

    def get_state(self) -> tuple[list[float], list[float], list[float], float, list[float]]:
        return (
            self.out_of_profile.get_state(),
            self.steps.get_state(),
            self.boundary.get_state(),
            self.coverage.get_state(),
            self.far.get_state(),
        )

    def set_state(self, state: tuple[list[float], list[float], list[float], float, list[float]]) -> None:
        o, s, b, c, f = state
        self.out_of_profile.set_state(o)
        self.steps.set_state(s)
        self.boundary.set_state(b)
        self.coverage.set_state(c)
        self.far.set_state(f)


def _count_alternatives(null: float) -> tuple[float, ...]:
    """Rates the count test is tuned to: a fifth of the queries beyond the null (a thief who
    interleaves four natural queries per stolen one), half, and 90%.

    >>> [round(q, 3) for q in _count_alternatives(0.01)]
    [0.208, 0.505, 0.9]
    """
    return tuple(q for q in (null + 0.2 * (1.0 - null), null + 0.5 * (1.0 - null), 0.9) if q > null)


def evidence_threshold(false_alarm_rate: float) -> float:
    """Log e-value at which the combined evidence raises an alert (Bonferroni over the tests).

    >>> round(evidence_threshold(1e-4), 2)
    10.82
    """
    return math.log(len(TESTS) / false_alarm_rate)


def fuse(total: float, threshold: float, alert_risk: float) -> float:
    """Risk in [0, 1] from the fused log e-value ``total``.

    Below the threshold risk grows with the square of the evidence (noise stays near 0);
    it equals ``alert_risk`` at the threshold and then approaches 1 with a matching slope.

    >>> [round(fuse(e, threshold=10.0, alert_risk=0.8), 3) for e in (0.0, 3.0, 10.0, 20.0)]
    [0.0, 0.072, 0.8, 1.0]
    """
    x = total / threshold
    if x <= 1.0:
        return alert_risk * x * x
    return 1.0 - (1.0 - alert_risk) * math.exp(-2.0 * alert_risk / (1.0 - alert_risk) * (x - 1.0))
