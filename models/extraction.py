"""The reference side of the extraction estimate (``features.extraction``): a labelled
validation set, the learning curve of natural queries, a linear copy's log-probabilities on
the validation set and a pool of natural queries, fitted once per profile."""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from querywatch.features.extraction import MIN_SAMPLE, ExtractionReference

#: Reference inputs kept as the validation set (8-bit codes), at most; as many again, at
#: most, as the pool of natural queries.
VALIDATION_SIZE = 400
#: The learning curve is measured up to this many training queries (a profile fit stays well
#: under a second), and is flat beyond; the reference copy is fitted on as many.
CURVE_LIMIT = 2048
#: Copies trained (each on its own draw of ``n`` queries) per point of the learning curve.
CURVE_DRAWS = 3
#: Inverse regularization of the linear copies: weak, since a copy is fitted to reproduce
#: the model's answers as closely as it can, not to generalise past label noise (the answers
#: have none). A strongly regularized copy has soft log-odds, which a class mix moves more
#: than it moves a copy that fits its answers (10 and 100 give the same figures on the bench).
COPY_C = 100.0


def fit_extraction(
    X: NDArray[np.float64],
    codes: NDArray[np.uint8],
    labels: NDArray[np.int64],
    classes: int,
    *,
    typical: NDArray[np.bool_] | None = None,
    natural: NDArray[np.uint8] | None = None,
    seed: int = 0,
) -> ExtractionReference | None:
    """The extraction reference from reference inputs ``X`` (their 8-bit ``codes``) labelled
    by the model (class indices ``labels``, -1 where unknown). None when there are too few
    labelled inputs or fewer than two classes.

    The curve is the agreement with the model, on the validation set, of a linear copy
    trained on ``n`` reference queries, for ``n`` doubling from 8 to all of them (at most
    ``CURVE_LIMIT``); beyond that it stays flat. The reference copy (a multinomial logistic
    regression: a probabilistic copy, whose log-odds a class mix moves) is fitted on the
    inputs outside the validation set.

    The validation set is drawn from the ``typical`` inputs (the profile's in-profile ones)
    when at least half are, else from all: any region of the data, not its densest part
    (the half of the inputs nearest the data's centre held 16% of the class that a model of
    outer-shell anomalies gives half of them, and on such a model the bench's generator had
    the estimate off by 0.21). Each point of the curve averages three copies: with one,
    the draw's noise moved every client's estimate of a model together.

    ``natural`` (8-bit codes of the model's own data, when the inputs are another
    population's: a trusted file without labels, answered by live traffic,
    ``models.profile.with_extraction``) makes the validation set stand for that data: it is
    drawn, with replacement, from each natural row's nearest candidate (scikit-learn's
    ``NearestNeighbors`` on the codes, so every input counts in its own range).
    """
    known = np.flatnonzero(labels >= 0)
    if len(known) < 4 * MIN_SAMPLE or len(np.unique(labels[known])) < 2 or classes > 255:
        return None
    # One thread: a dozen small fits gain nothing from threads, which spin on cores others
    # need (measured on a digits-sized reference: 0.17 s of CPU, against 2.6 s with two).
    with threadpool_limits(limits=1):
        return _fit(X, codes, labels, known, classes, typical, natural, seed)


def _fit(
    X: NDArray[np.float64],
    codes: NDArray[np.uint8],
    labels: NDArray[np.int64],
    known: NDArray[np.int64],
    classes: int,
    typical: NDArray[np.bool_] | None,
    natural: NDArray[np.uint8] | None,
    seed: int,
) -> ExtractionReference:
    rng = np.random.default_rng(seed)
    # Validation on typical inputs: what "agreement with the model" means for natural data,
    # not for the reference's queries out of profile.
    candidates = known if typical is None or typical[known].sum() < len(known) // 2 else known[typical[known]]
    n_val = min(VALIDATION_SIZE, len(candidates) // 2)
    if natural is None or not len(natural):
        val = rng.choice(candidates, n_val, replace=False)
    else:
        nearest = NearestNeighbors(n_neighbors=1).fit(codes[candidates])
        matched = nearest.kneighbors(natural, return_distance=False)[:, 0]
        matches = np.bincount(matched, minlength=len(candidates))
        val = rng.choice(candidates, n_val, replace=True, p=matches / matches.sum())
    train = rng.permutation(np.setdiff1d(known, val))
    # The reference copy is the curve's last point: trained on all the inputs outside the
    # validation set (at most CURVE_LIMIT of them, in random order).
    fitted = train[:CURVE_LIMIT]
    log_proba = _copy_log_proba(X[fitted], labels[fitted], X[val], classes)
    ns, agreement = [], []
    n = 8
    while n < len(fitted):
        draws = [rng.choice(train, n, replace=False) for _ in range(CURVE_DRAWS)]
        runs = [_copy_agreement(X, labels, drawn, val) for drawn in draws]
        ns.append(float(n))
        agreement.append(float(np.mean(runs)))
        n *= 2
    ns.append(float(len(fitted)))
    agreement.append(float(np.mean(np.argmax(log_proba, axis=1) == labels[val])))
    pool = train[:VALIDATION_SIZE]
    prior = np.bincount(labels[fitted], minlength=classes)[:classes] / len(fitted)
    return ExtractionReference(
        codes=np.ascontiguousarray(codes[val]),
        labels=labels[val].astype(np.uint8),
        classes=classes,
        curve_n=np.array(ns),
        curve_agreement=np.maximum.accumulate(np.array(agreement)),
        log_proba=log_proba,
        prior=prior,
        pool_codes=np.ascontiguousarray(codes[pool]),
        pool_labels=labels[pool].astype(np.uint8),
    )


def _copy_agreement(
    X: NDArray[np.float64], y: NDArray[np.int64], train: NDArray[np.int64], val: NDArray[np.int64]
) -> float:
    return float(
        np.mean(np.argmax(_copy_log_proba(X[train], y[train], X[val], int(y.max()) + 1), axis=1) == y[val])
    )


def _copy_log_proba(
    X: NDArray[np.float64], y: NDArray[np.int64], X_val: NDArray[np.float64], classes: int
) -> NDArray[np.float32]:
    """Log-probabilities on ``X_val`` of a linear copy (multinomial logistic regression)
    trained on ``X``, ``y``; -inf for the classes it never saw (so never predicted)."""
    out = np.full((len(X_val), classes), -np.inf, dtype=np.float32)
    seen = np.unique(y)
    if len(seen) < 2:
        out[:, seen[0]] = 0.0
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The curve's first points train on 8, 16, ... queries: with many classes, more than
        # half of them distinct, which scikit-learn takes for a regression target and says so.
        warnings.filterwarnings("ignore", "The number of unique classes", UserWarning)
        model = LogisticRegression(C=COPY_C, max_iter=200).fit(X, y)
    # A log-softmax of the decision function, not the log of predict_proba: a copy trained on a
    # few separable queries answers with probabilities that round to 0, whose log is -inf.
    scores = model.decision_function(X_val)
    if scores.ndim == 1:  # two classes: the second's log-odds, as a softmax of -d/2 and d/2
        scores = np.column_stack([-scores, scores]) / 2.0
    out[:, model.classes_] = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
    return out
