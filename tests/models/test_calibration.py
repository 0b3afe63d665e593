"""Null rates derived from the reference itself, and the count test that survives dilution."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_classification

from querywatch.features.boundary import BoundaryShare
from querywatch.features.client import Indicators
from querywatch.models.calibration import DRIFT_SHARE_CAP, FAR_FLOOR, Calibration, calibrate, trimmed_multiple
from querywatch.models.evidence import ClientEvidence, EvidenceTests, evidence_threshold
from querywatch.models.profile import fit_profile
from querywatch.models.registry import EVIDENCE_TESTS


def _ind(far: bool) -> Indicators:
    return Indicators(False, False, None, False, far)


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
    assert quiet.far_null >= FAR_FLOOR * quiet.ood_null and quiet.pseudo_clients == 100


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
    assert 0.04 <= cal.boundary_null <= 0.06  # the reference's own rate
    # Margins here do not depend on the scores, nor on the region: every bin has the same
    # chance, and the pseudo-clients' underlying ratios do not spread (the multiple is an upper
    # bound from 40-query pseudo-clients with about 2 boundary answers each: a loose one).
    assert all(0.02 <= r <= 0.1 for r in cal.boundary_rates) and 1.0 <= cal.boundary_multiple < 2.0


def test_a_noisy_benign_client_is_judged_against_the_boundary_chance_of_noisy_inputs() -> None:
    """In the reference, inputs far from the data get less confident answers. A drifted client
    whose inputs all lie there gets many boundary answers and no evidence; a thief that picks
    typical inputs on the boundary, at a lower rate, builds it."""
    rng = np.random.default_rng(4)
    scores = rng.gamma(4.0, size=4000)
    threshold = float(np.quantile(scores, 0.999))
    high = scores > np.quantile(scores, 0.9)
    on = rng.random(4000) < np.where(high, 0.3, 0.03)  # boundary answers, likelier when far
    cal = calibrate(
        scores, threshold, rng.integers(0, 8, 4000), margins=np.where(on, 0.0, 1.0), margin_threshold=0.5
    )
    chance = cal.boundary_chance(np.array([1.0, float(np.quantile(scores, 0.97))]))
    assert chance[0] < 0.06 < 0.2 < chance[1]
    null = {"boundary": cal.boundary_multiple}
    drifted, thief = ClientEvidence(EvidenceTests(null)), ClientEvidence(EvidenceTests(null))
    far_chance, typical_chance = float(chance[1]), float(chance[0])
    for _ in range(2000):
        drifted.update(Indicators(False, False, bool(rng.random() < 0.3), False, False, far_chance))
        thief.update(Indicators(False, False, bool(rng.random() < 0.15), False, False, typical_chance))
    threshold_e = evidence_threshold(1e-4)
    assert drifted.statistics()["boundary"] < threshold_e < thief.statistics()["boundary"]


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
    tests = EvidenceTests({"far": null})
    thief, benign = ClientEvidence(tests), ClientEvidence(tests)
    rng = np.random.default_rng(3)
    first = None
    for i in range(3000):
        thief.update(_ind(i % 5 == 0))
        benign.update(_ind(bool(rng.random() < 2 * null)))  # even twice the null rate
        if first is None and thief.statistics()["far"] >= threshold:
            first = i + 1
    assert first is not None and first <= 150
    assert benign.statistics()["far"] < threshold


def test_a_diluted_chain_builds_step_evidence_above_the_floor() -> None:
    """Steps found at 11% (a chain diluted 1:4: a fifth of its queries stolen, and of those
    a fraction whose parent the reservoir still holds) against the 5% floor: alerted within
    a few hundred queries; a benign client at the floor itself never is."""
    threshold = evidence_threshold(1e-4)
    tests = EvidenceTests({"steps": 0.05})
    thief, benign = ClientEvidence(tests), ClientEvidence(tests)
    rng = np.random.default_rng(3)
    first = None
    for i in range(3000):
        thief.update(Indicators(False, bool(rng.random() < 0.11), None, False, False))
        benign.update(Indicators(False, bool(rng.random() < 0.05), None, False, False))
        if first is None and thief.statistics()["steps"] >= threshold:
            first = i + 1
    assert first is not None and first <= 600
    assert benign.statistics()["steps"] < threshold


def test_a_client_concentrated_on_one_region_of_a_narrow_input_is_not_alerted_for_chance_steps() -> None:
    """On a narrow input the reference's pseudo-clients make chance steps at 3.7% (under the
    5% floor) and a benign client keeping to one region at 7.7% (an 8-input held-out model):
    the near alternative is then eight times the reference's rate, not twice the floor."""
    threshold = evidence_threshold(1e-4)
    rng = np.random.default_rng(4)
    steps = rng.random(5000) < 0.077
    peaks = {}
    for rate in (0.0, 0.037):
        calibration = Calibration(0.2, 0.05, 0.05, 1.0, 100, steps_null=rate)
        evidence = ClientEvidence(EvidenceTests({"steps": 0.05}, calibration=calibration))
        peak = 0.0
        for step in steps:
            evidence.update(Indicators(False, bool(step), None, False, False))
            peak = max(peak, evidence.statistics()["steps"])
        peaks[rate] = peak
    assert peaks[0.037] < threshold <= peaks[0.0]


