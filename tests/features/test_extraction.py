"""The extraction estimate: a class mix moving a reference copy, and a proxy on a client's
sample against natural queries with the same answers, read off the reference's curve."""

from __future__ import annotations

import pickle

import numpy as np

from querywatch.features.extraction import ExtractionEstimate, ExtractionReference, proxy_agreement
from querywatch.models.extraction import fit_extraction
from querywatch.models.profile import ReferenceProfile, fit_profile


def _data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = rng.uniform(0.2, 0.8, size=(4, 16))
    y = rng.integers(0, 4, n)
    X = np.clip(centres[y] + rng.normal(0, 0.15, size=(n, 16)), 0, 1)
    return X, (X * 255).astype(np.uint8), y


def _reference(seed: int) -> tuple[ExtractionReference, np.ndarray, np.ndarray]:
    X, codes, y = _data(np.random.default_rng(seed), 1200)
    ref = fit_extraction(X, codes, y, 4, seed=0)
    assert ref is not None
    return ref, codes, y


def test_a_proxy_on_informative_answers_agrees_and_one_on_a_single_class_does_not() -> None:
    rng = np.random.default_rng(0)
    _, codes, y = _data(rng, 600)
    val, labels = codes[400:], y[400:].astype(np.uint8)
    good = proxy_agreement(codes[:40], y[:40].astype(np.uint8), 40, val, labels, 4)
    one = np.flatnonzero(y[:400] == 0)[:40]
    single = proxy_agreement(codes[one], y[one].astype(np.uint8), len(one), val, labels, 4)
    assert good > 0.9 and single < 0.4


def test_a_proxy_learns_its_samples_class_frequencies_where_the_inputs_say_nothing() -> None:
    # Inputs that carry no answer (a model that answers most of the space far from its data
    # with one class): a copy that keeps the frequencies answers that class, as a thief's does.
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, size=(40, 16)).astype(np.uint8)
    labels = (rng.random(40) < 0.1).astype(np.uint8)  # most of class 0 (34 of 40 here)
    val = rng.integers(0, 256, size=(500, 16)).astype(np.uint8)
    majority = np.zeros(500, dtype=np.uint8)
    assert proxy_agreement(codes, labels, 40, val, majority, 2) > 0.8


def test_the_reference_curve_rises_with_queries_and_needs_labels() -> None:
    ref, _, _ = _reference(1)
    assert ref.curve(8) <= ref.curve(100) <= ref.curve(1000) and ref.curve(1000) > 0.9
    assert ref.queries_like(ref.curve(1000)) <= 1000 and ref.queries_like(0.0) == 0.0
    X, codes, _ = _data(np.random.default_rng(1), 1200)
    assert fit_extraction(X, codes, np.full(1200, -1), 4) is None


def test_a_class_mix_unlike_the_references_teaches_less_and_a_missing_class_is_never_learned() -> None:
    ref, codes, y = _reference(2)
    natural = np.round(ref.prior * 1000).astype(np.uint32)
    skewed = np.array([970, 10, 10, 10], dtype=np.uint32)
    three = np.array([334, 333, 333, 0], dtype=np.uint32)
    assert ref.shifted_agreement(natural) >= 0.9 and abs(ref.mix_size(natural) - 1.0) < 0.05
    assert ref.mix_size(skewed) < 0.5 * ref.mix_size(natural)
    assert ref.shifted_agreement(three) <= 0.75 + 1e-9  # the fourth class's inputs all missed

    def refreshed(counts: np.ndarray) -> float:
        estimate = ExtractionEstimate()
        estimate.refresh(codes[:40], y[:40].astype(np.uint8), 40, ref, counts)
        return estimate.value(100, ref, counts)

    assert refreshed(skewed) < refreshed(natural)
    assert ExtractionEstimate().value(20, ref, natural) < ExtractionEstimate().value(1000, ref, natural)


def test_the_ratio_compares_inputs_with_natural_ones_of_the_same_answers() -> None:
    ref, codes, y = _reference(3)
    mix = np.bincount(y, minlength=5).astype(np.uint32)
    one = np.flatnonzero(y == 1)[:40]
    single_class = ExtractionEstimate()
    single_class.refresh(codes[one], y[one].astype(np.uint8), 40, ref, mix)
    assert single_class.ratio > 0.8  # natural inputs: one class is the mix's loss, not theirs
    noise = ExtractionEstimate()
    rng = np.random.default_rng(4)
    noise.refresh(rng.integers(0, 256, size=(40, 16), dtype=np.uint8), y[:40].astype(np.uint8), 40, ref, mix)
    assert noise.ratio < 0.6
    assert noise.value(1000, ref, mix) < single_class.value(1000, ref, mix) <= 1.0
    copy = ExtractionEstimate()
    copy.set_state(pickle.loads(pickle.dumps(noise.get_state())))
    assert copy.value(1000, ref, mix) == noise.value(1000, ref, mix)
    copy.set_state(noise.get_state()[:2])  # stored before the class mix: taken from the counts
    assert abs(copy.value(1000, ref, mix) - noise.value(1000, ref, mix)) < 0.02


def test_refreshes_come_at_doublings_once_the_sample_is_full() -> None:
    e = ExtractionEstimate()
    assert [n for n in range(1, 600) if e.due(n)] == [64, 128, 256, 512]


def test_answers_on_the_boundary_beyond_natural_ones_forgive_the_small_proxys_deficit() -> None:
    ref, _, y = _reference(5)
    poor = ExtractionEstimate()
    poor.ratio = 0.3
    mix = np.bincount(y, minlength=5).astype(np.uint32)
    plain = poor.value(500, ref, mix)
    assert poor.value(500, ref, mix, boundary_share=0.05) == plain  # as natural as the reference
    assert (
        plain < poor.value(500, ref, mix, boundary_share=0.4) < poor.value(500, ref, mix, boundary_share=1.0)
    )
    assert poor.value(500, ref, mix, boundary_share=1.0) == ExtractionEstimate().value(500, ref, mix)


def test_a_profile_keeps_its_extraction_reference_through_storage() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(600, 8))
    labels = [int(c) for c in (X[:, 0] > 0) + (X[:, 1] > 0)]
    profile = fit_profile(X, model_id="m", version="1", cells=4, labels=labels)
    assert profile.extraction is not None
    loaded = ReferenceProfile.from_bytes(profile.to_bytes()).extraction
    assert loaded is not None
    counts = np.array([200, 200, 0], dtype=np.uint32)
    estimate = ExtractionEstimate()
    assert estimate.value(600, loaded, counts) == estimate.value(600, profile.extraction, counts)
    assert np.array_equal(loaded.pool_codes, profile.extraction.pool_codes)


def test_the_validation_set_keeps_classes_that_lie_away_from_the_centre() -> None:
    # A model whose second class is the data's outer shell (an anomaly or fraud score): half
    # of the inputs each. Its validation set must hold both halves as the reference does; the
    # inputs nearest the data's centre are nearly all of the first.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6))
    outer = (np.einsum("ij,ij->i", X, X) > 5.35).astype(int)  # the chi-square(6) median
    profile = fit_profile(X, model_id="m", version="v", labels=outer.tolist(), cells=8, components=4)
    assert profile.extraction is not None
    shell = float(np.mean(profile.extraction.labels == profile.classes.index("1")))
    assert 0.4 < shell < 0.6
