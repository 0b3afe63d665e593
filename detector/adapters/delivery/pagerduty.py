"""PagerDuty Events API v2: an alert is one incident, keyed by its ``dedup_key``.

``alert.opened`` and ``alert.updated`` are ``trigger`` events (PagerDuty folds triggers with
the same ``dedup_key`` into the open incident), ``alert.closed`` is ``resolve``. The outbox
never sends a trigger once a resolve of the same alert reached the endpoint (a late retry
would otherwise reopen a closed incident). The endpoint URL is the Events API's
``https://events.pagerduty.com/v2/enqueue`` (or a regional one); the integration's routing
key is stored with the endpoint. PagerDuty answers 202 with the ``dedup_key``; 400 means the
event is invalid (not retried), 429 asks to slow down (retried later).
"""

from __future__ import annotations

from typing import Any

#: PagerDuty's four severities for ours.
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}
#: Limit of ``payload.summary``.
SUMMARY_LIMIT = 1024


def summary(event: dict[str, Any]) -> str:
    """One line for the incident title.

    >>> summary({"severity": "high", "subject_id": "acct-1", "model_id": "digits-v1", "risk": 0.97,
    ...          "kind": "client", "reasons": ["boundary probing"]})
    'querywatch: model extraction by client acct-1 on digits-v1 (risk 0.97, high): boundary probing'
    """
    reason = event.get("reasons") or ["no reason recorded"]
    text = (
        f"querywatch: model extraction by {event.get('kind', 'client')} {event['subject_id']} on "
        f"{event['model_id']} (risk {event['risk']:.2f}, {event['severity']}): {reason[0]}"
    )
    return text[:SUMMARY_LIMIT]


def event_body(event: dict[str, Any], routing_key: str, links: dict[str, str]) -> dict[str, Any]:
    """The Events v2 body for one alert event.

    >>> e = {"type": "alert.closed", "alert_id": "al_1"}
    >>> event_body(e, "R0UTINGKEY", {})
    {'routing_key': 'R0UTINGKEY', 'event_action': 'resolve', 'dedup_key': 'al_1'}
    """
    if event["type"] == "alert.closed":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": event["alert_id"]}
    details = {
        name: event.get(name)
        for name in (
            "alert_id",
            "sequence",
            "client_id",
            "risk",
            "peak_risk",
            "decision",
            "extraction",
            "reasons",
            "source_ips",
            "user_agents",
            "technique",
            "detection_time",
        )
    }
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": event["alert_id"],
        "payload": {
            "summary": summary(event),
            "source": f"querywatch/{event['model_id']}",
            "severity": SEVERITY.get(event["severity"], "warning"),
            "timestamp": event["event_time"],
            "component": event["model_id"],
            "group": "model-extraction",
            "class": event.get("technique", "AML.T0024.002"),
            "custom_details": details,
        },
        "client": "querywatch",
        "client_url": links["alert"],
        "links": [{"href": href, "text": f"querywatch {name}"} for name, href in links.items()],
    }
