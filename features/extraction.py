"""How much of the model a client already has: an online extraction estimate.

Kesarwani et al. (2017) monitor a user's *learning rate*: train a proxy on the user's
queries and the model's answers, and measure its agreement with the model on a validation
set. Done literally per client that costs a model fit per refresh. Here it costs microseconds,
from what the client state keeps anyway (its class counts and reservoir) and what the
reference (``models.extraction``) fits once per profile: a labelled validation set (reference
inputs with the model's own answers), the *learning curve* of natural queries (the agreement a
linear copy trained on ``n`` of them reaches), a linear copy fitted on the reference's other
inputs with its log-probabilities on the validation set, and a pool of those other inputs.

Two things keep a copy short of the curve at the client's number of distinct queries:

* **What its answers cover** (the class mix, from the client's class counts): a copy trained
  on queries of mix ``q`` is the reference copy with its log-odds moved by ``log(q_c /
  prior_c)`` (the prior-shift rule of Saerens et al. 2002: a class never answered is never
  predicted; an over-sent one is predicted too often), and it has seen ``n q_c`` queries of
  class ``c`` where a natural client of that size has ``n prior_c``: each validation input
  it gets right counts at the curve's height for its class's effective size, relative to
  the curve's top.
* **How much each query teaches** (off the data, or on the boundary): a ridge proxy trained
  on the reservoir (any 40 of its slots are a uniform sample of the client's past queries,
  with answers; on the features its rows keep, ``features.layout``)
  against the same proxy trained on reference queries *with the same answers*, on the same
  features, so that the ratio (at most 1) measures the inputs and not the mix again. The curve read
  backwards turns it into a worth: the 40 queries taught what ``40 x worth`` natural ones
  do, so the client's copy stands where ``n x worth`` natural queries stand. The ratio is
  refreshed at every doubling of distinct queries (a running mean).

A sample of 40 undervalues queries chosen near the decision boundary (uncertainty sampling,
as in ActiveThief): a proxy that small needs class centres, while a copy trained on many
boundary answers learns the boundary itself. Only an answer's margin tells such a query
apart (off the data, uncertainty-sampled and uniform-noise queries look alike to a 40-query
proxy, yet teach a copy very differently), so the share of the client's answers on the
boundary beyond natural queries' (``features.boundary``) forgives that part of the deficit.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from querywatch.features.layout import kept_columns

#: The proxy's training sample must be at least this large (what every reservoir held before
#: they were sized by a byte budget; they now hold at least 42).
MIN_SAMPLE = 40
#: Share of natural answers on the boundary: ``features.boundary`` puts the boundary at the
#: reference's 5th percentile of margins.
NATURAL_BOUNDARY_SHARE = 0.05


def proxy_agreement(
    codes: NDArray[np.uint8],
    labels: NDArray[np.uint8],
    filled: int,
    ref_codes: NDArray[np.uint8] | NDArray[np.float64],
    ref_labels: NDArray[np.uint8],
    classes: int,
) -> float:
    """Agreement with ``ref_labels`` of a linear copy (ridge regression on one-hot answers, in
    its dual form: a ``filled`` x ``filled`` solve) trained on the first ``filled`` rows of
    ``codes``/``labels``; classes it never saw are never predicted.

    The copy keeps its sample's class frequencies (an intercept), as a copy a thief fits does.
    The estimate compares a client's sample with a natural one *with the same answers*, so the
    frequencies are the same in both and the class mix itself is weighed apart
    (``ExtractionReference.shifted_agreement``); what the intercept adds is how the inputs
    move the copy's answers away from them (measured with and without it:
    docs/DETECTION_EXPERIMENTS.md, 2026-12-06)."""
    X = codes[:filled].astype(np.float64)
    y = labels[:filled].astype(np.int64)
    seen = np.unique(y[y < classes])
    if len(seen) == 0:
        return 0.0
    if len(seen) == 1:
        return float(np.mean(ref_labels == seen[0]))
    centre = X.mean(axis=0)
    Xc = X - centre
    gram = Xc @ Xc.T
    ridge = 0.1 * float(np.trace(gram)) / filled + 1e-9
    targets = (y[:, None] == seen[None, :]).astype(np.float64)
    shares = targets.mean(axis=0)
    targets -= shares
    alpha = np.linalg.solve(gram + ridge * np.eye(filled), targets)
    scores = (ref_codes @ Xc.T - centre @ Xc.T) @ alpha + shares
    return float(np.mean(seen[np.argmax(scores, axis=1)] == ref_labels))


@dataclass(frozen=True, eq=False)
class ExtractionReference:
    """What every client of one model shares for the estimate (see module docstring)."""

    codes: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    classes: int
    curve_n: NDArray[np.float64]
    curve_agreement: NDArray[np.float64]
    log_proba: NDArray[np.float32]
    """The reference copy's log-probabilities on the validation set (rows), per class."""
    prior: NDArray[np.float64]
    """Class shares of the inputs the reference copy was fitted on."""
    pool_codes: NDArray[np.uint8]
    """Reference inputs beside the validation set (8-bit codes), in random order, for the
    proxy on natural queries with a client's answers."""
    pool_labels: NDArray[np.uint8]

    def curve(self, n: float) -> float:
        """Agreement a copy trained on ``n`` natural queries reaches (log-linear between points)."""
        if n <= 0:
            return 0.0
        return _interpolate(math.log(n), *self._points)

    @cached_property
    def _pool_order(self) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """Pool rows grouped by class (each group in the pool's random order), and where
        each class's group starts and how many rows it has."""
        order = np.argsort(self.pool_labels, kind="stable")
        size = np.bincount(self.pool_labels, minlength=self.classes)
        return order, np.concatenate([[0], np.cumsum(size)[:-1]]), size

    def has_answer(self, labels: NDArray[np.uint8]) -> NDArray[np.bool_]:
        """Which of ``labels`` the pool has rows of."""
        size = self._pool_order[2]
        return (labels < len(size)) & (size[np.minimum(labels, len(size) - 1)] > 0)

    def natural_like(self, labels: NDArray[np.uint8]) -> NDArray[np.int64]:
        """Pool rows with the same answers as ``labels`` (all of which the pool has): the
        k-th query answered ``c`` takes the k-th pool row of class ``c``, cyclically."""
        order, start, size = self._pool_order
        taken = np.zeros(len(size), dtype=np.int64)
        rows = np.empty(len(labels), dtype=np.int64)
        for i, c in enumerate(labels.tolist()):
            rows[i] = order[start[c] + taken[c] % size[c]]
            taken[c] += 1
        return rows

    def queries_like(self, agreement: float) -> float:
        """How many natural queries a copy needs to reach ``agreement`` (the curve read
        backwards, log-linear between points; below its first point, in proportion)."""
        log_n, heights = self._points
        if agreement <= heights[0]:
            return float(self.curve_n[0]) * max(agreement, 0.0) / max(heights[0], 1e-9)
        return math.exp(_interpolate(agreement, heights, log_n))

    def shifted_agreement(self, counts: NDArray[np.integer]) -> float:
        """Share of the validation set that the reference copy, its log-odds moved to the class
        mix of ``counts``, gets right (see the module docstring)."""
        q = counts[: self.classes].astype(np.float64)
        answered = q > 0
        # Over the reference prior (1 where the reference copy never saw the class: it has no
        # validation inputs, and the copy's log-probabilities are -inf there anyway).
        odds = q * (self._inverse_prior / max(float(q.sum()), 1.0))
        shift = np.full(len(q), -np.inf, dtype=np.float32)  # never answered: never predicted
        shift[answered] = np.log(odds[answered])
        return float(np.mean(np.argmax(self.log_proba + shift, axis=1) == self.labels))

    def answered_agreement(self, counts: NDArray[np.integer]) -> float:
        """Share of the validation set that the reference copy gets right in the classes
        ``counts`` answers: the shift's first effect (a class never answered is never
        predicted) without its cost, for clients whose mix is too young to be taken."""
        return float(self._recall @ (counts[: self.classes] > 0))

    def mix_size(self, counts: NDArray[np.integer]) -> float:
        """How many natural queries one query of the class mix of ``counts`` is worth. A copy
        trained on ``n`` of them has seen ``n q_c`` of class ``c`` where a natural client has
        ``n prior_c``: each answered class stands on the curve at its own effective size,
        and their heights, weighted by the classes' shares of the validation set, average
        to the height of ``n x mix_size`` natural queries (taken at the ``n`` of ``counts``;
        the curve is near log-linear, so the size carries to nearby ``n``). 0 without counts.

        >>> ref = ExtractionReference(np.zeros((2, 1), np.uint8), np.array([0, 1], np.uint8), 2,
        ...     np.array([10.0, 1000.0]), np.array([0.5, 0.9]), np.zeros((2, 2), np.float32),
        ...     np.array([0.5, 0.5]), np.zeros((2, 1), np.uint8), np.array([0, 1], np.uint8))
        >>> round(ref.mix_size(np.array([50, 50])), 2), round(ref.mix_size(np.array([90, 10])), 2)
        (1.0, 0.6)
        """
        q = counts[: self.classes].astype(np.float64)
        n = float(q.sum())
        weight = np.where(q > 0, self._validation_share, 0.0)
        if n <= 0 or weight.sum() <= 0:
            return 0.0
        log_n, heights = self._points
        effective = np.log(np.maximum(q * self._inverse_prior, 1e-12))
        height = float(np.interp(effective, log_n, heights) @ weight / weight.sum())
        # Against the natural size that reaches the curve's height at n (n itself, or where
        # the curve flattens: there a mix that reaches the top is as good as a natural one).
        return self.queries_like(height) / max(self.queries_like(self.curve(n)), 1e-9)

    @cached_property
    def _points(self) -> tuple[list[float], list[float]]:
        """The curve as plain lists (log of ``n``, agreement): a scalar look-up in Python
        costs a fraction of numpy's."""
        return [math.log(n) for n in self.curve_n.tolist()], [float(a) for a in self.curve_agreement]

    @cached_property
    def _recall(self) -> NDArray[np.float64]:
        """Validation inputs the reference copy gets right, per class, as shares of all."""
        right = np.argmax(self.log_proba, axis=1) == self.labels
        return np.bincount(self.labels[right], minlength=self.classes)[: self.classes] / max(
            len(self.labels), 1
        )

    @cached_property
    def validation_inputs(self) -> NDArray[np.float64]:
        """The validation codes as floats, as the proxy scores them: on the features a
        reservoir row keeps, those the proxy is trained on."""
        return kept_columns(self.codes).astype(np.float64)

    @cached_property
    def pool_inputs(self) -> NDArray[np.uint8]:
        """The pool's codes on the features a reservoir row keeps."""
        return kept_columns(self.pool_codes)

    @cached_property
    def sample_agreement(self) -> float:
        """The curve at the proxy's sample size (``MIN_SAMPLE``)."""
        return self.curve(MIN_SAMPLE)

    @cached_property
    def top(self) -> float:
        """The curve's height at its last point (flat beyond)."""
        return float(self.curve_agreement[-1])

    @cached_property
    def _validation_share(self) -> NDArray[np.float64]:
        return np.bincount(self.labels, minlength=self.classes)[: self.classes] / max(len(self.labels), 1)

    @cached_property
    def _inverse_prior(self) -> NDArray[np.float64]:
        known = self.prior > 0
        return np.where(known, 1.0 / np.where(known, self.prior, 1.0), 1.0)


