"""The steps test's null, measured on the reference: natural coincidences raise it, a thief's
own chain in a warm-up does not, and it never falls below the default tolerance."""

from __future__ import annotations

import numpy as np

from querywatch.models.calibration import Calibration
from querywatch.models.registry import EVIDENCE_TESTS
from querywatch.models.steps import steps_null


def _chains(rng: np.random.Generator, owners: int, length: int, dim: int) -> np.ndarray:
    """Rows stepping from the owner's previous row by one common amount on four features
    (a random-subset perturbation chain, T-RND's shape)."""
    rows = []
    for _ in range(owners):
        x = rng.integers(60, 196, size=dim)
        for _ in range(length):
            moved = rng.choice(dim, size=4, replace=False)
            x = x.copy()
            x[moved] = np.clip(x[moved] + rng.choice([-12, 12], size=4), 0, 255)
            rows.append(x)
    return np.asarray(rows, dtype=np.uint8)


def test_structured_rows_raise_the_null_unless_each_chain_is_its_owners_own() -> None:
    rng = np.random.default_rng(1)
    codes = _chains(rng, owners=20, length=200, dim=12)
    anyone = steps_null(codes)
    by_owner = steps_null(codes, owners=np.repeat(np.arange(20), 200))
    assert anyone > 0.05, anyone  # rows drawn together step from one another
    assert by_owner < 0.01, by_owner  # no owner's row is judged against its own chain


def test_the_steps_null_is_the_references_rate_when_above_the_default() -> None:
    stored = Calibration(0.01, 0.04, 0.05, 3.0, 100).as_dict()
    del stored["steps_null"]  # a profile stored before the steps null
    old = Calibration.from_dict(stored)
    assert old.steps_null == 0.0
    nulls = [
        EVIDENCE_TESTS.nulls(Calibration(0.01, 0.04, 0.05, 3.0, 100, steps_null=s))["steps"]
        for s in (0.0, 0.02, 0.13)
    ]
    assert nulls == [0.05, 0.05, 0.13]
    assert EVIDENCE_TESTS.nulls(Calibration.from_dict(stored), {"steps": 0.03})["steps"] == 0.03
