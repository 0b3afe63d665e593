"""One client's traffic before it is served: when it sends (seconds) and what it sends.

Generators of benign and attacking clients return a ``Traffic``; the trace assembler serves
the inputs through the victim and turns them into events. The timing helpers shape when
people and programs send: people in sessions, scripts at a steady pace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Traffic:
    """Send times (seconds after the trace start, not necessarily sorted) and inputs (n, 64)."""

    times: np.ndarray
    inputs: np.ndarray

    def __post_init__(self) -> None:
        if self.inputs.ndim != 2 or len(self.times) != len(self.inputs):
            raise ValueError("traffic needs n times and (n, dim) inputs")

    def __len__(self) -> int:
        return len(self.times)

    @staticmethod
    def concat(parts: list[Traffic]) -> Traffic:
        return Traffic(np.concatenate([p.times for p in parts]), np.concatenate([p.inputs for p in parts]))


def session_times(rng: np.random.Generator, n: int, *, span: float, sessions: int, gap: float) -> np.ndarray:
    """Times of ``n`` queries split over ``sessions`` bursts starting at random in ``[0, span)``.

    Within a session queries follow each other after exponential gaps of mean ``gap`` seconds.

    >>> t = session_times(np.random.default_rng(0), 50, span=3600.0, sessions=3, gap=10.0)
    >>> len(t), bool(np.all(t >= 0))
    (50, True)
    """
    sessions = max(1, min(sessions, n))
    sizes = np.bincount(rng.integers(0, sessions, size=n), minlength=sessions)
    starts = np.sort(rng.uniform(0.0, span, size=sessions))
    parts = [
        start + np.cumsum(rng.exponential(gap, size=size)) for start, size in zip(starts, sizes, strict=True)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def steady_times(rng: np.random.Generator, n: int, *, start: float, gap: float) -> np.ndarray:
    """Times of ``n`` queries sent one after the other by a script, ``gap`` seconds apart on average.

    >>> steady_times(np.random.default_rng(0), 3, start=10.0, gap=1.0).shape
    (3,)
    """
    return start + np.cumsum(rng.exponential(gap, size=n))


def noisy(rng: np.random.Generator, inputs: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    """Natural inputs with sensor noise (``sigma`` per row or for all), kept in ``[0, 1]``."""
    spread = np.asarray(sigma, dtype=np.float64)
    spread = spread.reshape(-1, 1) if spread.ndim else spread
    return np.asarray(np.clip(inputs + rng.normal(0.0, 1.0, size=inputs.shape) * spread, 0.0, 1.0))


def scaled_count(rng: np.random.Generator, low: int, high: int, scale: float, floor: int = 10) -> int:
    """A client's query volume drawn from ``[low, high)`` and scaled, never below ``floor``."""
    return max(floor, int(rng.integers(low, high) * scale))
