"""Reference profiles: geometry, robust trimming, persistence, fusion."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from querywatch.models.evidence import ClientEvidence, evidence_threshold, fuse
from querywatch.models.profile import (
    APART_SAMPLE,
    APART_WIDTH,
    NATURAL_SAMPLE,
    ReferenceProfile,
    apart_distances,
    fit_profile,
    kept_clients,
)
from querywatch.models.refresh import refresh_profile


def _reference(rng: np.random.Generator, n: int = 2000, dim: int = 16) -> np.ndarray:
    centres = rng.uniform(0, 1, size=(6, dim))
    return centres[rng.integers(0, 6, n)] + rng.normal(0, 0.03, size=(n, dim))


def test_profile_flags_far_inputs_and_keeps_near_ones() -> None:
    rng = np.random.default_rng(0)
    X = _reference(rng)
    p = fit_profile(X, model_id="m", version="1", cells=8, components=4)
    assert p.view(X).out_of_profile.mean() == pytest.approx(0.001, abs=0.002)
    far = rng.uniform(3, 4, size=(100, 16))
    assert p.view(far).out_of_profile.all()


def _amounts_and_flags(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows of a tabular model with mixed features: 6 narrow amounts (min-max scaled, most
    of them mid-range) and 10 noisy 0/1 flags, which spread three times as wide."""
    amounts = np.clip(rng.normal(0.5, 0.1, size=(n, 6)), 0.0, 1.0)
    flags = (rng.random((n, 10)) < 0.5).astype(float)
    return np.hstack([amounts, flags])


def test_uniform_rows_of_a_mixed_feature_model_are_out_of_profile() -> None:
    # The global score alone misses them: the flags' spread hides the amounts, and a flag at
    # 0.5 lies nearer its mean than a 0 or a 1. The spread score sees them.
    rng = np.random.default_rng(5)
    p = fit_profile(_amounts_and_flags(rng, 3000), model_id="m", version="1", cells=8, components=6)
    uniform = rng.random((1000, 16))
    assert p.view(_amounts_and_flags(rng, 1000)).out_of_profile.mean() < 0.01
    assert p.view(uniform).out_of_profile.mean() > 0.5
    assert (p.view(uniform).ood_score > p.ood_threshold).mean() < 0.05


def test_a_warmup_trims_a_thief_only_the_spread_score_sees() -> None:
    rng = np.random.default_rng(8)
    X = np.vstack([_amounts_and_flags(rng, 3000), rng.random((120, 16))])
    owners = np.array([f"c{i % 75}" for i in range(3000)] + ["thief"] * 120)
    p = fit_profile(X, model_id="m", version="1", owners=owners, cells=8, components=6)
    assert p.reference_size == 3000
    assert p.view(rng.random((1000, 16))).out_of_profile.mean() > 0.5


def test_a_near_constant_feature_does_not_turn_noise_into_distance() -> None:
    rng = np.random.default_rng(6)
    X = _reference(rng)
    X[:, 0] = 0.0  # a blank border
    p = fit_profile(X, model_id="m", version="1", cells=8, components=4)
    noisy = X[:500].copy()
    noisy[:, 0] = rng.normal(0.0, 0.03, size=500)  # a scanner's noise where the reference has none
    assert p.view(noisy).out_of_profile.mean() < 0.05


def test_a_profile_stored_before_spread_scores_reads_its_score_alone() -> None:
    rng = np.random.default_rng(7)
    X = _reference(rng)
    p = fit_profile(X, model_id="m", version="1", cells=8, components=4)
    old = replace(p, spread=np.zeros(0), spread_threshold=math.inf)
    loaded = ReferenceProfile.from_bytes(old.to_bytes())
    assert loaded.spread.shape == (0,) and loaded.spread_threshold == math.inf
    view = loaded.view(rng.uniform(0.0, 1.0, size=(500, 16)))
    assert np.array_equal(view.out_of_profile, view.ood_score > p.ood_threshold)


