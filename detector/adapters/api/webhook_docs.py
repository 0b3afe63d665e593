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


class SilenceV1(BaseModel):
    id: int
    matchers: dict[str, str] = Field(
        description="The set ones of client_id, model_id, campaign_id, reason_contains."
    )
    comment: str
    created_by: str
    expires_at: str


class SilenceCreatedV1(BaseModel):
    """A silence was made: matching alerts page nobody until it expires or is removed."""

    type: Literal["silence.created"]
    event_time: str
    silence: SilenceV1
    links: dict[str, str]


class DigestAlertV1(BaseModel):
    alert_id: str
    kind: Literal["client", "campaign"]
    subject_id: str
    severity: Literal["low", "medium", "high", "critical"]
    peak_risk: float
    opened_at: str
    state: str
    reasons: list[str] = Field(description="Its first three reasons.")


class MonitorDigestV1(BaseModel):
    """A monitor-mode model's day: the alerts that would have paged (riskiest first, at most 100)."""

    type: Literal["monitor.digest"]
    event_time: str
    model_id: str
    day: str = Field(description="The UTC day covered, YYYY-MM-DD.")
    start: str = Field(
        alias="from", description="Start of the time covered (monitor mode began, or the day)."
    )
    to: str
    alerts_count: int = Field(description="Every alert of the period, also those not listed.")
    alerts: list[DigestAlertV1]
    links: dict[str, str]


class SilenceCreatedBody(BaseModel):
    """Standard Webhooks body of a silence announcement (not sent to PagerDuty)."""

    type: Literal["silence.created"]
    timestamp: str
    data: SilenceCreatedV1


class MonitorDigestBody(BaseModel):
    """Standard Webhooks body of a monitor-mode digest (not sent to PagerDuty)."""

    type: Literal["monitor.digest"]
    timestamp: str
    data: MonitorDigestV1


def document_webhooks(app: FastAPI) -> None:
    for event, what in (
        ("alert.opened", "An alert opened: risk reached the alert level."),
        ("alert.updated", "An open alert's severity changed or its risk moved (at most once a minute)."),
        (
            "alert.closed",
            "An alert closed: risk stayed below the clear level for the dwell time, or its campaign ended.",
        ),
    ):

        def receive(body: StandardWebhookBody) -> None:
            """Answer 2xx quickly; verify the Standard Webhooks signature first."""

        app.webhooks.post(event, summary=what, description=what)(receive)

    def silence_created(body: SilenceCreatedBody) -> None:
        """Answer 2xx quickly; verify the Standard Webhooks signature first."""

    def monitor_digest(body: MonitorDigestBody) -> None:
        """Answer 2xx quickly; verify the Standard Webhooks signature first."""

    what = "A silence was made (announced to standard and Slack endpoints)."
    app.webhooks.post("silence.created", summary=what, description=what)(silence_created)
    what = "Once a day per model in monitor mode: the alerts that would have paged the day before."
    app.webhooks.post("monitor.digest", summary=what, description=what)(monitor_digest)