def test_several_boundary_samplers_in_a_warm_up_do_not_shield_one_another() -> None:
    """A poisoned warm-up: eight of 128 clients get an answer on the boundary ten times as
    often as the rest. Tested each against the multiple of all the others, they shielded one
    another (4.9 against 1.6 without them)."""
    rng = np.random.default_rng(3)
    owners = np.repeat(np.arange(128), 40)
    scores, cells = rng.gamma(4.0, size=len(owners)), rng.integers(0, 8, len(owners))
    threshold = float(np.quantile(scores, 0.999))
    margins = rng.uniform(size=len(owners))  # 5% under the 0.05 margin threshold
    samplers = owners >= 120
    margins[samplers] = np.where(rng.random(samplers.sum()) < 0.6, 0.01, 0.5)
    benign = calibrate(
        scores[~samplers],
        threshold,
        cells[~samplers],
        owners=owners[~samplers],
        margins=margins[~samplers],
        margin_threshold=0.05,
    )
    poisoned = calibrate(scores, threshold, cells, owners=owners, margins=margins, margin_threshold=0.05)
    assert poisoned.boundary_multiple <= benign.boundary_multiple + 0.25


def test_a_warm_up_where_most_clients_see_no_boundary_answer_still_measures_the_others_spread() -> None:
    """A two-class model whose common class is seldom answered on the boundary: most 40-query
    warm-up clients (natural traffic) see no boundary answer, the others (clients sending the
    rare class's records, hard ones included) two and a half times the pooled rate. Started
    from the half with the fewest boundary answers, the search kept only clients with none,
    at a level of 0 that took nobody back: a multiple of 1, and on a held-out 97% / 3% model
    such clients alerted after a few thousand queries. Samplers are still left out."""
    rng = np.random.default_rng(0)
    observed = np.r_[np.zeros(60), rng.poisson(5.0, 40)].astype(float)
    expected = np.full(100, 2.0)
    multiple = trimmed_multiple(observed, expected)
    assert multiple > 2.5
    samplers = np.r_[observed, np.full(5, 15.0)]
    assert trimmed_multiple(samplers, np.full(105, 2.0)) == multiple


