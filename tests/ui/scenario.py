"""A small, readable story for the dashboard: benign clients and one model thief.

The thief's features climb over a few hundred queries until its risk crosses the alert
threshold and an alert opens; benign clients stay flat. The values are the engine's own
types (``RiskUpdate``, ``Alert``), stored through the real storage functions.
"""

from __future__ import annotations

import math

from querywatch.detector.engine.outcomes import Outcome, RiskUpdate
from tests.outcomes import first_alert, opening

MODEL = "digits-v1"
ATTACKER = "acct-7f3a9c"
BENIGN = tuple(f"acct-{n:04d}" for n in (1042, 1187, 2210, 3305, 4021, 5150))
START = 1_790_000_000.0  # 2026-09-21, event time
ALERT_RISK = 0.8


def _attacker_features(progress: float) -> dict[str, float]:
    return {
        "coverage_ratio": 1.0 + 2.6 * progress,
        "ood_share": 0.03 + 0.58 * progress,
        "distance_stat": 0.4 + 11.0 * progress**1.5,
        "class_entropy": 2.45 + 0.85 * progress,
        "rate_per_hour": 60 + 840 * progress,
        "near_duplicate_share": 0.02 + 0.4 * progress,
        "extraction": attacker_extraction(progress),
    }


def attacker_extraction(progress: float) -> float:
    """The thief's extraction estimate: how much of the model its queries already hold (three
    decimals: what a chart's legend shows)."""
    return round(0.1 + 0.75 * progress, 3)


def _attacker_reasons(features: dict[str, float], queries: int) -> tuple[str, ...]:
    return (
        f"Visited {features['coverage_ratio']:.1f}x the input cells a benign client reaches "
        f"after {queries} queries",
        f"{features['ood_share']:.0%} of queries are out of the model's input distribution",
        f"Predicted classes are spread evenly ({features['class_entropy']:.2f} bits of entropy)",
    )


def attacker_story(steps: int = 40, queries_per_step: int = 12) -> list[Outcome]:
    """The thief: risk follows a logistic curve and crosses ``ALERT_RISK`` once."""
    outcomes: list[Outcome] = []
    opened = False
    for step in range(1, steps + 1):
        progress = step / steps
        queries = step * queries_per_step
        risk = round(1 / (1 + math.exp(-9 * (progress - 0.55))), 4)
        features = _attacker_features(progress)
        reasons = _attacker_reasons(features, queries) if risk >= 0.5 else ()
        update = RiskUpdate(ATTACKER, MODEL, START + step * 240.0, queries, risk, reasons, features)
        alert = None
        if risk >= ALERT_RISK and not opened:
            opened = True
            alert = first_alert(update)
        outcomes.append(opening(update, alert))
    return outcomes


def benign_story(client_id: str, index: int, steps: int = 10) -> list[Outcome]:
    """An ordinary user: flat, low risk, features near the benign expectation."""
    outcomes = []
    for step in range(1, steps + 1):
        wobble = 0.03 * math.sin(step + index)
        features = {
            "coverage_ratio": 0.95 + wobble,
            "ood_share": 0.02 + wobble / 3,
            "distance_stat": 0.5 + wobble,
            "class_entropy": 2.9 + wobble,
            "rate_per_hour": 20.0 + 5 * index,
            "extraction": benign_extraction(index),
        }
        risk = round(0.04 + 0.02 * index + wobble / 3, 4)
        update = RiskUpdate(client_id, MODEL, START + step * 900.0 + index, step * 7, risk, (), features)
        outcomes.append(opening(update))
    return outcomes


def benign_extraction(index: int) -> float:
    """An ordinary user's extraction estimate: natural queries teach a copy a lot (0.6-0.85)."""
    return round(0.6 + 0.05 * index, 3)


def full_story() -> list[Outcome]:
    """Every client's outcomes, in event-time order."""
    outcomes = attacker_story()
    for index, client_id in enumerate(BENIGN):
        outcomes += benign_story(client_id, index)
    return sorted(outcomes, key=lambda o: o.update.ts)


def alert_id_of(outcomes: list[Outcome]) -> str:
    """The id of the alert ``outcomes`` open (the engine's: ``alert_id_for`` at its time)."""
    return next(o.event.alert.alert_id for o in outcomes if o.event is not None)


def late_alert(client_id: str) -> Outcome:
    """A benign client that suddenly looks like a thief (to show an alert arriving live)."""
    features = _attacker_features(0.9)
    reasons = _attacker_reasons(features, 900)
    update = RiskUpdate(client_id, MODEL, START + 86_400.0, 900, 0.86, reasons, features)
    return opening(update, first_alert(update))


def crowd(n: int, *, prefix: str = "crowd") -> list[Outcome]:
    """``n`` quiet clients with distinct low risks (one outcome each)."""
    return [
        opening(RiskUpdate(f"{prefix}-{i:06d}", MODEL, START + i, 5, round(0.3 * i / max(n, 1), 6), (), {}))
        for i in range(n)
    ]
