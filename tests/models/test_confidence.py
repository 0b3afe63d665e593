"""The confidence test: each answer's rank among the reference's margins, and its mean."""

from __future__ import annotations

import numpy as np

from querywatch.features.client import ClientFeatures, Indicators, ProfileLimits
from querywatch.features.direction import move_and_shared
from querywatch.models.calibration import Calibration, calibrate
from querywatch.models.evidence import ClientEvidence, EvidenceTests, evidence_threshold
from querywatch.models.profile import fit_profile
from querywatch.models.refresh import Refresh, Window, refresh_profile
from querywatch.models.registry import EVIDENCE_TESTS
from querywatch.models.steps import record_limits
from tests.features.test_features import bisection_then_probes


def _reference(
    rng: np.random.Generator, n: int = 4000, owners: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Calibration]:
    """Scores, margins and classes of a reference whose class 1 answers less confidently
    than class 0, and its calibration."""
    scores = rng.gamma(4.0, size=n)
    classes = rng.integers(0, 2, n)
    margins = np.where(classes == 1, rng.beta(2.0, 3.0, n), rng.beta(3.0, 1.5, n))
    cal = calibrate(
        scores,
        float(np.quantile(scores, 0.999)),
        rng.integers(0, 8, n),
        owners=owners,
        margins=margins,
        margin_threshold=float(np.quantile(margins, 0.05)),
        classes=classes,
    )
    return scores, margins, classes, cal


def _evidence(cal: Calibration, scores: np.ndarray, margins: np.ndarray, classes: np.ndarray) -> float:
    """The confidence statistic of one client that got these answers."""
    ranks, means = cal.margin_ranks(scores, margins, classes)
    evidence = ClientEvidence(EvidenceTests(EVIDENCE_TESTS.nulls(cal)))
    for rank, mean in zip(ranks.tolist(), means.tolist(), strict=True):
        evidence.update(Indicators(False, False, False, False, False, 0.05, rank, mean))
    return evidence.statistics()["confidence"]


def test_ranks_are_uniform_on_the_reference_whatever_its_margins_look_like() -> None:
    """Saturated answers (many margins of exactly 1) and margins in steps rank at 1/2 on
    average, through mid-ranks of their ties: the test's null means the same on any model."""
    rng = np.random.default_rng(0)
    scores = rng.gamma(4.0, size=3000)
    for margins in (
        np.where(rng.random(3000) < 0.6, 1.0, rng.uniform(size=3000)),
        rng.integers(0, 16, 3000) / 15,
    ):
        cal = calibrate(scores, float(np.quantile(scores, 0.999)), rng.integers(0, 8, 3000), margins=margins)
        ranks, means = cal.margin_ranks(scores, margins, np.full(3000, -1))
        assert abs(float(ranks.mean()) - 0.5) < 0.02 and set(means.tolist()) == {0.5}
    assert np.isnan(cal.margin_ranks(scores[:2], np.array([np.nan, 0.5]), np.zeros(2, int))[0][0])