def test_trimming_keeps_a_thief_out_of_the_reference() -> None:
    rng = np.random.default_rng(1)
    X = _reference(rng)
    owners = np.array([f"c{i % 50}" for i in range(len(X))])
    thief = rng.uniform(-2, 3, size=(200, 16))
    mixed = np.vstack([X, thief])
    owners = np.concatenate([owners, ["thief"] * 200])
    trimmed = fit_profile(mixed, model_id="m", version="1", owners=owners, cells=8, components=4)
    naive = fit_profile(mixed, model_id="m", version="1", cells=8, components=4)
    assert trimmed.view(thief).out_of_profile.mean() > 0.9
    assert trimmed.reference_size == len(X)
    assert naive.view(thief).out_of_profile.mean() < trimmed.view(thief).out_of_profile.mean()
    # The profile names whom it left out, through a save too; a fit without owners names none.
    assert ReferenceProfile.from_bytes(trimmed.to_bytes()).left_out == ("thief",)
    assert naive.left_out == ()


@pytest.mark.parametrize("dim", [16, 200])
def test_distances_to_other_clients_rows_find_a_diluted_thief_in_a_large_warm_up(dim: int) -> None:
    # More rows than the sample of other clients' rows, and (at 200 inputs) coordinates
    # projected to APART_WIDTH: a thief's one row in five from a wide uniform box lies apart
    # from every other client's rows, its natural ones do not.
    rng = np.random.default_rng(3)
    natural = rng.normal(size=(3000, dim)) @ rng.normal(size=(dim, dim)) / math.sqrt(dim)
    owners = np.array([f"c{i % 75}" for i in range(len(natural))])
    thief = natural[rng.choice(len(natural), 40)] + rng.normal(scale=0.05, size=(40, dim))
    thief[::5] = rng.uniform(-8.0, 8.0, size=(8, dim))
    X = np.vstack([natural, thief])
    everyone = np.concatenate([owners, ["thief"] * 40])
    assert len(X) > APART_SAMPLE and (dim <= APART_WIDTH) == (dim == 16)
    profile = fit_profile(natural, model_id="m", version="1", cells=8, components=4)
    apart = apart_distances(profile, X, everyone)
    users = apart[: len(natural)]
    assert apart[len(natural) :: 5].min() > 1.5 * users.max()
    kept = kept_clients(profile.view(X), everyone, apart)
    assert not kept[len(natural) :].any() and kept[: len(natural)].all()
    # A lone client has no one to lie apart from.
    assert not apart_distances(profile, natural[:100], np.zeros(100)).any()


def test_profile_round_trips_through_bytes() -> None:
    rng = np.random.default_rng(2)
    X = _reference(rng)
    p = fit_profile(X, model_id="m", version="v", labels=[int(v * 10) % 3 for v in X[:, 0]], cells=8)
    q = ReferenceProfile.from_bytes(p.to_bytes())
    assert (q.model_id, q.version, q.classes) == (p.model_id, p.version, p.classes)
    v1, v2 = p.view(X[:50]), q.view(X[:50])
    assert np.array_equal(v1.cell, v2.cell) and np.allclose(v1.ood_score, v2.ood_score)
    # A file without labels keeps a sample of its inputs for the live answers' validation
    # set (``with_extraction``), stored as the 8-bit codes it is matched on; one with labels not.
    unlabelled = fit_profile(X, model_id="m", version="v", cells=8)
    kept = ReferenceProfile.from_bytes(unlabelled.to_bytes()).natural
    assert kept.dtype == np.uint8 and np.array_equal(kept, unlabelled.natural)
    assert len(kept) == min(len(X), NATURAL_SAMPLE)
    assert len(q.natural) == 0


def test_from_bytes_rejects_what_is_not_a_profile() -> None:
    with pytest.raises(ValueError, match="not a querywatch profile"):
        ReferenceProfile.from_bytes(b"hello")


def test_too_few_reference_inputs_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least"):
        fit_profile(np.zeros((5, 3)), model_id="m", version="1", cells=4)


def test_expected_coverage_saturates_at_the_number_of_cells() -> None:
    rng = np.random.default_rng(3)
    p = fit_profile(_reference(rng), model_id="m", version="1", cells=8, components=4)
    expected = p.expected_cells()
    assert expected[0] == pytest.approx(1.0)
    assert np.all(np.diff(expected) >= 0) and expected[-1] == pytest.approx(8.0, abs=1e-6)


def test_fusion_counts_one_strong_test_fully_and_discounts_wandering_ones() -> None:
    threshold = evidence_threshold(1e-4)
    ev = ClientEvidence()
    ev.set_state({"out_of_profile": [threshold, 0.0]})
    assert fuse(ev.total(0.25 * threshold), threshold, 0.8) == pytest.approx(0.8)
    quiet = ClientEvidence()
    quiet.set_state({name: [0.2 * threshold, 0.0] for name in ("out_of_profile", "steps", "boundary")})
    assert fuse(quiet.total(0.25 * threshold), threshold, 0.8) < 0.1


