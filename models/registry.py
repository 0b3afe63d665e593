"""The registry of evidence tests: one entry per test, and everything else loops over it.

An entry names its test, the field of ``querywatch.features.client.Indicators`` it reads
(the *indicator*), the kind of sequential test run on it (``querywatch.models.kinds``), its
*calibration* (the null rate a model's tests use, from the model's reference —
``querywatch.models.calibration`` — and the ``detection.tolerances`` setting) and the
*reason* an analyst reads when the test drives a client's risk. The evidence fusion, the
alert threshold (Bonferroni over the registered tests), the reasons, the
``detection.tolerances`` setting and the stored client state (keyed by test name) all
iterate over ``EVIDENCE_TESTS``; nothing lists the tests a second time. This module stays
light (standard library only): the settings import it.

Adding a test is one entry here, the indicator in ``features/client.py`` if it is new, and a
test (see the README's contributor section).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from querywatch.models.calibration import (
    DRIFT_INFLATION,
    ISOLATION_TOLERANCE,
    OOD_TOLERANCE,
    RANK_SHIFT,
    Calibration,
)
from querywatch.models.kinds import (
    CountTest,
    NearRateTest,
    RankTest,
    RateTest,
    ScaledChanceTest,
    SequentialTest,
    SteadyRateTest,
)


def percent(share: float) -> str:
    """A share as a reason prints it: in percent, to one decimal at most.

    >>> percent(0.2), percent(0.016), percent(0.05)
    ('20%', '1.6%', '5%')
    """
    return f"{round(100 * share, 1):g}%"


def _confidence_figures(f: Mapping[str, float]) -> str:
    """What the confidence test's reason quotes of the answers. Their entropy is the scores'
    or, for a model served with labels only, that of the answers the model gave the nearest
    reference inputs (``models.labelmargin``); a client whose answers all came without
    scores from a scored model has neither entropy nor boundary answers to quote.

    >>> _confidence_figures({"output_entropy": 0.4, "boundary_share": 0.12})
    'mean output entropy 0.40; 12% on the boundary'
    >>> _confidence_figures({"output_entropy": 0.0, "boundary_share": 0.0})
    "answers without scores, ranked by the model's answers to the nearest reference inputs"
    """
    if f["output_entropy"] <= 0.0 and f["boundary_share"] <= 0.0:
        return "answers without scores, ranked by the model's answers to the nearest reference inputs"
    return f"mean output entropy {f['output_entropy']:.2f}; {100 * f['boundary_share']:.0f}% on the boundary"


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
    """What the model's reference says of the indicator beyond the null (from its
    calibration), for a kind of test that reads it: the indicator's rate, on which
    ``NearRateTest``'s alternatives depend; None for the others."""

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

        >>> EVIDENCE_TESTS.names()
        ('out_of_profile', 'steps', 'boundary', 'far', 'confidence', 'isolation')
        >>> EVIDENCE_TESTS.families()
        (0, 1, 2, 0, 2, 3)
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
        # The deep share when there are deep answers: a diluted prober's boundary share lies
        # near the benign level, and what alerted is the deep share, many times the 1% the
        # reference's answers reach (the test's third alternative).
        reason=lambda f, n, null: (
            f"{100 * f['boundary_share']:.0f}% of answers sit on the decision boundary"
            + (
                f", {100 * f['deep_boundary_share']:.0f}% at or below the margin of the reference's "
                "least sure 1%"
                if f.get("deep_boundary_share", 0.0) >= 0.005
                else ""
            )
            + f" (a benign client at most {null:.1f}× the reference's rate for inputs as typical) — "
            "boundary probing or uncertainty sampling"
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
            f"classes ({_confidence_figures(f)}) — uncertainty sampling: the queries a copy learns most from"
        ),
        # The same answers as the boundary test, which reads only their low end.
        implies="boundary",
    )
)
EVIDENCE_TESTS.register(
    EvidenceTest(
        name="isolation",
        indicator="isolated",
        test=SteadyRateTest,
        # A client's own queries are not a uniform draw from the reference (sessions, a
        # favourite region): 5% unless set, as for steps; a profile without isolation limits
        # judges no query isolated, whatever the tolerance.
        calibration=lambda cal, configured: ISOLATION_TOLERANCE if configured is None else configured,
        meaning="share of queries in profile yet farther from every earlier query of the client than "
        f"natural queries lie from their nearest 99% of the time (default {ISOLATION_TOLERANCE:g})",
        reason=lambda f, n, null: (
            f"{100 * f['isolated_share']:.0f}% of {n} queries lie farther from all the client sent before "
            "than the model's own data lies from its nearest neighbours — farthest-first (k-center) "
            f"selection, spreading the queries over the input space (a benign client at most {percent(null)})"
        ),
    )
)