def test_a_sampler_builds_evidence_and_a_client_of_the_hard_class_does_not() -> None:
    """A client asking only about the class the model answers least confidently gets low
    ranks by the class alone, and says nothing by it; one that picks the least confident
    answers of either class, half its queries, does."""
    rng = np.random.default_rng(1)
    scores, margins, classes, cal = _reference(rng)
    assert cal.rank_class_means[1] < 0.4 < 0.6 < cal.rank_class_means[0]
    assert 0.0 < cal.rank_shift < 0.25
    hard = np.flatnonzero(classes == 1)[:1500]
    benign = _evidence(cal, scores[hard], margins[hard], classes[hard])
    uncertain = np.argsort(margins)[: len(margins) // 4]
    picks = np.where(
        np.arange(1500) % 2 == 0, rng.choice(uncertain, 1500), rng.integers(0, len(margins), 1500)
    )
    thief = _evidence(cal, scores[picks], margins[picks], classes[picks])
    assert benign < evidence_threshold(1e-4) / 4 < evidence_threshold(1e-4) < thief


def test_uncertainty_samplers_in_a_warm_up_do_not_widen_the_tolerance() -> None:
    """Eight of 128 warm-up clients pick the least confident answers: left out of the warm-up's
    clients (a forward search, as for the boundary multiple), they do not set the shift that
    would hide the next one."""
    owners = np.repeat(np.arange(128), 40)
    rng = np.random.default_rng(2)
    scores, margins, classes, clean = _reference(rng, len(owners), owners)
    samplers = owners >= 120
    margins = margins.copy()
    margins[samplers] = rng.uniform(0.0, 0.15, samplers.sum())
    poisoned = calibrate(
        scores,
        float(np.quantile(scores, 0.999)),
        rng.integers(0, 8, len(owners)),
        owners=owners,
        margins=margins,
        margin_threshold=float(np.quantile(margins, 0.05)),
        classes=classes,
    )
    assert poisoned.rank_shift <= clean.rank_shift + 0.02


def _features(dim: int, record_shared: float = np.inf) -> ClientFeatures:
    cells = np.full(4, 0.25)
    n = np.arange(1, 20001)[:, None]
    return ClientFeatures(
        dim=dim,
        cell_prob=cells,
        expected_cells=(1 - (1 - cells[None, :]) ** n).sum(axis=1),
        class_prior=np.full(3, 1 / 3),
        limits=ProfileLimits(0.05, record_shared=record_shared),
        seed=1,
    )


def test_answers_beyond_the_profile_get_no_rank() -> None:
    """Out of profile the reference cannot say how confident answers are; the out-of-profile
    tests judge those queries. An answer with a rank in profile carries it."""
    f = _features(4)
    codes = np.array([[10, 200, 30, 90], [250, 20, 180, 5]], dtype=np.uint8)
    inside = f.update(0.0, 0, False, False, codes[0], 1, 0, 0.3, 0.5, 0.05, 0.2, 0.5)
    beyond = f.update(1.0, 1, True, False, codes[1], 2, 0, 0.3, 0.5, 0.05, 0.2, 0.5)
    assert (inside.margin_rank, beyond.margin_rank) == (0.2, None)


def test_an_explainers_coalitions_of_one_record_count_as_the_record() -> None:
    """KernelSHAP's samples keep part of one record's features and take the rest from other
    records: each shares more values with the one before than two records ever do
    (``record_limits`` of the reference), so its answer is the record's and gets no rank.
    Records of their own, however unsure their answers, each get theirs."""
    rng = np.random.default_rng(5)
    reference = rng.integers(0, 256, size=(3000, 64)).astype(np.uint8)
    limit = record_limits(reference).shared
    assert 0 < limit < 8
    record = reference[0]
    coalitions = np.where(rng.random((40, 64)) < 0.5, record, reference[1:41])
    for queries, ranked in ((coalitions, 1), (reference[100:140], 40)):
        f = _features(64, limit)
        ranks = [
            f.update(float(i), 0, False, False, q, i, 0, 0.3, 0.5, 0.05, 0.1, 0.5).margin_rank
            for i, q in enumerate(queries)
        ]
        assert sum(r is not None for r in ranks) == ranked


def test_a_probers_probes_after_its_line_search_keep_their_ranks() -> None:
    """A decision-based prober bisects a segment down to the boundary, then probes around the
    point it found: each probe holds most of the one before's values, but it is searched
    for, not a part of one record, and its answer keeps its rank."""
    codes = bisection_then_probes(np.random.default_rng(4), spread=1)
    assert all(move_and_shared(p, q)[1] > 2 for p, q in zip(codes[-15:], codes[-16:-1], strict=True))

    def ranked(queries: np.ndarray, limit: float) -> list[bool]:
        f = _features(8, limit)
        return [
            f.update(float(i), 0, False, False, c, i, 0, 0.01, 0.9, 0.05, 0.1, 0.5).margin_rank is not None
            for i, c in enumerate(queries)
        ]

    # The engine's other discounts (a probe along the search's line) are the same either way.
    assert ranked(codes, 2) == ranked(codes, np.inf) and sum(ranked(codes, 2)[-15:]) >= 5
    # The same probes without the search before them are parts of one record.
    assert sum(ranked(codes[-15:], 2)) == 1


def test_a_calibration_stored_before_ranks_loads_with_a_silent_test() -> None:
    """A profile stored before the rank tables has none: every answer is unranked, and the
    test's tolerance is its default."""
    rng = np.random.default_rng(3)
    _, _, _, cal = _reference(rng, 2000)
    old = {k: v for k, v in cal.as_dict().items() if not k.startswith("rank_")}
    restored = Calibration.from_dict(old)
    assert not restored.rank_margins and EVIDENCE_TESTS.nulls(restored)["confidence"] == 0.1
    assert np.isnan(restored.margin_ranks(np.ones(3), np.full(3, 0.5), np.zeros(3, int))[0]).all()
    assert Calibration.from_dict(cal.as_dict()) == cal


def test_a_refresh_follows_less_confident_answers_and_never_gets_stricter() -> None:
    """A population moving where the model is less sure lowers every client's ranks: a refresh
    on drift in the answers takes the tables down to the sample's. A sample of surer answers
    leaves them as they are (a refresh is no place to get stricter)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 6))
    profile = fit_profile(
        X, model_id="m", version="v", margins=rng.beta(3.0, 1.5, 3000), cells=8, components=3
    )
    assert profile.calibration is not None and profile.calibration.rank_margins
    owners = np.repeat(np.arange(100), 30)

    def window(margins: np.ndarray, baseline: Window | None, at: float) -> Refresh:
        return refresh_profile(
            profile, rng.normal(size=(3000, 6)), owners, margins=margins, baseline=baseline, at=at, alpha=1e-4
        )

    first = window(rng.beta(3.0, 1.5, 3000), None, 0.0)
    unsure = window(rng.beta(2.0, 2.0, 3000), first.window, 1.0).profile
    assert unsure is not None and unsure.refresh_reason is not None
    assert unsure.refresh_reason.startswith("drift in the answers")
    assert unsure.calibration is not None
    old, new = (np.array(c.rank_margins) for c in (profile.calibration, unsure.calibration))
    assert (new <= old).all() and new.mean() < old.mean() - 0.05
    surer = window(rng.beta(6.0, 1.0, 3000), first.window, 2.0).profile
    assert surer is None or surer.calibration.rank_margins == profile.calibration.rank_margins
