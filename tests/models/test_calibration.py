"""Null rates derived from the reference itself, and the count test that survives dilution."""

from __future__ import annotations

import numpy as np

from querywatch.features.client import Indicators
from querywatch.models.calibration import calibrate
from querywatch.models.evidence import ClientEvidence, evidence_threshold
from querywatch.models.profile import fit_profile


def _ind(far: bool) -> Indicators:
    return Indicators(False, False, None, False, 0.5, False, far)


def test_noisier_reference_clients_raise_the_derived_nulls() -> None:
    rng = np.random.default_rng(0)
    scores = rng.gamma(4.0, size=4000)
    owners = np.repeat(np.arange(100), 40)
    cells = rng.integers(0, 8, 4000)
    threshold = float(np.quantile(scores, 0.999))
    quiet = calibrate(scores, threshold, cells, owners=owners)
    noisy = scores.copy()
    noisy[owners >= 90] *= 1.6  # ten clients send noisier data than the rest
    loud = calibrate(noisy, threshold, cells, owners=owners)
    assert loud.ood_null > 2 * quiet.ood_null
    assert quiet.far_null >= 4 * quiet.ood_null and quiet.pseudo_clients == 100


def test_without_owners_pseudo_clients_are_drawn_and_boundary_null_follows_margins() -> None:
    rng = np.random.default_rng(1)
    scores = rng.gamma(4.0, size=3000)
    margins = rng.uniform(0, 1, size=3000)
    cal = calibrate(
        scores,
        float(np.quantile(scores, 0.999)),
        rng.integers(0, 8, 3000),
        margins=margins,
        margin_threshold=0.05,
    )
    assert cal.pseudo_clients == 200
    assert 0.05 <= cal.boundary_null <= 0.25


def test_the_profile_carries_its_calibration_through_bytes() -> None:
    rng = np.random.default_rng(2)
    p = fit_profile(rng.normal(size=(2000, 8)), model_id="m", version="1", cells=8, components=4)
    assert p.calibration is not None and p.calibration.far_threshold >= p.ood_threshold
    again = type(p).from_bytes(p.to_bytes())
    assert again.calibration == p.calibration
    far = rng.normal(size=(200, 8)) * 4
    assert p.view(far).far.mean() > 0.5


def test_a_thief_diluted_one_to_four_still_builds_count_evidence() -> None:
    """One far query in five: alerted within a few hundred queries; a benign client at the
    null rate never is."""
    threshold = evidence_threshold(1e-4)
    null = 0.01
    thief, benign = ClientEvidence({"far": null}), ClientEvidence({"far": null})
    rng = np.random.default_rng(3)
    first = None
    for i in range(3000):
        thief.update(_ind(i % 5 == 0))
        benign.update(_ind(bool(rng.random() < 2 * null)))  # even twice the null rate
        if first is None and thief.statistics()["far"] >= threshold:
            first = i + 1
    assert first is not None and first <= 150
    assert benign.statistics()["far"] < threshold
