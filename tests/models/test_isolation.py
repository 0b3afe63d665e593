"""The isolation limits, measured on the reference: about 1% of natural queries lie beyond
them, while a thief picking each query farthest from its others (k-center) lies beyond them
query after query; a profile stored before them judges no query isolated."""

from __future__ import annotations

import numpy as np

from querywatch.features.client import ProfileLimits
from querywatch.features.distance import QueryDistances
from querywatch.features.layout import reservoir_capacity
from querywatch.models.calibration import Calibration
from querywatch.models.steps import isolation_limits

DIM = 12


def _natural(rng: np.random.Generator, n: int) -> np.ndarray:
    """Codes of rows of one data set (fixed clusters on a three-dimensional surface of the
    twelve features, as natural data has fewer degrees of freedom than inputs), drawn by ``rng``."""
    shape = np.random.default_rng(0)
    centres = shape.uniform(60, 195, size=(8, DIM))
    surface = shape.normal(size=(8, 3, DIM)) * 8.0
    which = rng.integers(0, 8, size=n)
    latent = rng.normal(size=(n, 3))
    rows = centres[which] + np.einsum("ij,ijk->ik", latent, surface[which]) + rng.normal(size=(n, DIM))
    return np.clip(np.rint(rows), 0, 255).astype(np.uint8)


def _isolated(codes: np.ndarray, by_rows: tuple[float, ...]) -> np.ndarray:
    """Whether each query of one client lies beyond the limit at its reservoir's rows."""
    distances = QueryDistances(DIM, capacity=reservoir_capacity(DIM), seed=3, isolation=by_rows)
    out = []
    for i, code in enumerate(codes):
        distances.update(code, input_hash=i + 1, label=0)
        out.append(distances.apart)
    return np.asarray(out)


def _thief_pool(rng: np.random.Generator, n: int) -> np.ndarray:
    """A thief's own in-domain data: natural rows, and as many blends of two of them with
    noise (as the simulator's ActiveThief pool on a table)."""
    rows = _natural(rng, n).astype(np.float64)
    a, b = rng.integers(0, n, size=(2, n))
    mix = rng.uniform(size=(n, 1))
    blends = (1.0 - mix) * rows[a] + mix * rows[b] + rng.normal(size=rows.shape) * 6.0
    return np.clip(np.rint(np.concatenate([rows, blends])), 0, 255).astype(np.uint8)


def _farthest_first(pool: np.ndarray, n: int) -> np.ndarray:
    """ActiveThief's k-center selection over ``pool``: 20 random rows, then each the farthest
    from all chosen."""
    x = pool.astype(np.float64)
    chosen = list(range(20))
    nearest = np.min([((x - x[i]) ** 2).sum(axis=1) for i in chosen], axis=0)
    while len(chosen) < n:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((x - x[pick]) ** 2).sum(axis=1))
    return pool[chosen]


def test_natural_queries_are_rarely_isolated_and_farthest_first_ones_mostly() -> None:
    rng = np.random.default_rng(5)
    limits = isolation_limits(_natural(rng, 6000))
    rows = [r for r, _ in limits]
    assert rows[0] == 20 and rows[-1] == reservoir_capacity(DIM)
    assert limits[0][1] > limits[-1][1]  # fewer rows searched, a nearer limit would say too much
    by_rows = ProfileLimits.isolation_by_rows(limits, reservoir_capacity(DIM))
    natural = np.mean([_isolated(_natural(np.random.default_rng(s), 600), by_rows).mean() for s in (1, 2, 3)])
    assert natural < 0.04, natural
    thief = _isolated(_farthest_first(_thief_pool(np.random.default_rng(9), 5000), 300), by_rows)
    assert thief[20:120].mean() > 0.5, thief[20:120].mean()


def test_a_client_of_a_reservoir_under_twenty_rows_is_not_judged() -> None:
    by_rows = ProfileLimits.isolation_by_rows(isolation_limits(_natural(np.random.default_rng(1), 3000)), 121)
    assert by_rows[:20] == (np.inf,) * 20 and np.isfinite(by_rows[20])


def test_a_profile_stored_before_the_isolation_limits_judges_no_query_isolated() -> None:
    cal = Calibration(0.01, 0.04, 0.05, 3.0, 100, isolation=((20, 900.0), (25, 700.0)))
    assert Calibration.from_dict(cal.as_dict()) == cal
    stored = cal.as_dict()
    del stored["isolation"]
    assert Calibration.from_dict(stored).isolation == ()
    assert ProfileLimits.isolation_by_rows((), 77) == (np.inf,) * 78
