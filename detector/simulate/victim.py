"""The victims: a small digits classifier that ships with querywatch, a tabular one, a wide
one and a two-class one, served like a real tier.

Each is trained on first use (no download, about a second) and kept in memory, so the demo
and the tests need nothing but the package. The digits victim is a logistic regression on
scikit-learn's bundled 8x8 digits; the tabular one (``load_tabular_victim``) a random
forest on a fixed synthetic risk table (16 inputs, 4 unbalanced classes, some inputs
redundant), so that detection is checked on a second domain and a second model family; the
wide one (``load_wide_victim``) a small neural network on 128 inputs (an embedding's width),
whose reference concentrates: every out-of-profile score sits near the median, so drift
crosses the 99.9th percentile far more often than on a narrow input, which the calibration
must absorb (``models.calibration.drift_share``); the two-class one (``load_binary_victim``)
gradient-boosted trees whose two scores are one probability and its complement, the
shape of most served models (fraud, churn, default). The
serving wrapper does what production tiers do to what they log: inputs are clipped to the
valid range and rounded to 3 decimals, scores are rounded to 4 decimals.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

#: Model id the simulated serving tier reports.
MODEL_ID = "digits-v1"
#: Input dimension: 8x8 grey levels scaled to [0, 1].
DIM = 64
CLASSES = 10
#: The tabular victim's model id.
TABULAR_MODEL_ID = "risk-table-v1"
#: The wide victim's model id.
WIDE_MODEL_ID = "embedding-v1"
#: The two-class victim's model id.
BINARY_MODEL_ID = "fraud-v1"
_TRAIN_FRACTION = 0.6


@dataclass(frozen=True)
class Served:
    """What the serving tier logged for a batch: the inputs as served and its answers."""

    inputs: np.ndarray  # (n, dim), clipped to [0, 1], 3 decimals
    labels: np.ndarray  # (n,) int
    scores: np.ndarray  # (n, classes), 4 decimals


class VictimModel:
    """A served model plus the natural data around it.

    ``train`` is what the model was fitted on; ``holdout`` is data it never saw (the QA
    job's fixed test set is drawn from it); ``natural`` is all of it, the pool that
    benign users and in-domain thieves draw from. ``image`` says whether inputs are pixels
    (what-if analysts then change brightness or contrast, else one or two fields).
    """

    def __init__(
        self,
        classifier: LogisticRegression | RandomForestClassifier | MLPClassifier,
        natural: np.ndarray,
        targets: np.ndarray,
        split: int,
        *,
        model_id: str = MODEL_ID,
        image: bool = True,
    ):
        self._classifier = classifier
        self.model_id = model_id
        self.image = image
        self.dim = int(natural.shape[1])
        self.classes = len(np.unique(targets))
        self.natural = natural
        self.targets = targets
        self.train = natural[:split]
        #: What the serving pipeline's imputer answers a missing value with (``serve``).
        self.train_mean = self.train.mean(axis=0)
        self.holdout = natural[split:]
        self.holdout_targets = targets[split:]

    def serve(self, inputs: np.ndarray) -> Served:
        """Answer a batch as the serving tier would, and return what it logs: a missing value
        (NaN) is answered as its feature's training mean, as a pipeline's imputer does, and
        logged as missing."""
        served = np.round(np.clip(np.asarray(inputs, dtype=np.float64).reshape(-1, self.dim), 0.0, 1.0), 3)
        if len(served) == 0:
            return Served(served, np.zeros(0, dtype=np.int64), np.zeros((0, self.classes)))
        gaps = np.isnan(served)
        answered = np.where(gaps, self.train_mean, served) if gaps.any() else served
        proba = self._classifier.predict_proba(answered)
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
    return VictimModel(classifier, natural, targets, split, model_id=MODEL_ID, image=True)


@functools.lru_cache(maxsize=1)
def load_tabular_victim(seed: int = 0) -> VictimModel:
    """Train (once per process and seed) and return the tabular victim.

    >>> victim = load_tabular_victim()
    >>> (victim.dim, victim.classes, victim.serve(victim.holdout[:2]).scores.shape)
    (16, 4, (2, 4))
    >>> victim.accuracy() > 0.8
    True
    """
    data, targets = make_classification(
        n_samples=6000,
        n_features=16,
        n_informative=6,
        n_redundant=3,
        n_classes=4,
        n_clusters_per_class=2,
        weights=[0.5, 0.25, 0.15, 0.1],
        flip_y=0.01,
        random_state=11,  # the table is fixed; ``seed`` only orders it
    )
    # One job: the simulator runs beside a detector, often on a small machine.
    classifier = RandomForestClassifier(n_estimators=60, max_depth=10, random_state=seed, n_jobs=1)
    return _table_victim(
        data, targets, data.min(axis=0), data.max(axis=0), seed, classifier, TABULAR_MODEL_ID
    )


@functools.lru_cache(maxsize=1)
def load_wide_victim(seed: int = 0) -> VictimModel:
    """Train (once per process and seed) and return the wide victim: 128 inputs, 8 classes,
    an MLP with one hidden layer.

    >>> victim = load_wide_victim()
    >>> (victim.dim, victim.classes, victim.serve(victim.holdout[:2]).scores.shape)
    (128, 8, (2, 8))
    >>> victim.accuracy() > 0.75
    True
    """
    data, targets = make_classification(
        n_samples=6000,
        n_features=128,
        n_informative=24,
        n_redundant=24,
        n_classes=8,
        n_clusters_per_class=1,
        class_sep=1.5,
        flip_y=0.01,
        random_state=7,  # the table is fixed; ``seed`` only orders it and starts the network
    )
    # Scaled by robust ranges: 128 Gaussian columns put a few rows far out on some column.
    low, high = np.percentile(data, 0.5, axis=0), np.percentile(data, 99.5, axis=0)
    classifier = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, early_stopping=True, random_state=seed)
    return _table_victim(data, targets, low, high, seed, classifier, WIDE_MODEL_ID)


@functools.lru_cache(maxsize=1)
def load_binary_victim(seed: int = 0) -> VictimModel:
    """Train (once per process and seed) and return the two-class victim: gradient-boosted
    trees on a fixed synthetic fraud table (10 inputs, one row in seven positive, each class
    in three clusters), the commonest shape of a served model (fraud, churn, default).

    >>> victim = load_binary_victim()
    >>> (victim.dim, victim.classes, victim.serve(victim.holdout[:2]).scores.shape)
    (10, 2, (2, 2))
    >>> victim.accuracy() > 0.85
    True
    """
    data, targets = make_classification(
        n_samples=6000,
        n_features=10,
        n_informative=5,
        n_redundant=2,
        n_classes=2,
        n_clusters_per_class=3,
        weights=[0.85, 0.15],
        class_sep=1.0,
        flip_y=0.01,
        random_state=23,  # the table is fixed; ``seed`` only orders it
    )
    classifier = HistGradientBoostingClassifier(max_iter=150, random_state=seed)
    return _table_victim(data, targets, data.min(axis=0), data.max(axis=0), seed, classifier, BINARY_MODEL_ID)


def _table_victim(
    data: np.ndarray,
    targets: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    seed: int,
    classifier: RandomForestClassifier | MLPClassifier | HistGradientBoostingClassifier,
    model_id: str,
) -> VictimModel:
    """A synthetic table's victim: each column scaled from ``[low, high]`` to [0.05, 0.95]
    (clipped), the rows ordered by ``seed``, ``classifier`` fitted on the first part."""
    natural = np.clip(0.05 + 0.9 * (data - low) / (high - low), 0.0, 1.0)
    order = np.random.default_rng(seed).permutation(len(natural))
    natural, targets = natural[order], targets[order]
    split = int(len(natural) * _TRAIN_FRACTION)
    classifier.fit(natural[:split], targets[:split])
    return VictimModel(classifier, natural, targets, split, model_id=model_id, image=False)


#: The simulator's victims by name (``querywatch simulate --victim``; the CLI spells the names
#: out so that ``--help`` need not import scikit-learn, and a test keeps the two the same).
VICTIMS: dict[str, Callable[[], VictimModel]] = {
    "digits": load_victim,
    "tabular": load_tabular_victim,
    "wide": load_wide_victim,
    "binary": load_binary_victim,
}
