"""What the engine says about a client: risk updates and alert events (alert schema v1).

Plain values, so that every adapter (replay report, database, Kafka alerts topic,
webhooks, SIEM renderers) can store or send them without knowing the engine. This module
is *the* alert schema: an alert is one incident for one subject (a client, or a campaign of
clients) on one model, from ``alert.opened`` through ``alert.updated`` to ``alert.closed``;
every event carries the alert as of that event and a per-alert ``sequence`` (1, 2, ...), so
a receiver can drop an event older than one it already has. The README's *Alert schema
(version 1)* lists the fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

#: MITRE ATLAS technique every extraction alert carries.
ATLAS_TECHNIQUE = "AML.T0024.002"
ATLAS_TECHNIQUE_NAME = "Extract AI Model"
SEVERITIES = ("low", "medium", "high", "critical")
#: Version of the alert schema below; bumped on any incompatible change.
ALERT_SCHEMA_VERSION = 1
ALERT_KINDS = ("client", "campaign")
ALERT_OPENED, ALERT_UPDATED, ALERT_CLOSED = "alert.opened", "alert.updated", "alert.closed"
EVENT_TYPES = (ALERT_OPENED, ALERT_UPDATED, ALERT_CLOSED)
#: What the alert channels hear besides alert events (``adapters.db.notices``).
SILENCE_CREATED, MONITOR_DIGEST = "silence.created", "monitor.digest"
NOTICE_TYPES = (MONITOR_DIGEST, SILENCE_CREATED)
#: Lower edge of each severity band; a severity drops only this far below its edge (hysteresis).
SEVERITY_FLOORS = {"critical": 0.99, "high": 0.93, "medium": 0.8, "low": 0.0}
SEVERITY_HYSTERESIS = 0.03


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
    """An extraction alert as of one of its events. ``alert_id`` is deterministic:
    replaying the same events yields the same id, so stores and webhooks can drop doubles.

    ``client_id`` is the subject's id (a client, or a campaign when ``kind`` is
    ``campaign``); ``ts`` is the event time the alert opened; ``risk``, ``severity`` and
    ``reasons`` are current as of the event; ``extraction`` is the estimated fidelity (0-1)
    of a copy built from the answers so far, when a detector provides one."""

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
    kind: str = "client"
    peak_risk: float = 0.0
    extraction: float | None = None
    source_ips: tuple[str, ...] = ()
    user_agents: tuple[str, ...] = ()
    closed_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("reasons", "source_ips", "user_agents"):
            d[name] = list(d[name])
        return d


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One step in an alert's life: ``type`` is one of ``EVENT_TYPES``, ``sequence`` counts
    the alert's events from 1, ``ts`` is the event time of the query that caused it, and
    ``why`` says why the engine closed it (the stored resolution's note)."""

    type: str
    sequence: int
    ts: float
    alert: Alert
    why: str = ""

    def to_v1(self, *, detection_time: str | None = None, decision: str | None = None) -> dict[str, Any]:
        """The event in alert schema v1, the shape of every channel (the README's *Alert schema
        (version 1)*); the adapters add what the engine cannot know (detection time, decision, event id).

        >>> a = Alert("al_1", "acct-1", "m", 0.0, 40, 0.97, "high", ("r",), {"f": 1.0}, peak_risk=0.97)
        >>> v1 = AlertEvent(ALERT_OPENED, 1, 0.0, a).to_v1()
        >>> v1["type"], v1["subject_id"], v1["opened_at"], v1["event_time"], v1["technique_name"]
        ('alert.opened', 'acct-1', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z', 'Extract AI Model')
        """
        a = self.alert
        return {
            "schema_version": ALERT_SCHEMA_VERSION,
            "type": self.type,
            "sequence": self.sequence,
            "event_id": None,
            "event_time": iso_time(self.ts),
            "detection_time": detection_time,
            "alert_id": a.alert_id,
            "kind": a.kind,
            "subject_id": a.client_id,
            "client_id": a.client_id if a.kind == "client" else None,
            "model_id": a.model_id,
            "state": "resolved" if self.type == ALERT_CLOSED else "open",
            "opened_at": iso_time(a.ts),
            "closed_at": None if a.closed_ts is None else iso_time(a.closed_ts),
            "queries": a.queries,
            "risk": a.risk,
            "peak_risk": max(a.peak_risk, a.risk),
            "severity": a.severity,
            "decision": decision,
            "extraction": a.extraction,
            "reasons": list(a.reasons),
            "evidence": dict(a.features),
            "source_ips": list(a.source_ips),
            "user_agents": list(a.user_agents),
            "technique": a.technique,
            "technique_name": ATLAS_TECHNIQUE_NAME if a.technique == ATLAS_TECHNIQUE else a.technique,
            "silenced_by": None,
        }


def iso_time(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with a ``Z`` (microseconds only when there are some).

    >>> iso_time(1.5)
    '1970-01-01T00:00:01.500000Z'
    """
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Outcome:
    """What one event changed: the client's risk, maybe an alert event.
    (Not frozen, like RiskUpdate: one is made per event.)"""

    update: RiskUpdate
    event: AlertEvent | None = None

    @property
    def alert(self) -> Alert | None:
        """The alert this event opened, if it opened one."""
        event = self.event
        return event.alert if event is not None and event.type == ALERT_OPENED else None

    @property
    def closed_alert_id(self) -> str | None:
        """The alert this event closed, if it closed one."""
        event = self.event
        return event.alert.alert_id if event is not None and event.type == ALERT_CLOSED else None


def alert_id_for(client_id: str, model_id: str, ordinal: int, opened_ts: float) -> str:
    """Stable id of a client's ``ordinal``-th alert on a model, opened at event time
    ``opened_ts``: a replay or a restart opens it again under the same id (stored once).
    The time is part of it because the count is not durable: a client evicted while idle
    starts counting again, and its next alert would otherwise take its first one's id.

    >>> alert_id_for("acct-1", "digits-v1", 1, 5.0) == alert_id_for("acct-1", "digits-v1", 1, 5.0)
    True
    >>> alert_id_for("acct-1", "digits-v1", 1, 5.0) == alert_id_for("acct-1", "digits-v1", 1, 9.0)
    False
    """
    digest = hashlib.sha256(
        f"{model_id}\x00{client_id}\x00{ordinal}\x00{float(opened_ts)!r}".encode()
    ).hexdigest()
    return f"al_{digest[:24]}"


def severity_for(risk: float, current: str | None = None) -> str:
    """Map a risk in [0, 1] to a severity name; with the ``current`` severity, a lower one
    only once risk fell ``SEVERITY_HYSTERESIS`` below the current band (no flapping).

    >>> [severity_for(r) for r in (0.5, 0.85, 0.95, 0.995)]
    ['low', 'medium', 'high', 'critical']
    >>> severity_for(0.92, "high"), severity_for(0.89, "high"), severity_for(0.999, "high")
    ('high', 'medium', 'critical')
    """
    for name in ("critical", "high", "medium"):
        if risk >= SEVERITY_FLOORS[name]:
            fresh = name
            break
    else:
        fresh = "low"
    if (
        current in SEVERITY_FLOORS
        and SEVERITIES.index(fresh) < SEVERITIES.index(current)
        and risk >= SEVERITY_FLOORS[current] - SEVERITY_HYSTERESIS
    ):
        return current
    return fresh