def test_a_refresh_raises_the_spread_threshold_within_its_bound() -> None:
    rng = np.random.default_rng(9)
    p = fit_profile(rng.normal(size=(3000, 6)), model_id="m", version="v", cells=8, components=3)
    owners = np.repeat(np.arange(100), 30)
    first = refresh_profile(p, rng.normal(size=(3000, 6)), owners, baseline=None, at=0.0, alpha=1e-4)
    moved = refresh_profile(
        p, 1.5 * rng.normal(size=(3000, 6)) + 0.5, owners, baseline=first.window, at=1.0, alpha=1e-4
    )
    assert moved.profile is not None
    bound = p.typical_score * p.spread_threshold / p.ood_threshold
    # a noisier population: both thresholds rise, the spread one by no more than r in its units
    assert p.spread_threshold < moved.profile.spread_threshold <= p.spread_threshold + bound


def test_a_refresh_trims_diluted_thieves_as_the_warm_up_does() -> None:
    """Eight quiet clients of 100 send every fifth input between the out-of-profile and the
    far thresholds: by their medians they are ordinary, and their stolen rows would raise the
    refreshed thresholds; by their upper deciles they are left out, as from a warm-up."""
    rng = np.random.default_rng(0)
    p = fit_profile(rng.normal(size=(3000, 6)), model_id="m", version="v", cells=8, components=3)
    owners = np.repeat(np.arange(100), 30)
    first = refresh_profile(p, rng.normal(size=(3000, 6)), owners, baseline=None, at=0.0, alpha=1e-4)
    drifted = rng.normal(size=(3000, 6)) + 0.4
    clean = refresh_profile(p, drifted, owners, baseline=first.window, at=1.0, alpha=1e-4).profile
    candidates = rng.normal(size=(20000, 6)) * 1.6 + 0.4
    scores = p.view(candidates).ood_score
    assert p.calibration is not None
    far = p.calibration.far_threshold
    between = candidates[(scores > p.ood_threshold + 0.1 * p.typical_score) & (scores < far)]
    poisoned = drifted.copy()
    for client in range(8):
        rows = np.flatnonzero(owners == client)[::5]
        poisoned[rows] = between[rng.integers(len(between), size=len(rows))]
    refreshed = refresh_profile(p, poisoned, owners, baseline=first.window, at=1.0, alpha=1e-4).profile
    assert clean is not None and refreshed is not None
    # The sample without them (their natural rows go too), not one raised by them (by 0.2,
    # a quarter of the most one refresh may move it, under the median alone).
    assert refreshed.ood_threshold == pytest.approx(clean.ood_threshold, abs=0.02)
    assert refreshed.calibration is not None and clean.calibration is not None
    assert refreshed.calibration.far_threshold == pytest.approx(clean.calibration.far_threshold, abs=0.02)


def test_answers_that_drift_alone_re_measure_only_the_boundary_chance() -> None:
    """A population that gets less sure answers where it always queried (the model's inputs
    did not move): the boundary chance is re-measured, within its bound, and nothing about
    the inputs moves; the same answers as before refresh nothing."""
    rng = np.random.default_rng(3)
    margins = rng.uniform(0.0, 1.0, 3000)
    p = fit_profile(
        rng.normal(size=(3000, 6)), model_id="m", version="v", cells=8, components=3, margins=margins
    )
    assert p.calibration is not None and p.margin_threshold > 0.0
    owners = np.repeat(np.arange(100), 30)
    first = refresh_profile(
        p,
        rng.normal(size=(3000, 6)),
        owners,
        margins=rng.uniform(0.0, 1.0, 3000),
        baseline=None,
        at=0.0,
        alpha=1e-4,
    )
    same = refresh_profile(
        p,
        rng.normal(size=(3000, 6)),
        owners,
        margins=rng.uniform(0.0, 1.0, 3000),
        baseline=first.window,
        at=1.0,
        alpha=1e-4,
    )
    assert same.profile is None
    # Twice as many answers at or below the margin threshold, from the same inputs' region.
    unsure = rng.uniform(0.0, 1.0, 3000) * np.where(rng.random(3000) < 0.06, 0.0, 1.0)
    moved = refresh_profile(
        p, rng.normal(size=(3000, 6)), owners, margins=unsure, baseline=first.window, at=2.0, alpha=1e-4
    )
    refreshed = moved.profile
    assert refreshed is not None and refreshed.calibration is not None
    assert (refreshed.refresh_reason or "").startswith("drift in the answers")
    assert refreshed.revision == 1 and refreshed.version == p.version
    assert np.array_equal(refreshed.centroids, p.centroids) and refreshed.ood_threshold == p.ood_threshold
    old, new = np.array(p.calibration.boundary_rates), np.array(refreshed.calibration.boundary_rates)
    assert moved.window is not None and moved.window.boundary is not None
    # Raised towards the sample's 10%, the nearest bin (most inputs, the tightest bound) short of it.
    assert new.mean() > 1.5 * old.mean() and old[0] < new[0] < moved.window.boundary.share


