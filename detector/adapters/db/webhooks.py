"""Webhook endpoints and deliveries as plain functions (the API routes and the CLI call these).

An endpoint's secret leaves the database only twice: in the answer to its creation and in
the answer to a rotation. Listing functions return rows; the API decides what to show.
The URL's SSRF check and the secret's generation and check are delivery's
(``adapters.delivery.endpoints``, which callers use to create endpoints and rotate
secrets); storage does not import delivery.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.alerts import AlertNotFound
from querywatch.detector.adapters.db.outbox import OPEN_STATES, endpoint_wants, enqueue_deliveries
from querywatch.detector.adapters.db.session import where_equal
from querywatch.detector.adapters.db.tables import (
    ENDPOINT_KINDS,
    AlertEventRow,
    AlertRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    utcnow,
)
from querywatch.detector.engine.outcomes import EVENT_TYPES, NOTICE_TYPES, SEVERITIES
from querywatch.detector.errors import QuerywatchError


class WebhookEndpointNotFound(QuerywatchError):
    """No webhook endpoint with this id."""


class InvalidWebhookEndpoint(QuerywatchError):
    """An endpoint setting querywatch cannot use (e.g. an unknown severity)."""


class DuplicateWebhookEndpoint(QuerywatchError):
    """An endpoint that would receive what an existing one receives, a second time."""


def add_endpoint(
    *,
    session: Session,
    url: str,
    secret: str,
    min_severity: str = "low",
    model_id: str | None = None,
    kind: str = "standard",
    event_types: list[str] | None = None,
    routing_key: str | None = None,
) -> WebhookEndpointRow:
    """Add an endpoint whose URL and secret the caller checked (``delivery.endpoints``).
    ``kind`` is ``standard`` (Standard Webhooks), ``pagerduty`` (Events API v2, needs the
    integration's ``routing_key``) or ``slack`` (an incoming-webhook URL); ``event_types``
    limits what is sent (None: every event type). A second endpoint of the same kind, URL,
    model filter and routing key is refused: its receiver would get every event twice, under
    two webhook ids, so that dropping repeated ids would not help."""
    if min_severity not in SEVERITIES:
        raise InvalidWebhookEndpoint(f"min_severity must be one of {', '.join(SEVERITIES)}")
    if kind not in ENDPOINT_KINDS:
        raise InvalidWebhookEndpoint(f"kind must be one of {', '.join(ENDPOINT_KINDS)}")
    if kind == "pagerduty" and not routing_key:
        raise InvalidWebhookEndpoint("a pagerduty endpoint needs the integration's routing_key")
    if kind != "pagerduty" and routing_key:  # it would be ignored: a kind mistaken, most likely
        raise InvalidWebhookEndpoint(f"routing_key is for pagerduty endpoints, not {kind} ones")
    known = (*EVENT_TYPES, *NOTICE_TYPES)
    if event_types is not None and (not event_types or set(event_types) - set(known)):
        raise InvalidWebhookEndpoint(f"event_types must be a non-empty subset of {', '.join(known)}")
    twin = session.scalar(
        select(WebhookEndpointRow.id).where(
            WebhookEndpointRow.url == url,
            WebhookEndpointRow.kind == kind,
            WebhookEndpointRow.model_id.is_not_distinct_from(model_id),
            WebhookEndpointRow.routing_key.is_not_distinct_from(routing_key),
        )
    )
    if twin is not None:
        raise DuplicateWebhookEndpoint(
            f"endpoint {twin} already sends the same events to this URL: change it (PATCH) or delete it first"
        )
    endpoint = WebhookEndpointRow(
        url=url,
        secret=secret,
        min_severity=min_severity,
        model_id=model_id,
        kind=kind,
        event_types=None if event_types is None else list(dict.fromkeys(event_types)),
        routing_key=routing_key,
        enabled=True,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get_endpoint(*, session: Session, endpoint_id: int) -> WebhookEndpointRow:
    endpoint = session.get(WebhookEndpointRow, endpoint_id)
    if endpoint is None:
        raise WebhookEndpointNotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def list_endpoints(*, session: Session) -> list[WebhookEndpointRow]:
    return list(session.scalars(select(WebhookEndpointRow).order_by(WebhookEndpointRow.id)))


def delete_endpoint(*, session: Session, endpoint_id: int) -> dict[str, Any]:
    """Remove an endpoint and, with it, its delivery history (nothing more is sent to it).
    Returns what went with it, for the audit log: its kind, its URL's host (a Slack URL is its
    credential) and how many deliveries were still waiting to be sent."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id)
    waiting = session.scalar(
        select(func.count()).where(
            WebhookDeliveryRow.endpoint_id == endpoint_id, WebhookDeliveryRow.state.in_(OPEN_STATES)
        )
    )
    gone = {"kind": endpoint.kind, "host": urlsplit(endpoint.url).hostname, "undelivered": int(waiting or 0)}
    session.delete(endpoint)
    session.flush()
    return gone


