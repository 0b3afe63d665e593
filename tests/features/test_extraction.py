"""The extraction estimate: a linear proxy on a client's sample against the reference's curve."""

from __future__ import annotations

import pickle

import numpy as np

from querywatch.features.extraction import ExtractionEstimate, ExtractionReference, proxy_agreement
from querywatch.models.extraction import fit_extraction


def _data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centres = rng.uniform(0.2, 0.8, size=(4, 16))
    y = rng.integers(0, 4, n)
    X = np.clip(centres[y] + rng.normal(0, 0.05, size=(n, 16)), 0, 1)
    return X, (X * 255).astype(np.uint8), y


def test_a_proxy_on_informative_answers_agrees_and_one_on_a_single_class_does_not() -> None:
    rng = np.random.default_rng(0)
    _, codes, y = _data(rng, 600)
    val, labels = codes[400:], y[400:].astype(np.uint8)
    good = proxy_agreement(codes[:40], y[:40].astype(np.uint8), 40, val, labels, 4)
    one = np.flatnonzero(y[:400] == 0)[:40]
    single = proxy_agreement(codes[one], y[one].astype(np.uint8), len(one), val, labels, 4)
    assert good > 0.9 and single < 0.4


def test_the_reference_curve_rises_with_queries_and_needs_labels() -> None:
    rng = np.random.default_rng(1)
    X, codes, y = _data(rng, 1200)
    ref = fit_extraction(X, codes, y, 4, seed=0)
    assert ref is not None
    assert ref.curve(8) <= ref.curve(100) <= ref.curve(1000) and ref.curve(1000) > 0.9
    assert fit_extraction(X, codes, np.full(1200, -1), 4) is None


def test_the_estimate_scales_the_curve_by_how_useful_the_client_queries_are() -> None:
    rng = np.random.default_rng(2)
    X, codes, y = _data(rng, 1200)
    ref = fit_extraction(X, codes, y, 4, seed=0)
    assert ref is not None
    natural, skewed = ExtractionEstimate(), ExtractionEstimate()
    natural.refresh(codes[:40], y[:40].astype(np.uint8), 40, ref)
    one = np.flatnonzero(y == 1)[:40]
    skewed.refresh(codes[one], y[one].astype(np.uint8), 40, ref)
    assert skewed.value(500, ref) < natural.value(500, ref) <= 1.0
    copy = ExtractionEstimate()
    copy.set_state(pickle.loads(pickle.dumps(skewed.get_state())))
    assert copy.value(500, ref) == skewed.value(500, ref)


def test_refreshes_come_at_doublings_once_the_sample_is_full() -> None:
    e = ExtractionEstimate()
    assert [n for n in range(1, 600) if e.due(n)] == [64, 128, 256, 512]
    assert isinstance(ExtractionReference, type)


def test_answers_on_the_boundary_beyond_natural_ones_forgive_the_small_proxys_deficit() -> None:
    rng = np.random.default_rng(3)
    X, codes, y = _data(rng, 1200)
    ref = fit_extraction(X, codes, y, 4, seed=0)
    assert ref is not None
    one = np.flatnonzero(y == 1)[:40]
    skewed = ExtractionEstimate()
    skewed.refresh(codes[one], y[one].astype(np.uint8), 40, ref)
    plain = skewed.value(500, ref)
    assert skewed.value(500, ref, boundary_share=0.05) == plain  # as natural as the reference
    assert plain < skewed.value(500, ref, boundary_share=0.4) < skewed.value(500, ref, boundary_share=1.0)
    assert skewed.value(500, ref, boundary_share=1.0) == ref.curve(500)
