"""The boundary test's alternatives: its rate alternatives (``ScaledChanceTest.ODDS_RATIOS``),
and deep boundary answers, at the margin only 1% of the reference's answers reach, with the
alternative that expects a thief's boundary answers there."""

from __future__ import annotations

import numpy as np

from querywatch.detector.engine.profiles import derived_thresholds
from querywatch.features.boundary import BoundaryShare
from querywatch.features.client import Indicators
from querywatch.models.calibration import Calibration, calibrate
from querywatch.models.evidence import ClientEvidence, EvidenceTests, evidence_threshold
from querywatch.models.kinds import ScaledChanceTest
from querywatch.models.profile import DEEP_QUANTILE, boundary_margin, fit_profile


def _calibrated(margins: np.ndarray) -> Calibration:
    rng = np.random.default_rng(0)
    scores = rng.gamma(4.0, size=len(margins))
    return calibrate(
        scores,
        float(np.quantile(scores, 0.999)),
        rng.integers(0, 8, len(margins)),
        margins=margins,
        margin_threshold=boundary_margin(margins),
        deep_margin=boundary_margin(margins, DEEP_QUANTILE),
    )


def test_a_fifth_of_the_boundary_answers_are_deep_on_smooth_margins() -> None:
    cal = _calibrated(np.random.default_rng(1).uniform(0.0, 1.0, 5000))
    assert 0.0 < cal.deep_margin < 0.02
    assert 0.15 < cal.deep_share < 0.25
    assert Calibration.from_dict(cal.as_dict()) == cal


def test_a_profile_shows_its_deep_margin_beside_its_boundary_margin() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 6))
    margins = np.abs(np.tanh(X[:, 0] - X[:, 1]))  # a smooth two-class boundary
    labels: list[object] = (X[:, 0] > X[:, 1]).astype(int).tolist()
    profile = fit_profile(X, model_id="m", version="1", labels=labels, margins=margins, cells=8, components=4)
    shown = derived_thresholds(profile)
    assert 0.0 < shown["deep_margin"] < shown["margin_threshold"]
    assert 0.1 < shown["deep_share"] < 0.3
    bare = derived_thresholds(fit_profile(X, model_id="m", version="1", cells=8, components=4))
    assert "deep_margin" not in bare and "deep_share" not in bare


def test_margins_in_steps_with_no_deeper_atom_have_no_deep_answers() -> None:
    # A 15-neighbour model: 10% of its answers tie at 0, the lowest atom, where both the 5th
    # and the 1st percentile fall; no answer can be deeper than a boundary one.
    steps = np.arange(16) / 15
    cal = _calibrated(np.r_[np.zeros(500), np.repeat(steps[1:], 300)])
    assert cal.deep_share == 0.0 and cal.deep_margin == 0.0


def test_a_calibration_stored_before_deep_answers_has_none() -> None:
    stored = _calibrated(np.random.default_rng(2).uniform(0.0, 1.0, 2000)).as_dict()
    del stored["deep_margin"], stored["deep_share"]
    loaded = Calibration.from_dict(stored)
    assert loaded.deep_margin == 0.0 and loaded.deep_share == 0.0


def _indicators(boundary: bool, deep: bool, deep_share: float) -> Indicators:
    return Indicators(
        False,
        False,
        boundary,
        False,
        False,
        0.05,
        boundary_deep=deep,
        boundary_deep_share=deep_share,
    )


def test_deep_answers_among_natural_ones_alert_where_the_rate_does_not() -> None:
    """A prober diluted 1:4 (each of its answers deep, the natural ones on the boundary at
    the reference's rate) against a benign client whose boundary answers come at twice the
    reference's rate, as deep as the reference's: the first alerts, the second never."""
    rng = np.random.default_rng(3)
    tests = EvidenceTests({"boundary": 2.0})
    threshold = evidence_threshold(1e-4)
    # Without a measured deep share the alternative is silent: the rate alone (24% of
    # answers on the boundary against a null of 10%) takes over three times as long.
    clients = {"prober": 0.2, "unmeasured": 0.0}
    evidence = {name: ClientEvidence(tests) for name in clients}
    first: dict[str, int] = {}
    benign = ClientEvidence(tests)
    for i in range(3000):
        natural = bool(rng.random() < 0.05)
        for name, deep_share in clients.items():
            if i % 5 == 0:
                evidence[name].update(_indicators(True, deep_share > 0.0, deep_share))
            else:
                evidence[name].update(_indicators(natural, natural and rng.random() < 0.2, deep_share))
            if name not in first and evidence[name].statistics()["boundary"] > threshold:
                first[name] = i
        on = bool(rng.random() < 0.1)
        benign.update(_indicators(on, on and rng.random() < 0.2, 0.2))
    assert first["prober"] < 60 and first["unmeasured"] > 3 * first["prober"], first
    assert benign.statistics()["boundary"] < threshold


def _first_alert(on_boundary: np.ndarray, tests: EvidenceTests, threshold: float) -> int | None:
    """The query at which a client whose answers fall on the boundary as ``on_boundary`` says
    first passes the boundary test's threshold (None: never)."""
    evidence = ClientEvidence(tests)
    for i, on in enumerate(on_boundary):
        evidence.update(_indicators(bool(on), False, 0.0))
        if evidence.statistics()["boundary"] > threshold:
            return i
    return None


def test_a_client_a_little_above_the_null_mostly_stays_quiet_where_a_thief_is_caught() -> None:
    """Sixteen heavy users answered on the boundary at 1.3 times the null for 5,000 queries
    each, and sixteen thieves at 2.5 times it (what uncertainty sampling reaches). With
    alternatives at 1.5 times the null's odds, which gain evidence from 1.23 times the null
    up, ten of the heavy users alerted; at twice the odds four, and every thief as soon."""
    tests = EvidenceTests({"boundary": 1.0})
    threshold = evidence_threshold(1e-4)
    crept, caught = 0, []
    for seed in range(16):
        rng = np.random.default_rng(seed)
        heavy, thief = rng.random(5000) < 1.3 * 0.05, rng.random(5000) < 2.5 * 0.05
        crept += _first_alert(heavy, tests, threshold) is not None
        caught.append(_first_alert(thief, tests, threshold))
    assert crept <= 5, crept
    assert all(q is not None and q < 700 for q in caught), caught
    assert float(np.median(np.array(caught, dtype=float))) < 300, caught


def test_states_stored_before_deep_answers_load() -> None:
    test = ScaledChanceTest("boundary", 2.0)
    s = [0.0] * test.width
    test.set_state(s, 0, [3.0, 5.0])  # the two odds alternatives, as stored before
    assert s == [5.0, 3.0, 5.0, 0.0]
    share = BoundaryShare()
    share.set_state((4, 100, 12.5))
    assert (share.share, share.deep_share) == (0.04, 0.0)
