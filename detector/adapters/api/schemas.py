"""Request and response bodies of the API, with the examples the OpenAPI document shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from querywatch.detector.adapters.api.cursors import Page

ClientStatus = Literal["normal", "trusted", "blocked"]
AlertState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["low", "medium", "high", "critical"]
Action = Literal["allow", "degrade", "block"]

_CLIENT_EXAMPLE: dict[str, Any] = {
    "client_id": "acct-1042",
    "model_id": "digits-v1",
    "risk": 0.94,
    "reasons": [
        "41% of 5100 queries are small fixed-size steps from an earlier query (a perturbation chain, as "
        "in Jacobian or random-step augmentation; a benign client at most 5%)"
    ],
    "features": {"extraction": 0.81, "step_share": 0.41, "ood_share": 0.04, "coverage_ratio": 1.1},
    "queries": 5120,
    "first_seen": "2026-11-29T10:15:02Z",
    "last_seen": "2026-11-29T11:02:47Z",
    "status": "normal",
    "status_changed_by": None,
}
_ALERT_EXAMPLE: dict[str, Any] = {
    "alert_id": "al_3f9c2a7d1e5b4c6a8f0e2d1c",
    "client_id": "acct-1042",
    "model_id": "digits-v1",
    "opened_at": "2026-11-29T10:48:13Z",
    "queries": 3310,
    "risk": 0.93,
    "severity": "high",
    "technique": "AML.T0024.002",
    "reasons": [
        "96% of 3300 queries lie farther from the model's data than any reference input (synthetic or "
        "other-domain queries, however many natural ones surround them; a benign client at most 5%)"
    ],
    "features": {"extraction": 0.58, "far_share": 0.96, "ood_share": 0.98, "coverage_ratio": 6.1},
    "extraction": 0.58,
    "state": "open",
    "acknowledged_by": None,
    "acknowledged_at": None,
    "resolved_by": None,
    "resolved_at": None,
    "resolution_note": None,
    "false_positive": False,
    "closed_by_engine_at": None,
}


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ClientPublic(_Public):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_CLIENT_EXAMPLE]})

    client_id: str
    model_id: str = Field(description="Model of the client's latest query.")
    risk: float = Field(
        ge=0, le=1, description="Probability-like risk that the client is extracting the model."
    )
    reasons: list[str] = Field(description="Why the risk is what it is, for a human.")
    features: dict[str, Any] = Field(description="The behavioural features behind the risk.")
    queries: int = Field(description="Valid queries seen from this client.")
    first_seen: datetime = Field(description="Event time of the first query.")
    last_seen: datetime = Field(description="Event time of the latest query.")
    status: ClientStatus
    status_changed_by: str | None = None
    models: list[ClientModelPublic] = Field(
        default_factory=list,
        description="One entry per model the client queried (on `GET /v1/clients/{id}`); the fields "
        "above are those of its riskiest model.",
    )


class PendingStatusPublic(_Public):
    """A status set before the client's first event (``?unseen=true``): its first row takes it."""

    client_id: str
    status: ClientStatus
    status_changed_by: str
    pending: bool = Field(True, description="Always true: the client has not been seen yet.")


class ClientModelPublic(_Public):
    model_id: str
    risk: float
    reasons: list[str]
    features: dict[str, Any]
    queries: int
    first_seen: datetime
    last_seen: datetime


class ClientPage(Page[ClientPublic]):
    """Clients, riskiest first."""


class RiskPointPublic(_Public):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "ts": "2026-11-29T10:40:00Z",
                    "model_id": "digits-v1",
                    "queries": 3000,
                    "risk": 0.71,
                    "extraction": 0.64,
                    "features": {"extraction": 0.64, "coverage_ratio": 2.8},
                }
            ]
        },
    )

    ts: datetime
    model_id: str
    queries: int
    risk: float
    extraction: float | None = Field(
        None,
        description="Estimated agreement with the model (0-1) a copy trained on the client's queries "
        "and answers so far would reach; null where the model has no labelled reference or the point "
        "carries no feature snapshot.",
    )
    features: dict[str, Any]


class StatusChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"status": "blocked", "note": "confirmed scraper"}]}
    )

    status: ClientStatus
    note: str | None = Field(None, max_length=2000, description="Why; kept in the audit log.")


class DecisionPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "client_id": "acct-1042",
                    "action": "degrade",
                    "risk": 0.62,
                    "reasons": ["risk 0.62 >= degrade threshold 0.50"],
                    "output_precision": 1,
                    "mitigations": ["AML.M0002", "AML.M0004"],
                    "status": "normal",
                }
            ]
        }
    )

    client_id: str
    action: Action = Field(
        description="allow: serve normally; degrade: round scores (output_precision); block: refuse."
    )
    risk: float
    reasons: list[str]
    output_precision: int | None = Field(
        description="Decimals of scores to return when degraded; null otherwise."
    )
    mitigations: list[str] = Field(description="MITRE ATLAS mitigation ids the action applies.")
    status: ClientStatus
    models: list[ModelDecisionPublic] = Field(
        default_factory=list, description="Each model's decision; `action` is the strictest of them."
    )


class ModelDecisionPublic(BaseModel):
    model_id: str
    action: Action
    risk: float
    reasons: list[str]
    pages: bool = Field(description="Whether this model's alerts for the client are delivered.")
    silenced_by: int | None