def test_a_model_whose_scores_come_in_steps_still_has_a_boundary() -> None:
    """A 15-neighbour model's margins are multiples of 1/15, and its 5th percentile is its
    lowest one, 0 (a tie): answers tied there are on the boundary, in the calibration as live,
    so a client that gets three times as many of them builds evidence and a benign one does
    not."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 6))
    weights = np.r_[0.07, np.full(15, 0.93 / 15)]
    margins = rng.choice(16, size=3000, p=weights) / 15.0
    profile = fit_profile(X, model_id="knn", version="1", margins=margins, cells=8, components=4)
    assert 0.0 < profile.margin_threshold < 1.0 / 15.0
    cal = profile.calibration
    assert cal is not None and 0.05 <= cal.boundary_null <= 0.09
    null = {"boundary": cal.boundary_multiple}
    chance = float(profile.view(X[:1]).boundary_chance[0])
    benign, thief = ClientEvidence(EvidenceTests(null)), ClientEvidence(EvidenceTests(null))
    for client, rate in ((benign, 0.07), (thief, 0.21)):
        share = BoundaryShare()
        for _ in range(600):
            margin = 0.0 if rng.random() < rate else float(rng.integers(1, 16)) / 15.0
            on = share.update(margin, 0.5, profile.margin_threshold)
            client.update(Indicators(False, False, on, False, False, chance))
    assert benign.statistics()["boundary"] < evidence_threshold(1e-4) < thief.statistics()["boundary"]


def test_a_warm_up_client_resending_a_boundary_answer_does_not_raise_the_boundary_multiple() -> None:
    """The live tests take no evidence from an exact resend; the warm-up's boundary null
    must not count its answers either. Eight retrying clients, each resending one input with
    a boundary answer, are as many copies of one answer each: counted, they raise the
    multiple (too few copies to be trimmed as outliers); left out, it is the multiple of the
    warm-up without them."""
    rng = np.random.default_rng(4)
    owners = np.repeat(np.arange(120), 40)
    X = rng.normal(size=(len(owners), 8))
    margins = rng.uniform(size=len(owners))  # 5% under the 0.05 threshold the reference sets
    retrying = owners >= 112
    for client in range(112, 120):
        rows = np.flatnonzero(owners == client)
        X[rows[1:4]] = X[rows[0]]  # the first input sent four times in all
        margins[rows[:4]] = 0.0
    clean = fit_profile(
        X[~retrying], model_id="m", version="1", owners=owners[~retrying], margins=margins[~retrying], cells=8
    )
    with_retries = fit_profile(X, model_id="m", version="1", owners=owners, margins=margins, cells=8)
    assert clean.calibration is not None and with_retries.calibration is not None
    assert with_retries.calibration.boundary_multiple <= clean.calibration.boundary_multiple + 0.1


def test_a_warm_up_client_resending_an_input_beyond_the_profile_does_not_raise_its_nulls() -> None:
    """The same for the out-of-profile and far nulls: eight of 600 warm-up clients each send
    one input far beyond the others twice. Counted, 5% of their queries are out of profile,
    and the null (the 99th percentile over the clients) would tolerate that share from every
    client (0.05, the far null three times that); the live tests see one query of each."""
    rng = np.random.default_rng(5)
    owners = np.repeat(np.arange(600), 40)
    X = rng.normal(size=(len(owners), 8))
    for client in range(592, 600):
        rows = np.flatnonzero(owners == client)
        X[rows[:2]] = 6.0 * rng.normal(size=8)  # one input beyond the profile, sent twice
    profile = fit_profile(X, model_id="m", version="1", owners=owners, cells=8)
    assert profile.calibration is not None
    assert profile.calibration.ood_null < 0.04 and profile.calibration.far_null < 0.12


def test_a_warm_ups_small_clients_do_not_set_the_out_of_profile_and_far_nulls() -> None:
    """A warm-up holds clients of a few queries beside those of 40: one of them with one input
    past the 99.9th percentile by chance has a rate of 20%, and the 99th percentile over the
    clients would be theirs. Their rates are left out of the nulls."""
    rng = np.random.default_rng(6)
    scores = rng.gamma(4.0, size=4000)
    threshold = float(np.quantile(scores, 0.999))
    small = rng.gamma(4.0, size=300)
    small[[0, 5, 10, 15]] = threshold * 1.05  # four of 60 small clients: one query just past it
    owners = np.concatenate([np.repeat(np.arange(100), 40), 100 + np.repeat(np.arange(60), 5)])
    cells = rng.integers(0, 8, len(owners))
    alone = calibrate(scores, threshold, cells[:4000], owners=owners[:4000])
    mixed = calibrate(np.concatenate([scores, small]), threshold, cells, owners=owners)
    assert mixed.pseudo_clients == 160
    assert mixed.ood_null == alone.ood_null and mixed.far_null == alone.far_null < 0.1


def test_a_warm_up_of_one_off_users_takes_its_nulls_from_all_of_them() -> None:
    """Five clients of 40 rows among 800 of five, 20 of which send one query past the 99.9th
    percentile: a percentile over the five alone would be their rate, none, and the far null
    twice the whole reference's rate; fewer than 50 clients have 20 rows, so the largest 50,
    every client of five rows with them, give the nulls."""
    rng = np.random.default_rng(7)
    owners = np.concatenate([np.repeat(np.arange(5), 40), 5 + np.repeat(np.arange(800), 5)])
    scores = rng.gamma(4.0, size=len(owners))
    threshold = float(np.quantile(scores, 0.999))
    scores = np.minimum(scores, threshold)
    scores[200 + 5 * np.arange(20)] = threshold * 1.05
    cal = calibrate(scores, threshold, rng.integers(0, 8, len(owners)), owners=owners)
    assert cal.ood_null == 0.2


def _scaled_data(dim: int) -> np.ndarray:
    X, _ = make_classification(
        n_samples=6000, n_features=dim, n_informative=max(2, dim // 3), n_redundant=dim // 5, random_state=3
    )
    return np.asarray((X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0)))


def test_the_out_of_profile_tolerance_covers_drift_on_a_wide_model_only() -> None:
    """Another calibration of the same data (per-feature gains 0.8-1.25, offsets, noise) sends
    over a fifth of its queries out of profile on a 100-input model, whose scores concentrate
    near their 99.9th percentile, and a few percent on an 8-input one: the tolerance rises
    with the reference's concentration, and stays at the default where drift stays small."""
    rng = np.random.default_rng(1)
    tolerance, drifted = {}, {}
    for dim in (8, 100):
        X = _scaled_data(dim)
        profile = fit_profile(X[:4000], model_id="m", version="1")
        assert profile.calibration is not None
        tolerance[dim] = EVIDENCE_TESTS.nulls(profile.calibration)["out_of_profile"]
        shares = []
        for _ in range(5):
            gain, offset = rng.uniform(0.8, 1.25, dim), rng.normal(0.0, 0.03, dim)
            inputs = X[4000:] * gain + offset + rng.normal(0.0, 0.05, (2000, dim))
            shares.append(profile.view(np.clip(inputs, 0.0, 1.0)).out_of_profile.mean())
        drifted[dim] = max(shares)
    assert drifted[100] > 0.2 and tolerance[100] > drifted[100]
    assert drifted[8] < 0.1 and tolerance[8] == 0.2


