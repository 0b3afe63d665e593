"""Engine outcomes for tests: a client's first alert and the outcome that opens it.

Several suites store an opening alert through the real sinks; building it one way here keeps
their alert ids and fields the engine's (``alert_id_for`` of sequence 1 at the update's time, its own
numbers) instead of a copy per suite that could drift.
"""

from __future__ import annotations

from querywatch.detector.engine.outcomes import (
    ALERT_OPENED,
    Alert,
    AlertEvent,
    Outcome,
    RiskUpdate,
    alert_id_for,
    severity_for,
)


def first_alert(update: RiskUpdate, *, severity: str | None = None) -> Alert:
    """The client's first alert on the model, opened by ``update`` (severity from its risk
    unless given)."""
    return Alert(
        alert_id=alert_id_for(update.client_id, update.model_id, 1, update.ts),
        client_id=update.client_id,
        model_id=update.model_id,
        ts=update.ts,
        queries=update.queries,
        risk=update.risk,
        severity=severity_for(update.risk) if severity is None else severity,
        reasons=update.reasons,
        features=update.features,
    )


def opening(update: RiskUpdate, alert: Alert | None = None) -> Outcome:
    """``update`` with the event opening ``alert`` (or, without one, no event), as
    ``Detector.process`` returns it."""
    return Outcome(update, None if alert is None else AlertEvent(ALERT_OPENED, 1, update.ts, alert))
