"""The per-client evidence tests and their fusion into one risk with reasons.

The tests are the entries of ``querywatch.models.registry.EVIDENCE_TESTS`` (out of profile,
far, steps, boundary, coverage: see each entry); each is a CUSUM e-detector
(``querywatch.models.sequential``) on an indicator whose benign rate is bounded by a null
rate: a client is suspect only when its rate is clearly above what benign clients are
allowed, never because it merely differs from the average client. The null rates are
derived from the model's own reference (``querywatch.models.calibration``) unless a setting
fixes them.

Fusion: the strongest test counts in full and the others add what they carry beyond an
allowance (a quarter of the threshold); ``fuse`` maps that to a risk that reaches
``alert_risk`` exactly when the evidence crosses ``log(tests / alpha)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from querywatch.features.client import Indicators
from querywatch.models.calibration import Calibration
from querywatch.models.registry import EVIDENCE_TESTS, Registry


class EvidenceTests:
    """The registered tests of one model, at its nulls: built once per model and shared by
    all its clients, whose own state is one list of floats (``ClientEvidence``).

    ``nulls`` by test name (``Registry.nulls``); a test left out uses its null without a
    reference calibration. ``calibration`` is the model's reference's, which some kinds of
    test read beside their null (``EvidenceTest.reference_rate``)."""

    __slots__ = ("at", "families", "fused", "names", "offsets", "tests", "width")

    def __init__(
        self,
        nulls: Mapping[str, float] | None = None,
        registry: Registry = EVIDENCE_TESTS,
        calibration: Calibration | None = None,
    ) -> None:
        t = nulls or {}
        self.names = registry.names()
        self.tests = tuple(entry.make(t.get(entry.name), calibration) for entry in registry)
        offsets, at = [], 0
        for test in self.tests:
            offsets.append(at)
            at += test.width
        self.offsets = tuple(offsets)
        self.at = tuple(zip(self.tests, self.offsets, strict=True))
        """(test, offset of its state) pairs, read per event."""
        self.width = at
        family = registry.families()
        self.families = max(family, default=-1) + 1
        self.fused = tuple(zip(self.offsets, family, strict=True))
        """(offset of a test's statistic, index of its family) pairs, read by the fusion."""


class ClientEvidence:
    """The registered sequential tests of one client: their state, in one list of floats
    (a client costs its floats, not an object per test), and the model's ``EvidenceTests``.

    >>> ev = ClientEvidence()
    >>> ind = Indicators(out_of_profile=True, step=False, boundary=None, exact=False)
    >>> for _ in range(40):
    ...     ev.update(ind)
    >>> ev.statistics()["out_of_profile"] > 20
    True
    """

    __slots__ = ("_s", "_tests")

    def __init__(self, tests: EvidenceTests | None = None) -> None:
        self._tests = EvidenceTests() if tests is None else tests
        self._s = [0.0] * self._tests.width

    def update(self, ind: Indicators) -> None:
        if ind.exact:
            return  # a resend adds no information about what is being explored
        s = self._s
        for test, at in self._tests.at:
            test.observe(s, at, ind)

    def total(self, allowance: float) -> float:
        """Fused evidence: the strongest test in full, the others only beyond ``allowance``.

        Benign clients wander a few nats up on several tests at once; a plain sum would
        add that noise up, while a real signal shows in one test far beyond it. Tests of one
        family (nested indicators: every far query is out of profile) rise and fall together
        on the same queries, so a family counts once, by its strongest test: a noisy client
        near the out-of-profile null would otherwise have its one fluctuation counted twice.
        """
        s = self._s
        best = [0.0] * self._tests.families
        for at, family in self._tests.fused:
            v = s[at]
            if v > best[family]:
                best[family] = v
        return combined(best, allowance)

    def statistics(self) -> dict[str, float]:
        s, t = self._s, self._tests
        return {name: s[at] for name, at in zip(t.names, t.offsets, strict=True)}

    def get_state(self) -> dict[str, list[float]]:
        """Each test's state by its name; a value at 0 (an alternative at rest, as most are) as
        the integer 0, which a stored state packs in one byte instead of a float's nine, and
        one of at least STORED_TO_THE_NAT nats to the nat (three bytes)."""
        s, t = self._s, self._tests
        return {
            name: [_stored(v) for v in test.get_state(s, at)]
            for name, test, at in zip(t.names, t.tests, t.offsets, strict=True)
        }

    def set_state(self, state: Mapping[str, Any]) -> list[str]:
        """Restore the tests named in ``state``; returns the names that start fresh (absent
        from ``state``, or stored in a shape the test no longer has)."""
        fresh = []
        s, t = self._s, self._tests
        for name, test, at in zip(t.names, t.tests, t.offsets, strict=True):
            stored = state.get(name)
            try:
                if stored is None:
                    raise ValueError("absent")
                test.set_state(s, at, stored)
            except (ValueError, TypeError):
                fresh.append(name)
        return fresh


#: A statistic this large is stored to the nat: an alert needs log(tests / alpha), 11 nats at
#: the default false-alarm rate (100 at an alpha of 3e-43), so there the alert and
#: its risk are long decided, and a client that turns quiet takes hundreds of queries to bring
#: it back near the threshold. A thief's statistics grow to thousands of nats: stored as
#: floats, they took the bench's largest client state over 4 KB.
STORED_TO_THE_NAT = 100.0


def _stored(v: float) -> float:
    """``v`` as a client state stores it (an integer where that packs smaller).

    >>> _stored(0.0), _stored(3.25), _stored(454.243), _stored(-5.5)
    (0, 3.25, 454, -5.5)
    """
    if v == 0.0:
        return 0
    return round(v) if abs(v) >= STORED_TO_THE_NAT else v


def combined(evidence: Iterable[float], allowance: float) -> float:
    """The strongest of independent log e-values in full, the others only beyond ``allowance``
    (``ClientEvidence.total``; a campaign's union fuses its pooled tests the same way).

    >>> combined([3.0, 10.0, 1.0], allowance=2.5)
    10.5
    """
    top = 0.0
    excess = 0.0
    for v in evidence:
        if v > top:
            top = v
        if v > allowance:
            excess += v - allowance
    if top > allowance:
        excess -= top - allowance
    return top + excess


def evidence_threshold(false_alarm_rate: float, registry: Registry = EVIDENCE_TESTS) -> float:
    """Log e-value at which the combined evidence raises an alert (Bonferroni over the tests).

    >>> round(evidence_threshold(1e-4), 2)
    11.0
    """
    return registry.threshold(false_alarm_rate)


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
