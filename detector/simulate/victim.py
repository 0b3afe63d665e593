"""The victim: a small digits classifier that ships with querywatch, served like a real tier.

It is trained on first use from scikit-learn's bundled digits data (no download, well under
a second) and kept in memory, so the demo and the tests need nothing but the package. The
serving wrapper does what production tiers do to what they log: inputs are clipped to the
valid range and rounded to 3 decimals, scores are rounded to 4 decimals.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

#: Model id the simulated serving tier reports.
MODEL_ID = "digits-v1"
#: Input dimension: 8x8 grey levels scaled to [0, 1].
DIM = 64
CLASSES = 10
_TRAIN_FRACTION = 0.6


@dataclass(frozen=True)
class Served:
    """What the serving tier logged for a batch: the inputs as served and its answers."""

    inputs: np.ndarray  # (n, 64), clipped to [0, 1], 3 decimals
    labels: np.ndarray  # (n,) int
    scores: np.ndarray  # (n, 10), 4 decimals


class VictimModel:
    """The served digits model plus the natural data around it.

    ``train`` is what the model was fitted on; ``holdout`` is data it never saw (the QA
    job's fixed test set is drawn from it); ``natural`` is all of it, the pool that
    benign users and in-domain thieves draw from.
    """

    def __init__(self, classifier: LogisticRegression, natural: np.ndarray, targets: np.ndarray, split: int):
        self._classifier = classifier
        self.natural = natural
        self.targets = targets
        self.train = natural[:split]
        self.holdout = natural[split:]
        self.holdout_targets = targets[split:]

    def serve(self, inputs: np.ndarray) -> Served:
        """Answer a batch as the serving tier would, and return what it logs."""
        served = np.round(np.clip(np.asarray(inputs, dtype=np.float64).reshape(-1, DIM), 0.0, 1.0), 3)
        if len(served) == 0:
            return Served(served, np.zeros(0, dtype=np.int64), np.zeros((0, CLASSES)))
        proba = self._classifier.predict_proba(served)
        return Served(served, proba.argmax(axis=1), np.round(proba, 4))

    def labels(self, inputs: np.ndarray) -> np.ndarray:
        """Only the predicted labels (what a label-only API would return)."""
        return self.serve(inputs).labels

    def accuracy(self) -> float:
        """Accuracy on the held-out part, as a sanity figure."""
        return float(np.mean(self.labels(self.holdout) == self.holdout_targets))


@functools.lru_cache(maxsize=1)
def load_victim(seed: int = 0) -> VictimModel:
    """Train (once per process and seed) and return the victim model.

    >>> victim = load_victim()
    >>> victim.serve(victim.holdout[:2]).scores.shape
    (2, 10)
    >>> victim.accuracy() > 0.9
    True
    """
    data, targets = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(data))
    natural = data[order] / 16.0
    targets = targets[order]
    split = int(len(natural) * _TRAIN_FRACTION)
    classifier = LogisticRegression(max_iter=2000, C=1.0)
    classifier.fit(natural[:split], targets[:split])
    return VictimModel(classifier, natural, targets, split)
