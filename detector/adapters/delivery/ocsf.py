"""An alert event as an OCSF Detection Finding (class 2004, category 2 Findings).

``activity_id`` 1 Create / 2 Update / 3 Close for opened / updated / closed;
``finding_info.uid`` is the alert id; ``status_id`` 1 New, 3 Suppressed (a silence), 4
Resolved; ``severity_id`` 2-5 for low-critical; ``risk_score`` 0-100; MITRE ATLAS in
``finding_info.attacks``; the model as a resource; the client as ``actor.user`` and observable.
Validated offline against the OCSF models of the ``py-ocsf-models`` package in the tests.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

OCSF_VERSION = "1.5.0"
CLASS_UID, CATEGORY_UID = 2004, 2
ACTIVITY = {"alert.opened": (1, "Create"), "alert.updated": (2, "Update"), "alert.closed": (3, "Close")}
SEVERITY = {"low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High"), "critical": (5, "Critical")}


def _ms(iso: str | None) -> int | None:
    return None if iso is None else int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def detection_finding(event: dict[str, Any]) -> dict[str, Any]:
    """The Detection Finding of one v1 alert event (``adapters.db.alert_schema.event_body``)."""
    activity_id, activity = ACTIVITY[event["type"]]
    severity_id, severity = SEVERITY.get(event["severity"], (99, "Other"))
    if event["type"] == "alert.closed":
        status_id, status = 4, "Resolved"
    elif event.get("silenced_by") is not None:
        status_id, status = 3, "Suppressed"
    else:
        status_id, status = 1, "New"
    technique = {"uid": event["technique"], "name": event.get("technique_name", event["technique"])}
    subject = f"{event.get('kind', 'client')} {event['subject_id']}"
    finding: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": CLASS_UID * 100 + activity_id,
        "time": _ms(event.get("detection_time") or event["event_time"]),
        "start_time": _ms(event.get("opened_at")),
        "end_time": _ms(event["event_time"]),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "risk_score": round(100 * float(event["risk"])),
        "message": "; ".join(event.get("reasons") or []) or "model extraction suspected",
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "querywatch", "vendor_name": "querywatch"},
            "uid": str(event.get("event_id")),
            "sequence": event["sequence"],
        },
        "finding_info": {
            "uid": event["alert_id"],
            "title": f"Model extraction by {subject} on {event['model_id']}",
            "types": ["model-extraction"],
            "attacks": [{"technique": technique, "version": "MITRE ATLAS"}],
        },
        "resources": [{"uid": event["model_id"], "name": event["model_id"], "type": "ML model"}],
        "unmapped": {"decision": event.get("decision"), "extraction": event.get("extraction")},
    }
    if event.get("client_id"):
        finding["actor"] = {"user": {"uid": event["client_id"]}}
        finding["observables"] = [{"name": "actor.user.uid", "type_id": 21, "value": event["client_id"]}]
    return finding
