"""The JSON body of an alert webhook.

The body depends only on the alert, never on the attempt, so that every retry of one
delivery carries the same bytes (and the same ``webhook-id``); the send time travels in the
signed ``webhook-timestamp`` header instead.
"""

from __future__ import annotations

import json
from typing import Any, Protocol
from urllib.parse import quote

from querywatch.detector.engine.outcomes import ATLAS_TECHNIQUE, ATLAS_TECHNIQUE_NAME

EVENT_TYPE = "alert.opened"

_TECHNIQUE_NAMES = {ATLAS_TECHNIQUE: ATLAS_TECHNIQUE_NAME}


class AlertLike(Protocol):
    """What the body needs from an alert (``querywatch.detector.adapters.db.tables.AlertRow`` fits)."""

    alert_id: str
    client_id: str
    model_id: str
    queries: int
    risk: float
    severity: str
    technique: str
    reasons: list[Any]
    features: dict[str, Any]

    @property
    def opened_at(self) -> Any: ...


def alert_body(*, alert: AlertLike, public_url: str) -> dict[str, Any]:
    """The webhook body as a dict: Standard Webhooks' ``type`` / ``timestamp`` / ``data``."""
    base = public_url.rstrip("/")
    client_link = f"{base}/v1/clients/{quote(alert.client_id, safe='')}"
    return {
        "type": EVENT_TYPE,
        "timestamp": alert.opened_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "alert_id": alert.alert_id,
            "severity": alert.severity,
            "risk": alert.risk,
            "queries": alert.queries,
            "reasons": list(alert.reasons),
            "features": dict(alert.features),
            "client": {"client_id": alert.client_id, "link": client_link},
            "model_id": alert.model_id,
            "technique": {
                "id": alert.technique,
                "name": _TECHNIQUE_NAMES.get(alert.technique, alert.technique),
                "framework": "MITRE ATLAS",
            },
            "links": {
                "alert": f"{base}/v1/alerts/{quote(alert.alert_id, safe='')}",
                "client": client_link,
            },
        },
    }


def alert_payload(*, alert: AlertLike, public_url: str) -> bytes:
    """The exact bytes that are signed and sent (compact, UTF-8, keys sorted for stability).

    >>> from datetime import datetime, UTC
    >>> from types import SimpleNamespace
    >>> a = SimpleNamespace(alert_id="al_1", client_id="acct 7", model_id="m", queries=40, risk=0.95,
    ...     severity="high", technique="AML.T0024.002", reasons=["coverage"], features={},
    ...     opened_at=datetime(2026, 1, 1, tzinfo=UTC))
    >>> body = json.loads(alert_payload(alert=a, public_url="http://qw:8000/"))
    >>> body["data"]["client"]["link"], body["data"]["technique"]["name"], body["timestamp"]
    ('http://qw:8000/v1/clients/acct%207', 'Extract AI Model', '2026-01-01T00:00:00Z')
    """
    body = alert_body(alert=alert, public_url=public_url)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