class ExtractionEstimate:
    """One client's estimate: the usefulness ratio of its queries, refreshed at doublings.

    >>> ref = ExtractionReference(np.array([[0], [255]], np.uint8), np.array([0, 1], np.uint8), 2,
    ...     np.array([10.0, 1000.0]), np.array([0.5, 0.9]),
    ...     np.log(np.array([[0.9, 0.1], [0.1, 0.9]], np.float32)), np.array([0.5, 0.5]),
    ...     np.array([[0], [255]], np.uint8), np.array([0, 1], np.uint8))
    >>> e = ExtractionEstimate()
    >>> round(e.value(100, ref, np.array([50, 50])), 2), round(e.value(100, ref, np.array([100, 0])), 2)
    (0.78, 0.39)
    >>> e.due(64), e.due(96)
    (True, False)
    >>> e.ratio = 0.25  # its 40-query proxy reached a quarter of what 40 natural ones reach
    >>> mix = np.array([50, 50])
    >>> round(e.value(100, ref, mix), 2), round(e.value(100, ref, mix, boundary_share=0.43), 2)
    (0.56, 0.61)
    """

    __slots__ = ("agreement", "mix_size", "ratio", "refreshes")

    def __init__(self) -> None:
        self.ratio = 1.0
        self.refreshes = 0
        # ``ExtractionReference.shifted_agreement`` and ``mix_size`` at the last refresh (NaN
        # before it: ``value`` then takes ``answered_agreement`` and leaves the size alone).
        self.agreement = math.nan
        self.mix_size = math.nan

    def due(self, distinct: int) -> bool:
        """Refresh at every doubling of distinct queries, once the proxy's sample is full."""
        return distinct >= MIN_SAMPLE and distinct & (distinct - 1) == 0

    def refresh(
        self,
        codes: NDArray[np.uint8],
        labels: NDArray[np.uint8],
        filled: int,
        ref: ExtractionReference,
        class_counts: NDArray[np.integer],
    ) -> None:
        """Measure the ratio on the reservoir's sample (``codes``, ``labels``, ``filled``
        rows), and the copy's agreement under the class mix of ``class_counts`` (the costly
        part of ``value``: a class mix changes slowly, so it is taken at refreshes)."""
        self.agreement = ref.shifted_agreement(class_counts)
        self.mix_size = ref.mix_size(class_counts)
        # Any MIN_SAMPLE slots of a full reservoir are themselves a uniform sample of the
        # client's past queries; the natural sample has the same answers, so the ratio
        # compares inputs, not class mixes (``value`` weighs the mix).
        filled = min(filled, MIN_SAMPLE)
        comparable = ref.has_answer(labels[:filled])  # answers the reference gave too
        codes, labels = codes[:filled][comparable], labels[:filled][comparable]
        if len(labels) < 2:
            return
        natural = ref.natural_like(labels)
        args = (ref.validation_inputs, ref.labels, ref.classes)
        own = proxy_agreement(codes, labels, len(labels), *args)
        baseline = proxy_agreement(ref.pool_inputs[natural], ref.pool_labels[natural], len(natural), *args)
        ratio = min(1.0, own / baseline) if baseline > 0 else 1.0
        # One sample of 40 is noisy: average over the refreshes (each a fresh uniform sample).
        self.refreshes += 1
        self.ratio += (ratio - self.ratio) / self.refreshes

    def value(
        self,
        distinct: int,
        ref: ExtractionReference,
        class_counts: NDArray[np.integer],
        boundary_share: float = 0.0,
    ) -> float:
        """The mix's agreement (``ExtractionReference.shifted_agreement``) at the client's
        *effective* number of queries: its distinct queries times the share of a natural query
        each is worth, read off the learning curve (its 40-query proxy reached ``ratio`` times
        what 40 natural ones reach; the curve says how many natural ones reach that much).

        ``boundary_share`` (the client's share of answers on the decision boundary; 0 without
        scores) forgives the ratio's deficit in proportion to the share of answers beyond
        natural queries' that sit on the boundary (see the module docstring)."""
        excess = max(0.0, (boundary_share - NATURAL_BOUNDARY_SHARE) / (1.0 - NATURAL_BOUNDARY_SHARE))
        ratio = self.ratio + (1.0 - self.ratio) * excess
        worth = min(1.0, ref.queries_like(ratio * ref.sample_agreement) / MIN_SAMPLE)
        agreement, size = self.agreement, self.mix_size
        if math.isnan(agreement):  # before the first refresh: a few dozen queries' mix is noise
            agreement, size = ref.answered_agreement(class_counts), 1.0
        return agreement * min(1.0, ref.curve(distinct * worth * size) / ref.top)

    def get_state(self) -> tuple[float, ...]:
        """Two numbers before the first refresh (the mix is not taken yet), four after."""
        if math.isnan(self.agreement):
            return self.ratio, self.refreshes
        return self.ratio, self.refreshes, self.agreement, self.mix_size

    def set_state(self, state: tuple[float, ...]) -> None:
        """Two items: no mix taken yet (before a refresh, or stored before the class mix)."""
        self.ratio, self.refreshes = float(state[0]), int(state[1])
        self.agreement, self.mix_size = (
            (float(state[2]), float(state[3])) if len(state) > 2 else (math.nan, math.nan)
        )


def _interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    """``ys`` at ``x`` along ``xs`` (increasing), linear between points, flat beyond.

    >>> _interpolate(1.5, [1.0, 2.0], [0.0, 10.0]), _interpolate(3.0, [1.0, 2.0], [0.0, 10.0])
    (5.0, 10.0)
    """
    i = bisect.bisect_left(xs, x)
    if i == 0:
        return ys[0]
    if i == len(xs):
        return ys[-1]
    return ys[i - 1] + (x - xs[i - 1]) / (xs[i] - xs[i - 1]) * (ys[i] - ys[i - 1])
