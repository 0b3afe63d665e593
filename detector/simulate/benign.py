"""Benign clients, including the ones naive detectors mistake for thieves.

Real traffic is not a stream of tidy natural samples: a QA job replays the same test set,
retry-happy clients resend identical requests within seconds, heavy users send thousands of
queries, and some users' inputs drift as their scanner ages. Each kind is a function
``(rng, victim, span, scale) -> Traffic``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from querywatch.detector.simulate.traffic import Traffic, noisy, scaled_count, session_times
from querywatch.detector.simulate.victim import VictimModel

BenignKind = Callable[[np.random.Generator, VictimModel, float, float], Traffic]


def _natural_draws(rng: np.random.Generator, victim: VictimModel, n: int, concentration: float) -> np.ndarray:
    """``n`` natural inputs with a per-user class preference (Dirichlet with ``concentration``)."""
    weights = rng.dirichlet(np.full(victim.classes, concentration))
    classes = rng.choice(victim.classes, size=n, p=weights)
    picks = np.empty(n, dtype=np.int64)
    for digit in np.unique(classes):
        members = np.flatnonzero(victim.targets == digit)
        where = classes == digit
        picks[where] = rng.choice(members, size=int(where.sum()))
    return victim.natural[picks]


def ordinary(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """A person using an app: tens to hundreds of natural digits in a few sessions."""
    n = scaled_count(rng, 40, 300, scale)
    inputs = noisy(rng, _natural_draws(rng, victim, n, 0.6), rng.uniform(0.01, 0.05))
    times = session_times(rng, n, span=span, sessions=int(rng.integers(1, 6)), gap=rng.uniform(5.0, 30.0))
    return Traffic(times, inputs)


def heavy(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """A back-office integration: thousands of natural queries spread over the day."""
    n = scaled_count(rng, 2000, 4000, scale)
    inputs = noisy(rng, _natural_draws(rng, victim, n, 5.0), rng.uniform(0.01, 0.04))
    times = session_times(rng, n, span=span, sessions=int(rng.integers(8, 16)), gap=rng.uniform(2.0, 8.0))
    return Traffic(times, inputs)


def qa_replay(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """A QA job replaying one fixed test set, unchanged, a few times a day."""
    size = min(len(victim.holdout), max(50, int(200 * scale)))
    first = int(rng.integers(0, len(victim.holdout) - size + 1))
    test_set = victim.holdout[first : first + size]
    replays = int(rng.integers(2, 5))
    parts = []
    for k in range(replays):
        start = span * (k + rng.uniform(0.1, 0.6)) / replays
        parts.append(Traffic(start + np.cumsum(rng.exponential(0.2, size=size)), test_set.copy()))
    return Traffic.concat(parts)


def retry_happy(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """An ordinary user behind a flaky client: a third of requests resent identically within seconds."""
    base = ordinary(rng, victim, span, scale)
    resends = np.where(rng.random(len(base)) < 0.35, rng.integers(1, 4, size=len(base)), 0)
    rows = np.repeat(np.arange(len(base)), resends)
    delays = rng.uniform(0.5, 8.0, size=len(rows))
    return Traffic(
        np.concatenate([base.times, base.times[rows] + delays]),
        np.concatenate([base.inputs, base.inputs[rows]]),
    )


def drifting(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """A user whose scans get noisier and fainter over the day (an ageing scanner)."""
    n = scaled_count(rng, 100, 400, scale)
    times = np.sort(
        session_times(rng, n, span=span, sessions=int(rng.integers(3, 8)), gap=rng.uniform(5.0, 20.0))
    )
    progress = np.linspace(0.0, 1.0, n)
    faded = _natural_draws(rng, victim, n, 1.0) * (1.0 - 0.25 * progress)[:, None]
    return Traffic(times, noisy(rng, faded, 0.02 + 0.13 * progress))


#: Benign kinds by name (the name is the ``family`` in the ground truth).
BENIGN_KINDS: dict[str, BenignKind] = {
    "ordinary": ordinary,
    "heavy": heavy,
    "qa_replay": qa_replay,
    "retry": retry_happy,
    "drift": drifting,
}


def benign_mix(n: int) -> list[str]:
    """Kinds of ``n`` benign clients: mostly ordinary users, and every hard kind once n >= 5.

    >>> benign_mix(5)
    ['heavy', 'qa_replay', 'retry', 'drift', 'ordinary']
    >>> benign_mix(40).count('ordinary')
    28
    """
    shares = {"heavy": 0.05, "qa_replay": 0.05, "retry": 0.1, "drift": 0.1}
    if n < len(shares) + 1:
        return ["ordinary", "retry", "drift", "qa_replay", "heavy"][:n]
    kinds = [kind for kind, share in shares.items() for _ in range(max(1, round(share * n)))]
    return kinds + ["ordinary"] * (n - len(kinds))
