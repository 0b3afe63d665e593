"""Predicted-class mix of one client: entropy and divergence from the class prior.

Works from ``prediction.label`` or, when only scores came back, from their argmax; a
client with neither simply has no class features.
"""

from __future__ import annotations

from array import array

import numpy as np
from numpy.typing import NDArray

from querywatch.features.coverage import entropy_bits, kl_bits, narrowest


class ClassMix:
    """Counts of predicted classes (the last slot gathers labels the profile never saw).

    >>> mix = ClassMix(np.array([0.5, 0.5, 0.0]) + 1e-9)
    >>> for c in (0, 1, 0, 1):
    ...     mix.update(c)
    >>> mix.entropy, round(mix.divergence, 6)
    (1.0, 0.0)
    """

    __slots__ = ("_counts", "_prior")

    def __init__(self, prior: NDArray[np.float64]) -> None:
        self._prior = prior
        # array: one item changes per query; one byte each until a count passes 255.
        self._counts = array("B", bytes(len(prior)))

    def update(self, class_index: int) -> None:
        i = min(class_index, len(self._counts) - 1)
        try:
            self._counts[i] += 1
        except OverflowError:  # a count passed 255: four bytes each from now on
            self._counts = array("I", self._counts)
            self._counts[i] += 1

    @property
    def counts(self) -> NDArray[np.uint32]:
        """Queries answered with each class (the last slot: labels the profile never saw)."""
        return np.array(self._counts, dtype=np.uint32)

    @property
    def entropy(self) -> float:
        """Entropy of predicted classes, in bits."""
        return entropy_bits(self.counts)

    @property
    def divergence(self) -> float:
        """KL divergence (bits) of predicted classes from the reference class prior."""
        return kl_bits(self.counts, self._prior)

    def get_state(self) -> bytes:
        """The counts as uint32, whatever their width in memory."""
        return array("I", self._counts).tobytes()

    def set_state(self, state: bytes) -> None:
        self._counts = narrowest(array("I", state))
