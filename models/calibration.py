"""Per-model null rates of the evidence tests, derived from the model's own reference.

A tolerance that is right for one model is wrong for another: the share of a benign
client's queries that fall out of profile, or get an answer on the decision boundary,
depends on the model and its data. So each test's null rate (the most a benign client is
allowed) is measured on the reference itself, over *pseudo-clients*: the reference's own
clients when it has owners (a warm-up from live traffic: each client's first events),
otherwise groups drawn from the reference the way real clients query, concentrated on a
region (one cell of the profile, half of the draws) and otherwise anywhere. The null rate is
the 99th percentile of the indicator's rate over pseudo-clients, never below the rate over
the whole reference.

The *far* indicator marks an input beyond the reference's most extreme input by as much
again as that input lies beyond the 99.9th percentile (``2 max - q999`` of the reference's
out-of-profile scores): an input exchangeable with N reference inputs lands beyond their
maximum with chance 1 / (N + 1) (a conformal bound, no tail model), and the margin keeps
noisy but genuine data — which benign clients send and a trimmed warm-up may not hold —
inside. Its null is measured by leaving each pseudo-client out: its share of inputs beyond
that threshold computed from the *other* pseudo-clients. A thief's synthetic queries sit
there however many natural queries it interleaves, so the count of far queries builds
evidence at the rate of the stolen ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Pseudo-clients drawn when the reference has no owners, and their size.
PSEUDO_CLIENTS = 200
PSEUDO_SIZE = 40
#: Percentile of the pseudo-clients' rates taken as the null rate.
NULL_QUANTILE = 0.99
#: The far test's null is at least this multiple of the out-of-profile null (see ``calibrate``).
FAR_FLOOR = 4.0


@dataclass(frozen=True)
class Calibration:
    """Null rates of the rate tests and the far threshold of one reference."""

    ood_null: float
    far_null: float
    boundary_null: float
    far_threshold: float
    pseudo_clients: int

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> Calibration:
        return cls(
            ood_null=float(d["ood_null"]),
            far_null=float(d["far_null"]),
            boundary_null=float(d["boundary_null"]),
            far_threshold=float(d["far_threshold"]),
            pseudo_clients=int(d["pseudo_clients"]),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "ood_null": self.ood_null,
            "far_null": self.far_null,
            "boundary_null": self.boundary_null,
            "far_threshold": self.far_threshold,
            "pseudo_clients": float(self.pseudo_clients),
        }


def calibrate(
    scores: NDArray[np.float64],
    ood_threshold: float,
    cells: NDArray[np.int64],
    *,
    owners: NDArray[Any] | None = None,
    margins: NDArray[np.float64] | None = None,
    margin_threshold: float = 0.0,
    seed: int = 0,
) -> Calibration:
    """Null rates from the reference rows' out-of-profile ``scores``, ``cells`` and answer
    ``margins`` (NaN where an answer had no scores), grouped by ``owners`` if given.

    >>> rng = np.random.default_rng(0)
    >>> s = rng.gamma(4.0, size=4000)
    >>> c = calibrate(s, float(np.quantile(s, 0.999)), rng.integers(0, 8, 4000))
    >>> bool(c.far_threshold > s.max()), c.far_null >= 4 * c.ood_null, 0.001 <= c.ood_null < 0.1
    (True, True, True)
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    groups = _groups(len(scores), cells, owners, seed)
    ood = scores > ood_threshold
    ood_rates, far_rates = [], []
    outside = np.ones(n, dtype=bool)
    for rows in groups:
        ood_rates.append(ood[rows].mean())
        outside[rows] = False
        others_max = scores[outside].max() if outside.any() else -np.inf
        outside[rows] = True
        far_rates.append(float((scores[rows] > 2.0 * others_max - ood_threshold).mean()))
    boundary_null = 0.0
    if margins is not None:
        m = np.asarray(margins, dtype=np.float64)
        scored = np.isfinite(m)
        if scored.any():
            on = m < margin_threshold
            rates = [on[rows][scored[rows]].mean() for rows in groups if scored[rows].any()]
            boundary_null = max(float(np.quantile(rates, NULL_QUANTILE)), float(on[scored].mean()))
    ood_null = max(float(np.quantile(ood_rates, NULL_QUANTILE)), float(ood.mean()), 1.0 / (n + 1))
    return Calibration(
        ood_null=ood_null,
        # Benign clients noisier than any the reference kept exist (a robust warm-up trims
        # them with the thieves), and the far rates of the reference's own clients cannot
        # show them: the far null is never below FAR_FLOOR times the out-of-profile null.
        far_null=min(max(float(np.quantile(far_rates, NULL_QUANTILE)), FAR_FLOOR * ood_null), 0.5),
        boundary_null=boundary_null,
        far_threshold=2.0 * float(scores.max()) - ood_threshold,
        pseudo_clients=len(groups),
    )


def _groups(
    n: int, cells: NDArray[np.int64], owners: NDArray[Any] | None, seed: int
) -> list[NDArray[np.int64]]:
    """Row indices of each pseudo-client: the owners' rows, or drawn (see module docstring)."""
    if owners is not None:
        _, inverse = np.unique(np.asarray(owners), return_inverse=True)
        by_owner = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))
        return [g for g in np.split(by_owner, bounds[:-1]) if len(g)]
    rng = np.random.default_rng(seed)
    by_cell = [np.flatnonzero(cells == c) for c in np.unique(cells)]
    weights = np.array([len(g) for g in by_cell], dtype=np.float64)
    groups = []
    for _ in range(PSEUDO_CLIENTS):
        home = by_cell[rng.choice(len(by_cell), p=weights / weights.sum())]
        local = rng.choice(home, size=PSEUDO_SIZE // 2)
        anywhere = rng.integers(0, n, size=PSEUDO_SIZE - PSEUDO_SIZE // 2)
        groups.append(np.concatenate([local, anywhere]))
    return groups
