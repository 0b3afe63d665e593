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
    """Share of scored answers with a small margin, of those with a margin below the *deep*
    threshold too (the reference's 1st percentile: ``models.profile.DEEP_QUANTILE``), and
    mean normalised output entropy.

    >>> b = BoundaryShare()
    >>> for m in (0.01, 0.9, 0.8, 0.02):
    ...     _ = b.update(m, 0.5, 0.05, deep_threshold=0.015)
    >>> b.share, b.deep_share, b.mean_entropy
    (0.5, 0.25, 0.5)
    """

    __slots__ = ("_entropy_sum", "count", "deep", "scored")

    def __init__(self) -> None:
        self.count = 0
        self.deep = 0
        self.scored = 0
        self._entropy_sum = 0.0

    def update(
        self, margin: float, entropy: float, threshold: float, deep_threshold: float = 0.0
    ) -> bool | None:
        """Learn one answer; True if it is on the boundary, None if it had no scores."""
        if math.isnan(margin):
            return None
        on_boundary = margin < threshold
        self.scored += 1
        self.count += on_boundary
        self.deep += margin < deep_threshold
        self._entropy_sum += entropy
        return on_boundary

    @property
    def share(self) -> float:
        return self.count / self.scored if self.scored else 0.0

    @property
    def deep_share(self) -> float:
        return self.deep / self.scored if self.scored else 0.0

    @property
    def mean_entropy(self) -> float:
        return self._entropy_sum / self.scored if self.scored else 0.0

    def get_state(self) -> tuple[int, int, float, int]:
        return self.count, self.scored, self._entropy_sum, self.deep

    def set_state(self, state: tuple[int, int, float] | tuple[int, int, float, int]) -> None:
        """Three items: stored before deep answers were counted (none then)."""
        self.count, self.scored, self._entropy_sum = state[:3]
        self.deep = int(state[3]) if len(state) > 3 else 0
