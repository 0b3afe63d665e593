"""The structured-step test counts moves up to 67 code units only; it must decide exactly as
the full 0-255 histogram does (a 60% window beyond 66 cannot coexist with one at 64 or below)."""

from __future__ import annotations

import numpy as np

from querywatch.features.nearest import MIN_STEP, is_structured_step


def full_histogram(a: np.ndarray, b: np.ndarray, min_changed: int = 3) -> bool:
    moves = np.abs(b.astype(np.int64) - a.astype(np.int64))
    moves = moves[moves > 1]
    if len(moves) < max(min_changed, len(a) // 8):
        return False
    counts = np.bincount(moves, minlength=257)
    windows = (counts[:-2] + counts[1:-1] + counts[2:])[MIN_STEP - 1 :]  # centred on MIN_STEP..255
    mode = int(np.argmax(windows)) + MIN_STEP
    return bool(windows.max() >= 0.6 * len(moves) and mode <= 64)


def test_the_short_histogram_decides_as_the_full_one() -> None:
    rng = np.random.default_rng(7)
    positives = 0
    for _ in range(20_000):
        d = int(rng.choice([5, 20, 64]))
        a = rng.integers(0, 256, d).astype(np.uint8)
        step = int(rng.integers(1, 90))  # around the 64-67 edge too
        moved = rng.random(d) < rng.random()
        noise = rng.integers(-2, 3, d) * (rng.random(d) < 0.3)
        b = np.clip(a.astype(int) + moved * step * rng.choice([-1, 1], d) + noise, 0, 255).astype(np.uint8)
        expected = full_histogram(a, b)
        positives += expected
        assert is_structured_step(a, b) == expected
    assert 1000 < positives < 19_000
