"""Boundary probing: answers that sit on the model's decision boundary.

From ``prediction.scores``: the top-1 minus top-2 margin and the normalised entropy of
the scores. An answer is *on the boundary* when its margin is at most the reference's 5th
percentile (``models.profile.boundary_margin``: ties at it count, for scores that come in
steps). Uncertainty-sampling thieves and decision-based probes (HopSkipJump-like
line searches) collect such answers far more often than benign users. Without scores the
feature stays silent.
"""

from __future__ import annotations

import math


class BoundaryShare:
    """Share of scored answers with a small margin, and mean normalised output entropy.

    >>> b = BoundaryShare()
    >>> for m in (0.01, 0.9, 0.8, 0.02):
    ...     _ = b.update(m, 0.5, 0.05)
    >>> b.share, b.mean_entropy
    (0.5, 0.5)
    """

    __slots__ = ("_entropy_sum", "count", "scored")

    def __init__(self) -> None:
        self.count = 0
        self.scored = 0
        self._entropy_sum = 0.0

    def update(self, margin: float, entropy: float, threshold: float) -> bool | None:
        """Learn one answer; True if it is on the boundary, None if it had no scores."""
        if math.isnan(margin):
            return None
        on_boundary = margin < threshold
        self.scored += 1
        self.count += on_boundary
        self._entropy_sum += entropy
        return on_boundary

    @property
    def share(self) -> float:
        return self.count / self.scored if self.scored else 0.0

    @property
    def mean_entropy(self) -> float:
        return self._entropy_sum / self.scored if self.scored else 0.0

    def get_state(self) -> tuple[int, int, float]:
        return self.count, self.scored, self._entropy_sum

    def set_state(self, state: tuple[int, int, float]) -> None:
        self.count, self.scored, self._entropy_sum = state
