"""The outgoing webhooks in the OpenAPI document (its ``webhooks`` section): what a receiver
registered with ``POST /v1/webhooks`` gets, so it can generate a client from the document."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field


class AlertEventV1(BaseModel):
    """One alert event in alert schema v1 (README *Alert schema*)."""

    schema_version: Literal[1]
    type: Literal["alert.opened", "alert.updated", "alert.closed"]
    sequence: int = Field(description="The alert's event number: drop an event older than one you have.")
    event_id: int | None
    event_time: str
    detection_time: str | None
    alert_id: str
    kind: Literal["client", "campaign"]
    subject_id: str
    client_id: str | None
    model_id: str
    state: str
    opened_at: str
    closed_at: str | None
    queries: int
    risk: float
    peak_risk: float
    severity: Literal["low", "medium", "high", "critical"]
    decision: Literal["allow", "degrade", "block"] | None
    extraction: float | None
    reasons: list[str]
    evidence: dict[str, Any]
    source_ips: list[str]
    user_agents: list[str]
    technique: str
    technique_name: str
    silenced_by: int | None
    links: dict[str, str]


class StandardWebhookBody(BaseModel):
    """Standard Webhooks body; headers `webhook-id`, `webhook-timestamp`, `webhook-signature`."""

    type: Literal["alert.opened", "alert.updated", "alert.closed"]
    timestamp: str
    data: AlertEventV1


def document_webhooks(app: FastAPI) -> None:
    for event, what in (
        ("alert.opened", "An alert opened: risk reached the alert level."),
        ("alert.updated", "An open alert's severity changed or its risk moved (at most once a minute)."),
        ("alert.closed", "An alert closed: risk stayed below the clear level for the dwell time."),
    ):

        def receive(body: StandardWebhookBody) -> None:
            """Answer 2xx quickly; verify the Standard Webhooks signature first."""

        app.webhooks.post(event, summary=what, description=what)(receive)
