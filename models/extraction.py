"""The reference side of the extraction estimate (``features.extraction``): a labelled
validation set and the learning curve of natural queries, fitted once per profile."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import RidgeClassifier

from querywatch.features.extraction import MIN_SAMPLE, ExtractionReference, proxy_agreement

#: Reference inputs kept as the validation set (8-bit codes), at most.
VALIDATION_SIZE = 400
#: The learning curve is measured up to this many training queries (a profile fit stays well
#: under a second), and is flat beyond.
CURVE_LIMIT = 2048


def fit_extraction(
    X: NDArray[np.float64],
    codes: NDArray[np.uint8],
    labels: NDArray[np.int64],
    classes: int,
    *,
    scores: NDArray[np.float64] | None = None,
    seed: int = 0,
) -> ExtractionReference | None:
    """Validation set and learning curve from reference inputs ``X`` (their 8-bit ``codes``)
    labelled by the model (class indices ``labels``, -1 where unknown). None when there are
    too few labelled inputs or fewer than two classes.

    The curve is the agreement with the model, on the validation set, of a linear copy
    trained on ``n`` reference queries, for ``n`` doubling from 8 to all of them (at most
    ``CURVE_LIMIT``); beyond that it stays flat.
    """
    known = np.flatnonzero(labels >= 0)
    if len(known) < 4 * MIN_SAMPLE or len(np.unique(labels[known])) < 2 or classes > 255:
        return None
    rng = np.random.default_rng(seed)
    # Validation on typical inputs (out-of-profile score at most the median): what "agreement
    # with the model" means for natural data, not for the reference's noisiest queries.
    typical = known if scores is None else known[scores[known] <= np.median(scores[known])]
    n_val = min(VALIDATION_SIZE, len(typical) // 2)
    val = rng.choice(typical, n_val, replace=False)
    train = rng.permutation(np.setdiff1d(known, val))
    ns, agreement = [], []
    n = 8
    while True:
        size = min(n, len(train), CURVE_LIMIT)
        repeats = 3 if size < 64 else 1
        runs = [
            _copy_agreement(X, labels, rng.choice(train, size, replace=False), val) for _ in range(repeats)
        ]
        ns.append(float(size))
        agreement.append(float(np.mean(runs)))
        if size == len(train) or size == CURVE_LIMIT:
            break
        n *= 2
    proxy = [
        proxy_agreement(
            codes[s],
            labels[s].astype(np.uint8),
            MIN_SAMPLE,
            codes[val],
            labels[val].astype(np.uint8),
            classes,
        )
        for s in (rng.choice(train, MIN_SAMPLE, replace=False) for _ in range(10))
    ]
    return ExtractionReference(
        codes=np.ascontiguousarray(codes[val]),
        labels=labels[val].astype(np.uint8),
        classes=classes,
        curve_n=np.array(ns),
        curve_agreement=np.maximum.accumulate(np.array(agreement)),
        proxy_agreement=float(np.mean(proxy)),
    )


def _copy_agreement(
    X: NDArray[np.float64], y: NDArray[np.int64], train: NDArray[np.int64], val: NDArray[np.int64]
) -> float:
    seen = np.unique(y[train])
    if len(seen) < 2:
        return float(np.mean(y[val] == seen[0]))
    # A linear copy in closed form (ridge on one-hot answers): milliseconds per fit, where a
    # logistic regression took seconds, and within a few points of it.
    model = RidgeClassifier(alpha=1.0).fit(X[train], y[train])
    return float(np.mean(model.predict(X[val]) == y[val]))
