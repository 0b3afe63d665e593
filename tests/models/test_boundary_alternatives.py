"""The boundary test's rate alternatives (``models.kinds.ScaledChanceTest.ODDS_RATIOS``): where
they gain evidence decides whether a heavy benign user a little above its null creeps to an
alert over thousands of queries, and how soon a selecting thief is caught."""

from __future__ import annotations

import numpy as np

from querywatch.features.client import Indicators
from querywatch.models.evidence import ClientEvidence, EvidenceTests, evidence_threshold

CHANCE = 0.05


def _answer(on_boundary: bool) -> Indicators:
    return Indicators(False, False, on_boundary, False, False, CHANCE)


def test_a_client_a_little_above_the_null_mostly_stays_quiet_where_a_thief_is_caught() -> None:
    """Sixteen heavy users answered on the boundary at 1.3 times the null for 5,000 queries
    each, and sixteen thieves at 2.5 times it (what uncertainty sampling reaches). With
    alternatives at 1.5 times the null's odds, which gain evidence from 1.23 times the null
    up, ten of the heavy users alerted; at twice the odds four, and every thief as soon."""
    tests = EvidenceTests({"boundary": 1.0})
    threshold = evidence_threshold(1e-4)
    crept, caught = 0, []
    for seed in range(16):
        rng = np.random.default_rng(seed)
        heavy, thief = ClientEvidence(tests), ClientEvidence(tests)
        alerted, first = False, None
        rates = zip(rng.random(5000) < 1.3 * CHANCE, rng.random(5000) < 2.5 * CHANCE, strict=True)
        for i, (heavy_on, thief_on) in enumerate(rates):
            heavy.update(_answer(bool(heavy_on)))
            alerted = alerted or heavy.statistics()["boundary"] > threshold
            if first is None:
                thief.update(_answer(bool(thief_on)))
                if thief.statistics()["boundary"] > threshold:
                    first = i
        crept += alerted
        caught.append(first)
    assert crept <= 5, crept
    assert all(q is not None and q < 700 for q in caught), caught
    assert float(np.median(np.array(caught, dtype=float))) < 300, caught
