"""Population model: how unusual a client's whole feature vector is among reference clients.

river's HalfSpaceTrees over client feature vectors, with fixed feature limits taken from
quantiles of the reference clients (a min-max scaler learned online is poisoned by one
spike), trained once on the reference clients and then frozen: it never learns from live
clients, so a flagged (or not yet flagged) thief cannot teach it that theft is normal, and
every consumer of a model scores identically. HalfSpaceTrees scores are not calibrated;
``percentile`` reports where a score falls among the reference clients' own scores.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray
from river.anomaly import HalfSpaceTrees

#: The feature names the population model looks at (scale-free client features).
POPULATION_FEATURES = (
    "coverage_ratio",
    "cell_divergence",
    "ood_share",
    "near_duplicate_share",
    "step_share",
    "class_divergence",
    "boundary_share",
    "output_entropy",
    "burstiness",
)


class PopulationModel:
    """Frozen HalfSpaceTrees over client feature vectors, with calibrated percentiles.

    >>> rng = np.random.default_rng(0)
    >>> ref = [dict(zip(POPULATION_FEATURES, v)) for v in rng.uniform(0, 0.2, size=(300, 9))]
    >>> model = PopulationModel(seed=1).fit(ref)
    >>> odd = dict.fromkeys(POPULATION_FEATURES, 0.9)
    >>> model.percentile(odd) > model.percentile(ref[0])
    True
    """

    def __init__(self, n_trees: int = 15, height: int = 8, seed: int = 0) -> None:
        if n_trees < 1 or height < 1:
            raise ValueError("n_trees and height must be >= 1")
        self.n_trees = n_trees
        self.height = height
        self.seed = seed
        self._trees: HalfSpaceTrees | None = None
        self._reference_scores: NDArray[np.float64] = np.zeros(0)

    def fit(self, vectors: Sequence[Mapping[str, float]]) -> PopulationModel:
        """Learn the reference clients' vectors (at least 10), then freeze."""
        if len(vectors) < 10:
            raise ValueError("the population model needs at least 10 reference clients")
        X = np.array([[float(v.get(k, 0.0)) for k in POPULATION_FEATURES] for v in vectors])
        low, high = np.quantile(X, 0.01, axis=0), np.quantile(X, 0.99, axis=0)
        span = np.maximum(high - low, 1e-6)
        limits: dict[Hashable, tuple[float, float]] = {
            k: (float(lo - 0.1 * s), float(hi + 0.1 * s))
            for k, lo, hi, s in zip(POPULATION_FEATURES, low, high, span, strict=True)
        }
        trees = HalfSpaceTrees(
            n_trees=self.n_trees, height=self.height, window_size=len(vectors), limits=limits, seed=self.seed
        )
        rows = [self._row(v) for v in vectors]
        for _ in range(2):  # the first window only fills the reference mass; the second makes it current
            for row in rows:
                trees.learn_one(row)  # type: ignore[no-untyped-call]
        self._trees = trees
        self._reference_scores = np.sort([trees.score_one(row) for row in rows])  # type: ignore[no-untyped-call]
        return self

    @staticmethod
    def _row(vector: Mapping[str, float]) -> dict[str, float]:
        return {k: float(vector.get(k, 0.0)) for k in POPULATION_FEATURES}

    def score_one(self, vector: Mapping[str, float]) -> float:
        """Raw HalfSpaceTrees anomaly score (high = unusual); 0 before ``fit``. Never learns."""
        if self._trees is None:
            return 0.0
        return float(self._trees.score_one(self._row(vector)))  # type: ignore[no-untyped-call]

    def learn_one(self, vector: Mapping[str, float]) -> None:
        """Frozen by design: live clients are never learned (see the module docstring)."""

    def percentile(self, vector: Mapping[str, float]) -> float:
        """Share of reference clients scoring lower than ``vector`` (0 before ``fit``)."""
        if not len(self._reference_scores):
            return 0.0
        return float(
            np.searchsorted(self._reference_scores, self.score_one(vector), side="left")
            / len(self._reference_scores)
        )
