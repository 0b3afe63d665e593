"""Alert schema v1 as JSON: the one shape the API, webhooks, the alerts topic and the SIEM
renderers start from (the README's *Alert schema (version 1)* lists the fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from querywatch.detector.adapters.db.tables import AlertEventRow, AlertRow
from querywatch.detector.engine.outcomes import ALERT_SCHEMA_VERSION, ATLAS_TECHNIQUE, ATLAS_TECHNIQUE_NAME

TECHNIQUE_NAMES = {ATLAS_TECHNIQUE: ATLAS_TECHNIQUE_NAME}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def event_body(event: AlertEventRow, alert: dict[str, Any]) -> dict[str, Any]:
    """The v1 alert event as every channel carries it (the README's *Alert schema (version 1)*):
    the event's own fields, then ``alert`` (``alert_fields`` of the alert as of the event)."""
    return {
        "schema_version": ALERT_SCHEMA_VERSION,
        "type": event.type,
        "sequence": event.sequence,
        "event_id": event.id,
        "event_time": _iso(event.event_at),
        "detection_time": _iso(event.detected_at),
        **alert,
    }


def alert_fields(row: AlertRow) -> dict[str, Any]:
    """The alert's fields in schema v1 (current as of its latest event)."""
    return {
        "alert_id": row.alert_id,
        "kind": row.kind,
        "subject_id": row.client_id,
        "client_id": row.client_id if row.kind == "client" else None,
        "model_id": row.model_id,
        "state": row.state,
        "opened_at": _iso(row.opened_at),
        "closed_at": _iso(row.closed_by_engine_at),
        "queries": row.queries,
        "risk": row.risk,
        "peak_risk": row.peak_risk,
        "severity": row.severity,
        "decision": row.decision,
        "extraction": row.extraction,
        "reasons": list(row.reasons),
        "evidence": dict(row.features),
        "source_ips": list(row.source_ips),
        "user_agents": list(row.user_agents),
        "technique": row.technique,
        "technique_name": TECHNIQUE_NAMES.get(row.technique, row.technique),
        "silenced_by": row.silenced_by,
    }


def stored_body(row: AlertRow, event: AlertEventRow) -> dict[str, Any]:
    """An event's body; one migrated from before schema v1 (no body) is rendered from its alert."""
    return event.body if event.body is not None else event_body(event, alert_fields(row))
