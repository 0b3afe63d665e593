"""Webhook endpoints, their deliveries, and redelivery of an alert (admin only).

The signing secret is in the answer to a creation or a rotation and nowhere else: store it
in the receiver then. Every change is audited (never with the secret).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.api.cursors import PageLimit
from querywatch.detector.adapters.api.deps import AdminKey, SessionDep, SettingsDep, actor_name
from querywatch.detector.adapters.api.routes.responses import ADMIN, problems
from querywatch.detector.adapters.api.schemas import Severity
from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db import webhooks as store
from querywatch.detector.adapters.db.alerts import AlertNotFound, get_alert
from querywatch.detector.adapters.db.apikeys import Principal
from querywatch.detector.adapters.db.session import Session
from querywatch.detector.adapters.db.tables import WebhookEndpointRow
from querywatch.detector.adapters.delivery import endpoints

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])
EndpointId = Annotated[int, Path(ge=1, le=2**62, description="The webhook endpoint's id.")]
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
AlertId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=_PRINTABLE, description="The alert's id (`al_…`).")
]
DeliveryState = Literal["pending", "delivered", "failed", "dead"]
EndpointKind = Literal["standard", "pagerduty", "slack"]
EventType = Literal["alert.opened", "alert.updated", "alert.closed", "silence.created", "monitor.digest"]

_ENDPOINT_EXAMPLE: dict[str, Any] = {
    "id": 1,
    "url": "https://soc.example.com/hooks/querywatch",
    "min_severity": "high",
    "model_id": None,
    "enabled": True,
    "disabled_reason": None,
    "created_at": "2026-11-29T10:00:00Z",
}
_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": _ENDPOINT_EXAMPLE["url"], "min_severity": "high"}]},
    )

    url: str = Field(min_length=1, max_length=2048, description="http(s) URL that receives the alerts.")
    min_severity: Severity = Field("low", description="Only alerts at least this severe are sent.")
    model_id: str | None = Field(
        None, max_length=256, pattern=_PRINTABLE, description="Only alerts on this model; null for all."
    )
    kind: EndpointKind = Field(
        "standard",
        description="standard: Standard Webhooks; pagerduty: Events API v2 (trigger / resolve); "
        "slack: an incoming-webhook URL.",
    )
    event_types: list[EventType] | None = Field(
        None,
        min_length=1,
        description="Only these events (null: every alert event, silence announcements and monitor-mode "
        "digests; PagerDuty endpoints never get the last two).",
    )
    routing_key: str | None = Field(
        None, max_length=256, pattern=_PRINTABLE, description="PagerDuty: the integration's routing key."
    )


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_ENDPOINT_EXAMPLE]})

    id: int
    url: str
    kind: EndpointKind = "standard"
    event_types: list[EventType] | None = None
    min_severity: Severity
    model_id: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why sending stopped, e.g. the receiver answered 410.")
    previous_secret_until: datetime | None = Field(
        None, description="After a rotation with an overlap: until when the old secret signs too."
    )
    created_at: datetime

    @model_validator(mode="after")
    def _slack_url_is_a_secret(self) -> WebhookPublic:
        """A Slack URL is the channel's credential: shown as its host and first path part."""
        self.url = endpoints.shown_url(self.kind, self.url)
        return self


class WebhookWithSecret(WebhookPublic):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={"examples": [{**_ENDPOINT_EXAMPLE, "secret": _SECRET_EXAMPLE}]},
    )

    secret: str = Field(description="Standard Webhooks signing secret. Shown only now: keep it.")


class WebhookChange(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": True}]})

    enabled: bool = Field(description="false pauses the endpoint; true resumes it (e.g. after a 410).")


class SecretChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"secret": _SECRET_EXAMPLE}]})

    secret: str | None = Field(
        None, max_length=256, description="`whsec_` + base64 of 16+ random bytes; null to generate one."
    )
    overlap_seconds: float = Field(
        0.0,
        ge=0,
        le=7 * 86400,
        description="Sign with the old secret too for this long, so the receiver can switch at its own "
        "pace; 0 (after a leak) retires it at once.",
    )


class DeliveryPublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "alert_id": "al_3f9c2a7d1e5b4c6a8f0e2d1c",
                    "endpoint_id": 1,
                    "webhook_id": "msg_0c5d1f0b9e7a4c3b2a190817f6e5d4c3",
                    "state": "failed",
                    "attempts": 2,
                    "next_attempt_at": "2026-11-29T10:54:13Z",
                    "last_status": 503,
                    "last_error": "HTTP 503: upstream unavailable",
                    "delivered_at": None,
                    "created_at": "2026-11-29T10:48:13Z",
                }
            ]
        },
    )

    id: int
    alert_id: str | None = Field(description="The alert; null for a notice (digest, silence announcement).")
    event_id: int | None = Field(description="The alert event sent (`GET /v1/alerts/{alert_id}/events`).")
    notice_id: int | None = Field(None, description="The notice sent (a digest or a silence announcement).")
    endpoint_id: int
    webhook_id: str = Field(description="The `webhook-id` header, the same on every attempt.")
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (open states only).")
    last_status: int | None = Field(description="HTTP status of the last attempt; null if none came back.")
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(cursors.Page[DeliveryPublic]):
    """An endpoint's or an alert's deliveries, newest first."""


def _endpoint(session: Session, endpoint_id: int) -> WebhookEndpointRow:
    return store.get_endpoint(session=session, endpoint_id=endpoint_id)


def _audit(session: Session, key: Principal, action: str, target: str) -> None:
    audit.record(session=session, actor=actor_name(key), action=action, target=target)


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=WebhookWithSecret,
    responses={**ADMIN, **problems(409, 422)},
)
def create_webhook(
    session: SessionDep, settings: SettingsDep, key: AdminKey, body: WebhookCreate
) -> WebhookWithSecret:
    """Register a receiver. Its URL must resolve to public addresses (unless allowed by
    `QUERYWATCH_WEBHOOKS__ALLOW_HOSTS`). The answer carries the signing secret, once."""
    endpoint = endpoints.create_endpoint(
        session=session,
        url=body.url,
        allow_hosts=settings.webhooks.allow_hosts,
        min_severity=body.min_severity,
        model_id=body.model_id,
        kind=body.kind,
        event_types=None if body.event_types is None else list(body.event_types),
        routing_key=body.routing_key,
    )
    audit.record(
        session=session,
        actor=actor_name(key),
        action="webhook.create",
        target=f"webhook:{endpoint.id}",
        detail={
            "url": endpoints.shown_url(endpoint.kind, endpoint.url),
            "kind": endpoint.kind,
            "event_types": endpoint.event_types,
            "min_severity": endpoint.min_severity,
            "model_id": endpoint.model_id,
        },
    )
    session.commit()
    return WebhookWithSecret.model_validate(endpoint)


@router.get("/v1/webhooks", response_model=list[WebhookPublic], responses=ADMIN)
def list_webhooks(session: SessionDep, _key: AdminKey) -> list[WebhookPublic]:
    """Every endpoint, oldest first (without secrets)."""
    return [WebhookPublic.model_validate(e) for e in store.list_endpoints(session=session)]


@router.get("/v1/webhooks/{endpoint_id}", response_model=WebhookPublic, responses={**ADMIN, **problems(404)})
def one_webhook(session: SessionDep, _key: AdminKey, endpoint_id: EndpointId) -> WebhookPublic:
    return WebhookPublic.model_validate(_endpoint(session, endpoint_id))


@router.patch(
    "/v1/webhooks/{endpoint_id}", response_model=WebhookPublic, responses={**ADMIN, **problems(404)}
)
def change_webhook(
    session: SessionDep, key: AdminKey, endpoint_id: EndpointId, body: WebhookChange
) -> WebhookPublic:
    """Pause or resume an endpoint; deliveries waiting for it go out once it is resumed."""
    _endpoint(session, endpoint_id)
    endpoint = store.set_enabled(session=session, endpoint_id=endpoint_id, enabled=body.enabled)
    action = "webhook.enable" if body.enabled else "webhook.disable"
    _audit(session, key, action, f"webhook:{endpoint_id}")
    session.commit()
    return WebhookPublic.model_validate(endpoint)