def test_a_zero_where_the_data_never_has_one_is_read_as_a_missing_value() -> None:
    """A record with a field missing and sent as 0 lies beyond a model's data whose fields
    are never 0; read as a missing value (NaN: the nearest cell's value, as a gap sent as
    null is read) it lies in profile, and so it is read, up to half of its fields. A row out
    of profile even so, or with more than half of its fields at 0, is read as sent; where
    the reference's own rows hold zeros (noise clipped at 0), a 0 is a value."""
    rng = np.random.default_rng(7)
    X = rng.normal(0.6, 0.05, size=(4000, 8))
    p = fit_profile(X, model_id="m", version="v", cells=8, components=4)
    assert p.zero_missing.all()
    record = rng.normal(0.6, 0.03, size=(1, 8))
    missing = record.copy()
    missing[0, 3] = 0.0
    most = record.copy()
    most[0, :5] = 0.0
    synthetic = rng.uniform(-3.0, 3.0, size=(1, 8))
    synthetic[0, 0] = 0.0
    as_sent = replace(p, zero_missing=np.zeros(8, dtype=bool))
    assert as_sent.view(missing).out_of_profile[0] and not p.view(missing).out_of_profile[0]
    gap = missing.copy()
    gap[0, 3] = np.nan
    assert np.array_equal(p.view(missing).quantized, p.view(gap).quantized)
    missing[0, 3] = -999.0  # another fill pipelines use
    assert as_sent.view(missing).far[0] and np.array_equal(p.view(missing).quantized, p.view(gap).quantized)
    three = record.copy()  # three of eight, more than a quarter (read as sent before 2026-12-06)
    three[0, [1, 4, 6]] = 0.0
    assert as_sent.view(three).out_of_profile[0] and not p.view(three).out_of_profile[0]
    for row in (most, synthetic):
        assert np.array_equal(p.view(row).quantized, as_sent.view(row).quantized)
        assert p.view(row).out_of_profile[0]
    assert ReferenceProfile.from_bytes(p.to_bytes()).zero_missing.all()
    noisy = np.clip(X + rng.normal(0.0, 0.2, size=X.shape) - 0.3, 0.0, 1.0)
    assert not fit_profile(noisy, model_id="m", version="v", cells=8, components=4).zero_missing.any()


def test_missing_values_in_the_reference_and_live_are_read_from_the_nearest_cell() -> None:
    """Values sent as missing (NaN: a tree model reads them so): a reference with a tenth of
    its values missing is fitted (each read as its feature's mean, then as that fit's
    nearest cell's) to about the complete reference's threshold, a thief's rows lie as far
    out, a record with a field missing lies in profile, and a refresh places such rows too."""
    rng = np.random.default_rng(9)
    mixing = rng.normal(size=(2, 6))

    def records(n: int) -> np.ndarray:
        base = rng.normal(size=(n, 2))
        return np.hstack([base, base @ mixing]) + rng.normal(0.0, 0.1, size=(n, 8))

    X = records(4000)
    clean = fit_profile(X, model_id="m", version="v", cells=8, components=4)
    gaps = X.copy()
    gaps[rng.random(X.shape) < 0.1] = np.nan
    p = fit_profile(gaps, model_id="m", version="v", cells=8, components=4)
    assert np.isfinite(p.mean).all() and np.isfinite(p.low).all() and np.isfinite(p.high).all()
    assert 0.8 < p.ood_threshold / clean.ood_threshold < 1.2
    thief = rng.uniform(X.min(axis=0), X.max(axis=0), size=(500, 8))
    assert p.view(thief).out_of_profile.mean() > 0.75
    holed = records(1000)
    holed[:, 5] = np.nan
    assert p.view(holed).out_of_profile.mean() < 0.01
    assert not np.isnan(p.filled(holed)).any() and p.filled(X) is X
    owners = np.repeat(np.arange(100), 10)
    window = refresh_profile(p, holed, owners, baseline=None, at=0.0, alpha=1e-4).window
    # About as typical as the reference (0.58 beyond its median score; read as the mean: 0.72).
    assert window is not None and 0.4 < window.beyond.share < 0.65


