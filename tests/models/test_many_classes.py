"""Models with many classes: every class named up to what a byte holds, the most frequent
kept beyond it, and an extraction reference over all of them."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_classification

from querywatch.models.profile import MAX_CLASSES, class_table, fit_profile


def test_a_hundred_class_model_names_every_class_and_estimates_over_all_of_them() -> None:
    X, y = make_classification(
        n_samples=4000,
        n_features=40,
        n_informative=30,
        n_redundant=0,
        n_classes=100,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    labels = [int(c) for c in y]
    # Warnings are errors here: the curve's first fits (8 queries of 100 classes) must not warn.
    profile = fit_profile(X, model_id="m", version="v", labels=labels, cells=16, components=8)
    assert len(profile.classes) == 100 and set(profile.classes) == {str(c) for c in range(100)}
    assert profile.extraction is not None and profile.extraction.classes == 100
    # No answer falls in the slot of classes the reference never answered.
    assert profile.class_prior[-1] < 0.5 / len(y) * 1.01


def test_beyond_a_byte_of_classes_the_most_frequent_are_kept() -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 50, size=300)
    labels: list[object] = [f"class-{c}" for c, n in enumerate(counts) for _ in range(n)]
    names, prior = class_table(labels, np.ones(len(labels), dtype=bool))
    kept = {f"class-{c}" for c in np.argsort(-counts, kind="stable")[:MAX_CLASSES]}
    assert len(names) == MAX_CLASSES and list(names) == sorted(names)
    assert min(counts[int(n.split("-")[1])] for n in names) >= max(
        counts[c] for c in range(300) if f"class-{c}" not in kept
    )
    assert len(prior) == MAX_CLASSES + 1 and abs(prior.sum() - 1.0) < 1e-12