@router.delete("/v1/webhooks/{endpoint_id}", status_code=204, responses={**ADMIN, **problems(404)})
def delete_webhook(session: SessionDep, key: AdminKey, endpoint_id: EndpointId) -> Response:
    """Remove an endpoint with its delivery history; nothing more is sent to it, including
    deliveries still waiting (the audit entry and the log say how many)."""
    _endpoint(session, endpoint_id)
    gone = store.delete_endpoint(session=session, endpoint_id=endpoint_id)
    audit.record(
        session=session,
        actor=actor_name(key),
        action="webhook.delete",
        target=f"webhook:{endpoint_id}",
        detail=gone,
    )
    session.commit()
    if gone["undelivered"]:
        log.warning(
            "webhook endpoint %d deleted with %d deliveries not sent", endpoint_id, gone["undelivered"]
        )
    return Response(status_code=204)


@router.post(
    "/v1/webhooks/{endpoint_id}/rotate-secret",
    response_model=WebhookWithSecret,
    responses={**ADMIN, **problems(404, 422)},
)
def rotate_webhook_secret(
    session: SessionDep, key: AdminKey, endpoint_id: EndpointId, body: SecretChoice | None = None
) -> WebhookWithSecret:
    """Replace the signing secret; every later attempt, retries included, uses the new one.

    Without a body querywatch generates the secret. With `overlap_seconds`, attempts carry a
    signature by the old secret too until then (Standard Webhooks receivers accept a
    request if any signature verifies), so nothing is rejected while the receiver switches.
    """
    _endpoint(session, endpoint_id)
    endpoint = endpoints.rotate_secret(
        session=session,
        endpoint_id=endpoint_id,
        secret=body.secret if body else None,
        overlap_seconds=body.overlap_seconds if body else 0.0,
    )
    _audit(session, key, "webhook.rotate", f"webhook:{endpoint_id}")
    session.commit()
    return WebhookWithSecret.model_validate(endpoint)


@router.get(
    "/v1/webhooks/{endpoint_id}/deliveries",
    response_model=DeliveryPage,
    responses={**ADMIN, **problems(404)},
)
def endpoint_deliveries(
    session: SessionDep,
    _key: AdminKey,
    endpoint_id: EndpointId,
    state: Annotated[DeliveryState | None, Query(description="Only deliveries in this state.")] = None,
    limit: PageLimit = 50,
    cursor: cursors.PageCursor = None,
    before: Annotated[
        str | None,
        Query(
            max_length=2048,
            deprecated=True,
            description="What `cursor` was called in earlier releases (their numeric cursors still work).",
        ),
    ] = None,
) -> DeliveryPage:
    """An endpoint's deliveries, newest first, with status and last error. Keyset-paginated:
    follow `next_cursor`, as on every list."""
    _endpoint(session, endpoint_id)
    rows = store.list_deliveries(
        session=session,
        limit=limit + 1,
        endpoint_id=endpoint_id,
        state=state,
        before_id=cursors.id_cursor(cursor or before),
    )
    return DeliveryPage.of(rows, limit, lambda d: [d.id])


@router.get(
    "/v1/alerts/{alert_id}/deliveries",
    response_model=list[DeliveryPublic],
    responses={**ADMIN, **problems(404)},
)
def alert_deliveries(session: SessionDep, _key: AdminKey, alert_id: AlertId) -> list[DeliveryPublic]:
    """Where an alert was sent, and how each delivery went (empty if no endpoint wanted it)."""
    if get_alert(session=session, alert_id=alert_id) is None:
        raise AlertNotFound(f"no alert {alert_id!r}")
    rows = store.list_deliveries(session=session, limit=1000, alert_id=alert_id)
    return [DeliveryPublic.model_validate(d) for d in rows]


@router.post(
    "/v1/alerts/{alert_id}/redeliver",
    status_code=202,
    response_model=list[DeliveryPublic],
    responses={**ADMIN, **problems(404)},
)
def redeliver(session: SessionDep, key: AdminKey, alert_id: AlertId) -> list[DeliveryPublic]:
    """Send the alert again to every enabled endpoint that wants it, with the same
    `webhook-id` as before (receivers that deduplicate will see it as a repeat)."""
    rows = store.redeliver_alert(session=session, alert_id=alert_id)
    _audit(session, key, "alert.redeliver", f"alert:{alert_id}")
    session.commit()
    return [DeliveryPublic.model_validate(d) for d in rows]
