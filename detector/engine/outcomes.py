"""What the engine says about a client: risk updates and alerts.

Plain values, so that every adapter (replay report, database, Kafka alerts topic,
webhooks) can store or send them without knowing the engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

#: MITRE ATLAS technique every extraction alert carries.
ATLAS_TECHNIQUE = "AML.T0024.002"
ATLAS_TECHNIQUE_NAME = "Extract AI Model"
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(slots=True)
class RiskUpdate:
    """The client's risk after one of its events (``queries`` valid events so far).

    Treat it as immutable; it is not frozen only because one is made per event and a
    frozen dataclass costs several times more to construct."""

    client_id: str
    model_id: str
    ts: float
    queries: int
    risk: float
    reasons: tuple[str, ...] = ()
    features: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


@dataclass(frozen=True, slots=True)
class Alert:
    """An extraction alert. ``alert_id`` is deterministic: replaying the same events
    yields the same id, so stores and webhooks can drop doubles."""

    alert_id: str
    client_id: str
    model_id: str
    ts: float
    queries: int
    risk: float
    severity: str
    reasons: tuple[str, ...]
    features: dict[str, float]
    technique: str = ATLAS_TECHNIQUE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


@dataclass(slots=True)
class Outcome:
    """What one event changed: the client's risk, maybe an alert opened or closed.
    (Not frozen, like RiskUpdate: one is made per event.)"""

    update: RiskUpdate
    alert: Alert | None = None
    closed_alert_id: str | None = None


def alert_id_for(client_id: str, model_id: str, ordinal: int) -> str:
    """Stable id of a client's ``ordinal``-th alert on a model.

    >>> alert_id_for("acct-1", "digits-v1", 1) == alert_id_for("acct-1", "digits-v1", 1)
    True
    """
    digest = hashlib.sha256(f"{model_id}\x00{client_id}\x00{ordinal}".encode()).hexdigest()
    return f"al_{digest[:24]}"


def severity_for(risk: float) -> str:
    """Map a risk in [0, 1] to a severity name.

    >>> [severity_for(r) for r in (0.5, 0.85, 0.95, 0.995)]
    ['low', 'medium', 'high', 'critical']
    """
    if risk >= 0.99:
        return "critical"
    if risk >= 0.93:
        return "high"
    if risk >= 0.8:
        return "medium"
    return "low"