class AlertPublic(_Public):
    """An alert as of its latest event (alert schema v1), with what analysts did about it."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_ALERT_EXAMPLE]})

    alert_id: str
    kind: Literal["client", "campaign"] = "client"
    client_id: str = Field(description="The subject: a client id, or a campaign id for a campaign alert.")
    model_id: str
    opened_at: datetime = Field(description="Event time at which the alert opened.")
    event_at: datetime | None = Field(None, description="Event time of the alert's latest event.")
    detected_at: datetime | None = Field(None, description="When querywatch stored the alert's opening.")
    sequence: int = Field(1, description="Number of the alert's latest event (1 = opened).")
    last_event_id: int | None = Field(None, description="Its id: the `after` cursor of a polling collector.")
    queries: int
    risk: float = Field(description="Current risk (as of the latest event).")
    peak_risk: float = 0.0
    severity: Severity = Field(description="Follows the risk while the alert is open.")
    decision: Action | None = Field(None, description="What the serving tier is told to do with the client.")
    extraction: float | None = Field(None, description="Estimated fidelity (0-1) of a copy, if estimated.")
    technique: str = Field(description="MITRE ATLAS technique id.")
    reasons: list[str]
    features: dict[str, Any] = Field(description="The evidence: behavioural features at the latest event.")
    source_ips: list[str] = Field(default_factory=list, description="Recent distinct source IPs (bounded).")
    user_agents: list[str] = Field(default_factory=list, description="Recent distinct user agents (bounded).")
    silenced_by: int | None = Field(None, description="The silence that kept it from paging, if any.")
    state: AlertState
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution_note: str | None
    false_positive: bool
    closed_by_engine_at: datetime | None = Field(
        description="When the engine saw the risk fall back (event time)."
    )


class AlertPage(Page[AlertPublic]):
    """Alerts, newest first; with `after`, the alerts changed since that event."""

    next_after: int | None = Field(
        None, description="With `after`: pass as `after` next time (the newest event id seen so far)."
    )


class AlertEventPublic(_Public):
    id: int
    alert_id: str
    sequence: int
    type: Literal["alert.opened", "alert.updated", "alert.closed"]
    event_at: datetime
    detected_at: datetime
    body: dict[str, Any] | None = Field(description="The event in alert schema v1, as the channels got it.")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"false_positive": True, "note": "QA load test"}]}
    )

    false_positive: bool
    note: str | None = Field(None, max_length=4000)


class ResolveRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"note": "load test by the QA team", "false_positive": True}]},
    )

    note: str | None = Field(None, max_length=4000)
    false_positive: bool = Field(False, description="The alert was wrong: feedback for tuning thresholds.")


class ModelPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "digits-v1",
                    "versions": [1],
                    "dim": 64,
                    "profile_created_at": "2026-11-29T09:00:00Z",
                    "clients": 812,
                    "max_risk": 0.94,
                    "open_alerts": 2,
                }
            ]
        }
    )

    model_id: str
    versions: list[int] = Field(description="Stored reference-profile versions, oldest first.")
    dim: int | None
    profile_created_at: datetime | None
    clients: int
    max_risk: float | None
    open_alerts: int
    reference_size: int | None = Field(None, description="Inputs the newest profile was fitted on.")
    required_reference_size: int | None = Field(
        None,
        description="Inputs a profile of this model's dimension needs "
        "(30 per cell, 20 per input, 5 beyond the out-of-profile threshold).",
    )
    thresholds: dict[str, float] | None = Field(
        None,
        description="Derived from the newest profile's reference: out-of-profile, far and margin thresholds, "
        "and each evidence test's null rate (`null_<test>`) before any configured override.",
    )
    origin: str | None = Field(
        None,
        description="How the profile was fitted: `warmup` (the model's first events, or a sample of logged "
        "events: `querywatch profile --served`) or `reference` (a trusted file).",
    )
    answers: str | None = Field(
        None,
        description="Where the answer-derived thresholds (margin, boundary null) come from: `reference` "
        "(the fitted rows' own answers), `pending` (a trusted file's, waiting for the model's first live "
        "events) or `live` (taken from them).",
    )
    refreshed_at: datetime | None = Field(
        None, description="Event time of the refresh that made the newest version; null: as fitted."
    )
    refresh_reason: str | None = Field(
        None, description="Why the newest version was refreshed (the drift test)."
    )
    left_out: list[str] | None = Field(
        None,
        description="Clients the profile's warm-up fit left out of its reference (their inputs sat far from "
        "everyone else's), by id, at most 100; empty for a trusted reference file.",
    )
    warning: str | None = Field(
        None,
        description="Why the newest profile is not to be trusted, if it is not: a warm-up of fewer inputs "
        "than `required_reference_size` or from fewer than 50 clients, whose benign rates rest on too few.",
    )


class Me(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"key_id": 3, "name": "soc-dashboard", "role": "reader"}]}
    )

    key_id: int
    name: str
    role: Literal["reader", "admin"]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    detail: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "about:blank",
                    "title": "Unauthorized",
                    "status": 401,
                    "detail": "missing X-API-Key header",
                }
            ]
        },
    )

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