def delete_endpoints_on_other_ports(*, session: Session, url: str) -> list[tuple[int, dict[str, Any]]]:
    """Delete the endpoints at ``url``'s scheme, host and path on another port (an earlier
    ``up --demo``'s receiver); each one's id and what went with it (``delete_endpoint``)."""
    mine = urlsplit(url)
    deleted = []
    for endpoint in list_endpoints(session=session):
        other = urlsplit(endpoint.url)
        same_place = (other.scheme, other.hostname, other.path) == (mine.scheme, mine.hostname, mine.path)
        if same_place and other.port != mine.port:
            deleted.append((endpoint.id, delete_endpoint(session=session, endpoint_id=endpoint.id)))
    return deleted


def replace_secret(
    *,
    session: Session,
    endpoint_id: int,
    secret: str,
    overlap_seconds: float = 0.0,
    now: datetime | None = None,
) -> WebhookEndpointRow:
    """Give an endpoint a new (checked) secret; every later attempt, retries included, is
    signed with it, and for ``overlap_seconds`` after ``now`` with the old one too, so that a
    receiver can switch secrets at its own pace (0: the old secret stops at once). The same
    secret again (a retried rotation) changes nothing: it used to become its own "old" one
    and end the first rotation's overlap at once."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id)
    if secret == endpoint.secret:
        return endpoint
    if overlap_seconds > 0:
        start = now or utcnow()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = start + timedelta(seconds=overlap_seconds)
    else:
        endpoint.previous_secret = endpoint.previous_secret_until = None
    endpoint.secret = secret
    session.flush()
    return endpoint


def set_enabled(*, session: Session, endpoint_id: int, enabled: bool) -> WebhookEndpointRow:
    """Pause or resume an endpoint; resuming clears why it was disabled (e.g. a 410)."""
    endpoint = get_endpoint(session=session, endpoint_id=endpoint_id)
    endpoint.enabled = enabled
    endpoint.disabled_reason = None if enabled else "disabled by an admin"
    session.flush()
    return endpoint


def list_deliveries(
    *,
    session: Session,
    limit: int,
    alert_id: str | None = None,
    endpoint_id: int | None = None,
    state: str | None = None,
    before_id: int | None = None,
) -> list[WebhookDeliveryRow]:
    """Deliveries matching the filters, newest first, keyset-paginated on id."""
    query = where_equal(
        select(WebhookDeliveryRow),
        (WebhookDeliveryRow.alert_id, alert_id),
        (WebhookDeliveryRow.endpoint_id, endpoint_id),
        (WebhookDeliveryRow.state, state),
    )
    if before_id is not None:
        query = query.where(WebhookDeliveryRow.id < before_id)
    return list(session.scalars(query.order_by(WebhookDeliveryRow.id.desc()).limit(limit)))


def redeliver_alert(
    *, session: Session, alert_id: str, now: datetime | None = None
) -> list[WebhookDeliveryRow]:
    """Send an alert's events again to every enabled endpoint that wants them, delivered or not.

    Existing deliveries start over (attempts reset, due now) and keep their ``webhook-id``:
    a receiver that already processed an event recognises it. Endpoints added since get
    their first deliveries.
    """
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id!r}")
    now = now or utcnow()
    events = list(
        session.scalars(
            select(AlertEventRow).where(AlertEventRow.alert_id == alert_id).order_by(AlertEventRow.sequence)
        )
    )
    enabled = [
        e.id
        for e in list_endpoints(session=session)
        if e.enabled and endpoint_wants(e, severity=alert.severity, model_id=alert.model_id)
    ]
    session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.alert_id == alert_id, WebhookDeliveryRow.endpoint_id.in_(enabled))
        .values(
            state="pending",
            attempts=0,
            next_attempt_at=now,
            delivered_at=None,
            last_status=None,
            last_error=None,
        )
        .execution_options(synchronize_session=False)
    )
    for event in events:
        enqueue_deliveries(session=session, alert=alert, event=event, now=now)
        session.flush()
    query = (
        select(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.alert_id == alert_id)
        .order_by(WebhookDeliveryRow.id)
    )
    return list(session.scalars(query.execution_options(populate_existing=True)))
