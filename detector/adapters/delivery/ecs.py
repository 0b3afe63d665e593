"""An alert event as Elastic Common Schema (ECS) fields: the structured log line written for
every alert event, which a log shipper (Filebeat, Fluent Bit, Vector) forwards to a SIEM as is.

Fields used, all from the ECS reference (checked against Elastic's field list of ECS 9.4.0,
pinned in ``tests/webhooks/ecs_fields.json``): ``@timestamp`` (detection time),
``event.kind`` (``alert``), ``event.category`` (``intrusion_detection``), ``event.type``
(``info``), ``event.action`` (the alert event type), ``event.id``, ``event.severity``
(21/47/73/99 as Elastic's detection rules use), ``event.risk_score`` (0-100),
``event.created``, ``event.start``, ``event.reason``, ``rule.id``, ``rule.name``,
``threat.framework``, ``threat.technique.id``, ``threat.technique.name``, ``user.id`` (the
client), ``source.ip``, ``user_agent.original`` (a client alert's latest: a campaign alert's
sources are its members' networks, which an ECS ``ip`` field refuses, and maybe hashed),
``labels`` (string values) and ``message``.
The log line's own ``ts``, ``level`` and ``logger`` keys are not ECS: drop or rename them in
the shipper (``@timestamp`` is set).

``AlertLogSink`` writes the line as an outcome sink (``pipeline.sinks``), once the
transaction that stored the event committed: a line is never logged for an event that was
rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from querywatch.detector.adapters.db.outcome_store import OutcomeTx
from querywatch.detector.engine.outcomes import Outcome

log = logging.getLogger("querywatch.alerts")

SEVERITY = {"low": 21, "medium": 47, "high": 73, "critical": 99}


def ecs_fields(event: dict[str, Any]) -> dict[str, Any]:
    """ECS fields of one v1 alert event (``adapters.db.alert_schema.event_body``).

    >>> e = {"type": "alert.opened", "event_id": 3, "severity": "high", "risk": 0.97, "alert_id": "al_1",
    ...      "subject_id": "acct-1", "client_id": "acct-1", "model_id": "m", "sequence": 1,
    ...      "event_time": "2026-01-01T00:00:00Z", "detection_time": "2026-01-01T00:00:01Z",
    ...      "reasons": ["boundary probing"], "technique": "AML.T0024.002",
    ...      "technique_name": "Extract AI Model",
    ...      "source_ips": ["203.0.113.7"], "user_agents": ["curl/8"], "decision": "block"}
    >>> f = ecs_fields(e)
    >>> f["event"]["severity"], f["threat"]["technique"]["id"], f["source"]["ip"], f["labels"]["decision"]
    (73, ['AML.T0024.002'], '203.0.113.7', 'block')
    """
    fields: dict[str, Any] = {
        "@timestamp": event.get("detection_time") or event.get("event_time"),
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["info"],
            "action": event["type"],
            "id": str(event.get("event_id")),
            "severity": SEVERITY.get(event["severity"], 47),
            "risk_score": round(100 * float(event["risk"]), 1),
            "created": event.get("detection_time"),
            "start": event.get("event_time"),
            "reason": "; ".join(event.get("reasons") or []),
        },
        "rule": {"id": event["technique"], "name": "querywatch model extraction"},
        "threat": {
            "framework": "MITRE ATLAS",
            "technique": {
                "id": [event["technique"]],
                "name": [event.get("technique_name", event["technique"])],
            },
        },
        "labels": {
            "alert_id": event["alert_id"],
            "model_id": event["model_id"],
            "sequence": str(event["sequence"]),
            "decision": str(event.get("decision")),
        },
    }
    if event.get("client_id"):  # a campaign alert has none: its sources are networks, perhaps hashed
        fields["user"] = {"id": event["client_id"]}
        if event.get("source_ips"):
            fields["source"] = {"ip": event["source_ips"][-1]}
        if event.get("user_agents"):
            fields["user_agent"] = {"original": event["user_agents"][-1]}
    return fields


class AlertLogSink:
    """One structured log line (``querywatch.alerts``, INFO) per stored alert event."""

    def write(self, outcomes: Sequence[Outcome], tx: OutcomeTx) -> None:
        """Nothing to write: the line waits for the commit."""

    def committed(self, tx: OutcomeTx) -> None:
        for stored in tx.saved.events:
            body = stored.event.body
            if body is None:
                continue
            log.info(
                "%s %s of %s on %s: risk %.2f, %s",
                body["type"],
                body["alert_id"],
                body["subject_id"],
                body["model_id"],
                body["risk"],
                body["severity"],
                extra=ecs_fields(body),
            )
