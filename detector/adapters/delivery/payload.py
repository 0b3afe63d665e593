"""The bytes sent for one alert event (or notice: a silence announcement, a monitor digest),
per endpoint kind.

* ``standard`` — Standard Webhooks: ``{"type", "timestamp", "data"}`` where ``data`` is the
  v1 alert event (``adapters.db.alert_schema``) plus links;
* ``pagerduty`` — PagerDuty Events API v2 (``delivery.pagerduty``);
* ``slack`` — a Slack incoming-webhook message (``delivery.slack``).

PagerDuty endpoints get no notices (``adapters.db.notices``): a notice is no incident.

A body depends only on the event, never on the attempt, so that every retry of one
delivery carries the same bytes (and the same ``webhook-id``); the send time travels in the
signed ``webhook-timestamp`` header instead.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from querywatch.detector.adapters.delivery import pagerduty, slack
from querywatch.detector.engine.outcomes import MONITOR_DIGEST, NOTICE_TYPES, SILENCE_CREATED

KINDS = ("standard", "pagerduty", "slack")


def links(event: dict[str, Any], public_url: str) -> dict[str, str]:
    base = public_url.rstrip("/")
    if event["type"] == SILENCE_CREATED:
        return {"silences": f"{base}/v1/silences", "dashboard": f"{base}/ui/#/silences"}
    if event["type"] == MONITOR_DIGEST:
        return {"alerts": f"{base}/v1/alerts?model={quote(event['model_id'], safe='')}"}
    out = {"alert": f"{base}/v1/alerts/{quote(event['alert_id'], safe='')}"}
    if event.get("client_id"):
        out["client"] = f"{base}/v1/clients/{quote(event['client_id'], safe='')}"
    return out


def standard_body(event: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The Standard Webhooks body: the event's type and time, the event itself as ``data``."""
    return {
        "type": event["type"],
        "timestamp": event["event_time"],
        "data": {**event, "links": links(event, public_url)},
    }


def render(*, kind: str, event: dict[str, Any], public_url: str, routing_key: str | None = None) -> bytes:
    """The exact bytes that are signed and sent (compact, UTF-8, keys sorted for stability).

    >>> event = {"type": "alert.opened", "event_time": "2026-01-01T00:00:00Z", "alert_id": "al_1",
    ...          "client_id": "acct 7", "sequence": 1}
    >>> body = json.loads(render(kind="standard", event=event, public_url="http://qw:8000/"))
    >>> body["type"], body["timestamp"], body["data"]["links"]["client"]
    ('alert.opened', '2026-01-01T00:00:00Z', 'http://qw:8000/v1/clients/acct%207')
    """
    if kind == "pagerduty":
        body = pagerduty.event_body(event, routing_key or "", links(event, public_url))
    elif kind == "slack" and event["type"] in NOTICE_TYPES:
        body = slack.notice(event, links(event, public_url))
    elif kind == "slack":
        body = slack.message(event, links(event, public_url))
    else:
        body = standard_body(event, public_url)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
