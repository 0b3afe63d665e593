"""Groups of accounts: one theft dealt over many small accounts, and an honest organisation.

* ``campaign`` — one JbDA thief (natural seeds, then rounds of sign steps) whose queries are
  dealt round-robin to ``accounts`` accounts, each on its own session timing, so that every
  account stays under the ``min_queries`` an alert needs (30) and its own perturbation
  chain is broken: each query's parent went to another account.
* ``organisation`` — a large customer with many specialised accounts under one
  ``meta.org`` (one team per digit class): together they cover the input space in
  complementary parts, from one address range and one user agent, and none of it is theft.
"""

from __future__ import annotations

import numpy as np

from querywatch.detector.simulate.attackers import jacobian_augmentation
from querywatch.detector.simulate.traffic import Traffic, noisy, scaled_count, session_times
from querywatch.detector.simulate.victim import VictimModel


def campaign(
    rng: np.random.Generator, victim: VictimModel, span: float, scale: float, accounts: int
) -> list[Traffic]:
    """A JbDA thief's queries dealt round-robin over ``accounts`` accounts (campaign order
    kept inside each), every account on its own sessions."""
    theft = jacobian_augmentation(rng, victim, span, max(scale, 29 * accounts / 600))
    order = np.argsort(theft.times, kind="stable")
    inputs = theft.inputs[order][: 29 * accounts]
    parts = []
    for a in range(accounts):
        mine = inputs[a::accounts]
        times = session_times(
            rng, len(mine), span=span, sessions=int(rng.integers(1, 3)), gap=rng.uniform(5, 20)
        )
        parts.append(Traffic(np.sort(times), mine))
    return parts


def organisation(
    rng: np.random.Generator, victim: VictimModel, span: float, scale: float, accounts: int
) -> list[Traffic]:
    """``accounts`` specialised teams of one organisation, team k on digit class k mod 10."""
    parts = []
    for a in range(accounts):
        members = np.flatnonzero(victim.targets == a % victim.classes)
        n = scaled_count(rng, 100, 400, scale)
        inputs = noisy(rng, victim.natural[rng.choice(members, size=n)], rng.uniform(0.01, 0.04))
        times = session_times(rng, n, span=span, sessions=int(rng.integers(2, 6)), gap=rng.uniform(3.0, 20.0))
        parts.append(Traffic(times, inputs))
    return parts
