"""Out-of-distribution share: how much of a client's traffic lies outside the profile.

A query is out of profile when its distance to the nearest reference cell, measured in the
profile's global scale or in each feature's own spread, exceeds the reference's own 99.9th
percentile (``querywatch.models.profile``). Random, synthetic and
other-domain (Knockoff-style) queries are mostly out of profile; noisy benign data is
sometimes.
"""

from __future__ import annotations


class OutOfProfileShare:
    """Total and recent (exponentially weighted) share of out-of-profile queries.

    >>> s = OutOfProfileShare()
    >>> for flag in (True, False, False, False):
    ...     s.update(flag)
    >>> s.share
    0.25
    """

    __slots__ = ("count", "far", "n", "recent", "weight")

    def __init__(self, weight: float = 0.05) -> None:
        if not 0 < weight <= 1:
            raise ValueError("weight must lie in (0, 1]")
        self.weight = weight
        self.count = 0
        self.far = 0
        self.n = 0
        self.recent = 0.0

    def update(self, out_of_profile: bool, far: bool = False) -> None:
        """Learn one query: beyond the 99.9th percentile, and beyond every reference input."""
        self.n += 1
        self.count += out_of_profile
        self.far += far
        w = max(self.weight, 1.0 / self.n)
        self.recent += w * (out_of_profile - self.recent)

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else 0.0

    @property
    def far_share(self) -> float:
        return self.far / self.n if self.n else 0.0

    def get_state(self) -> tuple[int, int, int, float]:
        return self.count, self.far, self.n, self.recent

    def set_state(self, state: tuple[int, int, int, float] | tuple[int, int, float]) -> None:
        if len(state) == 3:  # stored by 0.1, before the far count: it starts at zero
            self.count, self.n, self.recent = state
            self.far = 0
            return
        self.count, self.far, self.n, self.recent = state