def test_on_a_very_wide_model_the_far_threshold_clears_drift() -> None:
    """On 300 inputs every score sits close under the 99.9th percentile and the reference's
    most extreme input barely beyond it, so "as much again" past that input is a margin a
    drifted client crosses with most of its queries. The far threshold also clears the
    percentile grown by the drift the out-of-profile test tolerates: a drifted client sends
    nothing there, random inputs everything; the out-of-profile tolerance is at its cap."""
    rng = np.random.default_rng(2)
    X = _scaled_data(300)
    profile = fit_profile(X[:4000], model_id="m", version="1")
    assert profile.calibration is not None
    scores = profile.view(X[:4000]).ood_score
    as_much_again = 2.0 * scores.max() - profile.ood_threshold
    gain, offset = rng.uniform(0.8, 1.25, 300), rng.normal(0.0, 0.03, 300)
    drifted = profile.view(np.clip(X[4000:] * gain + offset + rng.normal(0.0, 0.05, (2000, 300)), 0.0, 1.0))
    assert (drifted.ood_score > as_much_again).mean() > 0.3
    assert drifted.far.mean() < 0.01 and profile.view(rng.random((2000, 300))).far.mean() > 0.95
    assert EVIDENCE_TESTS.nulls(profile.calibration)["out_of_profile"] == DRIFT_SHARE_CAP
