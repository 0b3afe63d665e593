"""How much of the model a client already has: an online extraction estimate.

Kesarwani et al. (2017) monitor a user's *learning rate*: train a proxy on the user's
queries and the model's answers, and measure its agreement with the model on a validation
set. Done literally per client that costs a model fit per refresh. Here it costs microseconds:

* the reference (``models.extraction``) holds a labelled validation set (reference inputs with
  the model's own answers, as 8-bit codes) and the reference's *learning curve*: the agreement
  a copy trained on ``n`` natural reference queries reaches (a linear copy, fitted once per
  profile);
* a client's reservoir (``features.reservoir``: a uniform sample of its past queries, with
  their answers) says how useful *its* queries are compared with natural ones: a linear
  proxy (ridge regression on the answers) trained on the reservoir, scored on the validation
  set, against the same proxy trained on as many reference queries. Queries of one class,
  or far from the data, teach less than natural ones; that ratio (at most 1) scales the
  learning curve at the client's number of distinct queries.

The ratio is refreshed on a geometric schedule (every doubling of distinct queries); between
refreshes the estimate moves along the curve.

A sample of 40 undervalues queries chosen near the decision boundary (uncertainty sampling,
as in ActiveThief): a proxy that small needs class centres, while a copy trained on many
boundary answers learns the boundary itself. Only an answer's margin tells such a query
apart (off the data, uncertainty-sampled and uniform-noise queries look alike to a 40-query
proxy, yet teach a copy very differently), so the share of the client's answers on the
boundary beyond natural queries' (``features.boundary``) forgives that part of the deficit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: The proxy's training sample must be at least this large (the reservoir's usual capacity).
MIN_SAMPLE = 40
#: Share of natural answers on the boundary: ``features.boundary`` puts the boundary at the
#: reference's 5th percentile of margins.
NATURAL_BOUNDARY_SHARE = 0.05


def proxy_agreement(
    codes: NDArray[np.uint8],
    labels: NDArray[np.uint8],
    filled: int,
    ref_codes: NDArray[np.uint8],
    ref_labels: NDArray[np.uint8],
    classes: int,
) -> float:
    """Agreement with ``ref_labels`` of a linear copy (ridge regression on one-hot answers, in
    its dual form: a ``filled`` x ``filled`` solve) trained on the first ``filled`` rows of
    ``codes``/``labels``; classes it never saw are never predicted."""
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
    targets -= targets.mean(axis=0)
    alpha = np.linalg.solve(gram + ridge * np.eye(filled), targets)
    scores = ((ref_codes.astype(np.float64) - centre) @ Xc.T) @ alpha + targets.mean(axis=0)
    return float(np.mean(seen[np.argmax(scores, axis=1)] == ref_labels))


@dataclass(frozen=True, eq=False)
class ExtractionReference:
    """What every client of one model shares for the estimate (see module docstring)."""

    codes: NDArray[np.uint8]
    labels: NDArray[np.uint8]
    classes: int
    curve_n: NDArray[np.float64]
    curve_agreement: NDArray[np.float64]
    proxy_agreement: float
    """The proxy's agreement when trained on MIN_SAMPLE reference queries."""

    def curve(self, n: int) -> float:
        """Agreement a copy trained on ``n`` natural queries reaches (log-linear between points)."""
        if n <= 0:
            return 0.0
        xs = self.curve_n
        return float(np.interp(math.log(n), np.log(xs), self.curve_agreement))


class ExtractionEstimate:
    """One client's estimate: the usefulness ratio of its queries, refreshed at doublings.

    >>> ref = ExtractionReference(np.array([[0], [255]], np.uint8), np.array([0, 1], np.uint8), 2,
    ...                           np.array([10.0, 1000.0]), np.array([0.5, 0.9]), 1.0)
    >>> e = ExtractionEstimate()
    >>> round(e.value(100, ref), 2)
    0.7
    >>> e.due(64), e.due(96)
    (True, False)
    >>> e.ratio = 0.25
    >>> round(e.value(100, ref), 2), round(e.value(100, ref, boundary_share=0.43), 2)
    (0.35, 0.52)
    """

    __slots__ = ("ratio", "refreshes")

    def __init__(self) -> None:
        self.ratio = 1.0
        self.refreshes = 0

    def due(self, distinct: int) -> bool:
        """Refresh at every doubling of distinct queries, once the proxy's sample is full."""
        return distinct >= MIN_SAMPLE and distinct & (distinct - 1) == 0

    def refresh(
        self, codes: NDArray[np.uint8], labels: NDArray[np.uint8], filled: int, ref: ExtractionReference
    ) -> None:
        # Trained on as many queries as the reference's proxy: any MIN_SAMPLE slots of a full
        # reservoir are themselves a uniform sample of the client's past queries.
        filled = min(filled, MIN_SAMPLE)
        agreement = proxy_agreement(codes, labels, filled, ref.codes, ref.labels, ref.classes)
        ratio = min(1.0, agreement / ref.proxy_agreement) if ref.proxy_agreement > 0 else 1.0
        # One sample of 40 is noisy: average over the refreshes (each a fresh uniform sample).
        self.refreshes += 1
        self.ratio += (ratio - self.ratio) / self.refreshes

    def value(self, distinct: int, ref: ExtractionReference, boundary_share: float = 0.0) -> float:
        """The curve at ``distinct`` queries times the square root of the ratio: the ratio is
        measured on 40 queries, where a missing class or region costs the most; a copy trained
        on many more recovers part of it (the geometric mean of no and full recovery).

        ``boundary_share`` (the client's share of answers on the decision boundary; 0 without
        scores) forgives the ratio's deficit in proportion to the share of answers beyond
        natural queries' that sit on the boundary (see the module docstring)."""
        excess = max(0.0, (boundary_share - NATURAL_BOUNDARY_SHARE) / (1.0 - NATURAL_BOUNDARY_SHARE))
        ratio = self.ratio + (1.0 - self.ratio) * excess
        return ref.curve(distinct) * math.sqrt(ratio)

    def get_state(self) -> tuple[float, int]:
        return self.ratio, self.refreshes

    def set_state(self, state: tuple[float, int]) -> None:
        self.ratio, self.refreshes = float(state[0]), int(state[1])