def test_fills_of_minus_999_in_the_reference_are_read_as_missing_values_before_the_fit() -> None:
    """Clients that send -999 for a field they do not have, in a warm-up: their fills are read
    as the feature's mean before the fit, so the feature keeps its natural code range and is
    one whose fills are read as missing, and a thief's rows stay as far out as on a clean
    reference. A 0 that fills as many rows is a value (it lies within reach of the data)."""
    rng = np.random.default_rng(8)
    X = rng.normal(0.6, 0.05, size=(4000, 8))
    clean = fit_profile(X, model_id="m", version="v", cells=8, components=4)
    filled = X.copy()
    filled[rng.random(4000) < 0.05, 2] = -999.0
    p = fit_profile(filled, model_id="m", version="v", cells=8, components=4)
    assert p.zero_missing.all() and p.low[2] == clean.low[2] and abs(p.mean[2] - clean.mean[2]) < 0.005
    thief = rng.uniform(0.0, 1.0, size=(500, 8))
    assert p.view(thief).out_of_profile.mean() == clean.view(thief).out_of_profile.mean() > 0.9
    record = rng.normal(0.6, 0.03, size=(1, 8))
    record[0, 2] = -999.0
    assert not p.view(record).out_of_profile[0]
    zeros = X.copy()
    zeros[rng.random(4000) < 0.05, 2] = 0.0
    kept = fit_profile(zeros, model_id="m", version="v", cells=8, components=4)
    assert kept.low[2] == 0.0 and not kept.zero_missing[2]


def test_a_trimmed_clients_far_rows_do_not_squeeze_the_codes() -> None:
    """A warm-up client sending huge values (a range-stretching poison, a unit error) is
    left out of the profile, and its values, beyond one span of the kept rows', stay out of
    the codes' range: the data keeps its 8-bit codes."""
    rng = np.random.default_rng(9)
    X = rng.normal(0.6, 0.05, size=(4000, 8))
    owners = np.repeat(np.arange(100).astype(str), 40)
    poison = rng.uniform(1e5, 1e6, size=(40, 8))
    p = fit_profile(
        np.vstack([X, poison]),
        model_id="m",
        version="v",
        owners=np.concatenate([owners, np.full(40, "poison")]),
        cells=8,
        components=4,
    )
    assert "poison" in p.left_out
    assert np.array_equal(p.low, X.min(axis=0)) and np.array_equal(p.high, X.max(axis=0))
    assert len(np.unique(p.view(X).quantized[:, 0])) > 120


def test_a_feature_constant_in_the_kept_rows_keeps_the_trimmed_rows_range() -> None:
    """Where the kept rows hold a feature constant (an image's blank border) there is no
    natural spread to squeeze: a trimmed client's values there keep setting its codes' range,
    so a later thief's moves on it stay visible."""
    rng = np.random.default_rng(10)
    X = rng.normal(0.6, 0.05, size=(4000, 8))
    X[:, 0] = 0.0
    thief = rng.uniform(0.0, 1.0, size=(40, 8))
    p = fit_profile(
        np.vstack([X, thief]),
        model_id="m",
        version="v",
        owners=np.concatenate([np.repeat(np.arange(100).astype(str), 40), np.full(40, "thief")]),
        cells=8,
        components=4,
    )
    assert "thief" in p.left_out and p.low[0] == 0.0 and p.high[0] == thief[:, 0].max()


def test_a_reference_of_few_distinct_inputs_gets_two_of_them_a_cell() -> None:
    """A warm-up whose clients resend 50 fixed inputs: 64 cells put every input at a centre
    and the out-of-profile threshold near 0, so a resend of a reference input lay beyond
    it. With two distinct inputs a cell, the reference's own inputs are in profile."""
    rng = np.random.default_rng(11)
    distinct = rng.random((50, 8))
    X = distinct[np.arange(1000) % 50]
    p = fit_profile(X, model_id="m", version="v", cells=64, components=4)
    assert p.cells == 25 and p.ood_threshold > 0.01
    assert not p.view(distinct).out_of_profile.any()
