"""The OpenAPI document describes the outgoing webhooks, in the very shape the channels send."""

from __future__ import annotations

from querywatch.detector.adapters.api.app import create_app
from querywatch.detector.adapters.api.webhook_docs import AlertEventV1
from querywatch.detector.config import Settings
from querywatch.detector.engine.outcomes import ALERT_OPENED, Alert, AlertEvent


def test_the_openapi_document_lists_the_alert_events_and_notices() -> None:
    doc = create_app(Settings()).openapi()
    assert sorted(doc["webhooks"]) == [
        "alert.closed",
        "alert.opened",
        "alert.updated",
        "monitor.digest",
        "silence.created",
    ]
    body = doc["webhooks"]["alert.updated"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/StandardWebhookBody")


def test_the_documented_fields_are_the_fields_sent() -> None:
    alert = Alert("al_1", "acct-1", "m", 0.0, 40, 0.97, "high", ("r",), {"f": 1.0}, peak_risk=0.97)
    sent = AlertEvent(ALERT_OPENED, 1, 0.0, alert).to_v1(detection_time="1970-01-01T00:00:01Z")
    assert set(AlertEventV1.model_fields) == set(sent) | {"links"}
    AlertEventV1.model_validate({**sent, "links": {"alert": "http://qw/v1/alerts/al_1"}})
