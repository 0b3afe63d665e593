"""The delivery outbox: rows written with each alert event, claimed by dispatchers, then settled.

``enqueue_deliveries`` runs inside the transaction that stores the alert event, so an event
is never stored without its deliveries (nor the other way round). Dispatchers claim due rows
with a *lease*: the claim bumps ``attempts`` and moves ``next_attempt_at`` past the longest
a send may take, so a dispatcher that dies mid-delivery leaves a row that simply becomes due
again. On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so that several dispatchers
share the work without waiting on each other; on every database the claim and the settling
updates are also conditional on the row being unchanged since it was read, so two
dispatchers can never both own a row (and a dispatcher whose lease ran out cannot overwrite
the newer attempt's result).

``OutboxSink`` is the outbox as an outcome sink (``pipeline.sinks``): after the database
sink stored a checkpoint's alert events, it queues the deliveries of those that page.
Rendering and signing the bodies is the dispatcher's (``adapters.delivery``): storage does
not depend on delivery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from querywatch.detector.adapters.db.alert_schema import stored_body
from querywatch.detector.adapters.db.outcome_store import OutcomeTx
from querywatch.detector.adapters.db.tables import (
    AlertEventRow,
    AlertRow,
    NoticeRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    utcnow,
)
from querywatch.detector.engine.outcomes import ALERT_CLOSED, ALERT_OPENED, SEVERITIES, Outcome

#: States a dispatcher may still send.
OPEN_STATES = ("pending", "failed")
_GAVE_UP = "gave up: no result was recorded for the last of {} attempts (its dispatcher stopped mid-send)"


def severity_rank(severity: str) -> int:
    """Position of a severity in ``low < medium < high < critical`` (unknown ranks lowest).

    >>> severity_rank("high") > severity_rank("medium") > severity_rank("nonsense")
    True
    """
    return SEVERITIES.index(severity) if severity in SEVERITIES else -1


def endpoint_wants(
    endpoint: WebhookEndpointRow, *, severity: str, model_id: str, event_type: str = ALERT_OPENED
) -> bool:
    """Whether an endpoint's filters (model, event types, minimum severity) let this event through."""
    if endpoint.model_id is not None and endpoint.model_id != model_id:
        return False
    if endpoint.event_types is not None and event_type not in endpoint.event_types:
        return False
    return event_type == ALERT_CLOSED or severity_rank(severity) >= severity_rank(endpoint.min_severity)


def webhook_id_for(alert_id: str, endpoint_id: int, sequence: int = 1) -> str:
    """The ``webhook-id`` of one alert event sent to one endpoint: the same on every attempt,
    so that a receiver can drop a duplicate (e.g. after a crash between its 2xx and our
    commit). An alert's opening keeps the id it had before alert events existed.

    >>> webhook_id_for("al_1", 7) == webhook_id_for("al_1", 7) != webhook_id_for("al_1", 8)
    True
    >>> webhook_id_for("al_1", 7, 2) != webhook_id_for("al_1", 7)
    True
    """
    key = f"{alert_id}\x00{endpoint_id}" + ("" if sequence == 1 else f"\x00{sequence}")
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"msg_{digest[:32]}"


class OutboxSink:
    """Queues the deliveries of the alert events the database sink stored in this
    transaction and that page (so an event is never stored without its deliveries)."""

    def write(self, outcomes: Sequence[Outcome], tx: OutcomeTx) -> None:
        for stored in tx.saved.events:
            if stored.pages:
                enqueue_deliveries(session=tx.session, alert=stored.alert, event=stored.event)

    def committed(self, tx: OutcomeTx) -> None:
        """Nothing to announce: the dispatchers poll the outbox."""


def enqueue_deliveries(
    *, session: Session, alert: AlertRow, event: AlertEventRow, now: datetime | None = None
) -> list[WebhookDeliveryRow]:
    """Add one pending delivery of ``event`` per endpoint whose filters match.

    A paused endpoint (an admin's, or a 410's) gets its deliveries too: they wait, since only
    enabled endpoints' deliveries are claimed, and go out once it is resumed (queued only
    while enabled, they were lost without a word). Call it in the transaction that stores
    the event. An ``alert.closed`` goes only where
    an earlier event of the alert went (a receiver never hears of an incident's end alone).
    Idempotent: an endpoint that already has a delivery of this event gets no second one.
    """
    now = now or utcnow()
    endpoints = session.scalars(select(WebhookEndpointRow)).all()
    wanted = [
        e
        for e in endpoints
        if endpoint_wants(e, severity=alert.severity, model_id=alert.model_id, event_type=event.type)
    ]
    if not wanted:
        return []
    sent = session.execute(
        select(WebhookDeliveryRow.endpoint_id, WebhookDeliveryRow.event_id).where(
            WebhookDeliveryRow.alert_id == alert.alert_id
        )
    ).all()
    told = {endpoint_id for endpoint_id, _ in sent}
    has_event = {endpoint_id for endpoint_id, event_id in sent if event_id == event.id}
    deliveries = [
        WebhookDeliveryRow(
            alert_id=alert.alert_id,
            event_id=event.id,
            endpoint_id=endpoint.id,
            webhook_id=webhook_id_for(alert.alert_id, endpoint.id, event.sequence),
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in wanted
        if endpoint.id not in has_event and (event.type != ALERT_CLOSED or endpoint.id in told)
    ]
    session.add_all(deliveries)
    return deliveries


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """Everything a dispatcher needs to send one delivery without touching the database."""

    delivery_id: int
    endpoint_id: int
    alert_id: str | None  # None for a notice (``adapters.db.notices``)
    webhook_id: str
    attempts: int
    lease_until: datetime
    url: str
    kind: str  # standard | pagerduty | slack
    secret: str
    previous_secret: str | None  # still signing too: a rotation's overlap has not ended
    routing_key: str | None  # a PagerDuty integration's
    event: dict[str, Any]  # the alert event in schema v1, or a notice; the dispatcher renders it


def claim_due_deliveries(
    *,
    session: Session,
    now: datetime,
    lease_until: datetime,
    limit: int,
    max_attempts: int,
    per_endpoint: int | None = None,
    in_flight: Mapping[int, int] | None = None,
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` due deliveries of enabled endpoints, leasing them until ``lease_until``.

    Commit the session right after, before sending anything, so the lease is visible. A
    delivery that already had ``max_attempts`` attempts without any result being recorded
    (its dispatchers kept dying mid-send) is marked dead instead of being tried forever.
    With ``per_endpoint``, no endpoint gets more than that many deliveries in flight,
    counting the caller's ``in_flight`` ones (endpoint id -> count): a slow receiver cannot
    take every slot of a dispatcher.
    """
    in_flight = in_flight or {}
    full = [e for e, n in in_flight.items() if per_endpoint is not None and n >= per_endpoint]
    earlier = aliased(WebhookDeliveryRow)
    waits_for_earlier = (
        select(earlier.id)
        .where(
            earlier.alert_id == WebhookDeliveryRow.alert_id,
            earlier.endpoint_id == WebhookDeliveryRow.endpoint_id,
            earlier.id < WebhookDeliveryRow.id,
            earlier.state.in_(OPEN_STATES),
        )
        .exists()
    )
    candidates = session.execute(
        select(WebhookDeliveryRow.id, WebhookDeliveryRow.attempts, WebhookDeliveryRow.endpoint_id)
        .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
        .where(
            WebhookDeliveryRow.state.in_(OPEN_STATES),
            WebhookDeliveryRow.next_attempt_at <= now,
            WebhookEndpointRow.enabled.is_(True),
            WebhookEndpointRow.id.not_in(full),
            # PagerDuty gets an alert's events in order: a resolve never overtakes its trigger.
            ~((WebhookEndpointRow.kind == "pagerduty") & waits_for_earlier),
        )
        .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=WebhookDeliveryRow)
    ).all()
    claimed: list[tuple[int, int]] = []
    taken = dict(in_flight)
    for delivery_id, attempts, endpoint_id in candidates:
        if per_endpoint is not None and taken.get(endpoint_id, 0) >= per_endpoint:
            continue
        exhausted = attempts >= max_attempts
        result = session.execute(
            update(WebhookDeliveryRow)
            .where(
                WebhookDeliveryRow.id == delivery_id,
                WebhookDeliveryRow.attempts == attempts,
                WebhookDeliveryRow.state.in_(OPEN_STATES),
                WebhookDeliveryRow.next_attempt_at <= now,
            )
            .values(
                {"state": "dead", "next_attempt_at": None, "last_error": _GAVE_UP.format(attempts)}
                if exhausted
                else {"attempts": attempts + 1, "next_attempt_at": lease_until}
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1 and not exhausted:  # type: ignore[attr-defined]
            claimed.append((delivery_id, attempts + 1))
            taken[endpoint_id] = taken.get(endpoint_id, 0) + 1
    if not claimed:
        return []
    rows = session.execute(
        select(WebhookDeliveryRow, WebhookEndpointRow, AlertRow, AlertEventRow, NoticeRow)
        .join(WebhookEndpointRow, WebhookEndpointRow.id == WebhookDeliveryRow.endpoint_id)
        .outerjoin(AlertRow, AlertRow.alert_id == WebhookDeliveryRow.alert_id)
        .outerjoin(AlertEventRow, AlertEventRow.id == WebhookDeliveryRow.event_id)
        .outerjoin(NoticeRow, NoticeRow.id == WebhookDeliveryRow.notice_id)
        .where(WebhookDeliveryRow.id.in_([d for d, _ in claimed]))
    ).all()
    attempts_of = dict(claimed)
    out = []
    for delivery, endpoint, alert, event, notice in rows:
        if notice is not None:
            body = notice.body
        else:
            assert alert is not None and event is not None  # the check constraint: event or notice
            body = stored_body(alert, event)
        if (
            event is not None
            and endpoint.kind == "pagerduty"
            and event.type != ALERT_CLOSED
            and _resolved(session, delivery)
        ):
            _supersede(session, delivery.id, "the incident was already resolved: no trigger after a resolve")
            continue
        out.append(
            ClaimedDelivery(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                alert_id=delivery.alert_id,
                webhook_id=delivery.webhook_id,
                attempts=attempts_of[delivery.id],
                lease_until=lease_until,
                url=endpoint.url,
                kind=endpoint.kind,
                secret=endpoint.secret,
                previous_secret=_previous_secret(endpoint, now),
                routing_key=endpoint.routing_key,
                event=body,
            )
        )
    return out


def backlog(*, session: Session) -> int:
    """Deliveries still to send (pending or failed), for the backlog gauge."""
    query = (
        select(func.count()).select_from(WebhookDeliveryRow).where(WebhookDeliveryRow.state.in_(OPEN_STATES))
    )
    return int(session.scalar(query) or 0)


def _resolved(session: Session, delivery: WebhookDeliveryRow) -> bool:
    """Whether this endpoint already got the close of this delivery's alert."""
    closed = session.scalar(
        select(WebhookDeliveryRow.id)
        .join(AlertEventRow, AlertEventRow.id == WebhookDeliveryRow.event_id)
        .where(
            WebhookDeliveryRow.alert_id == delivery.alert_id,
            WebhookDeliveryRow.endpoint_id == delivery.endpoint_id,
            WebhookDeliveryRow.state == "delivered",
            AlertEventRow.type == ALERT_CLOSED,
        )
        .limit(1)
    )
    return closed is not None


def _supersede(session: Session, delivery_id: int, why: str) -> None:
    session.execute(
        update(WebhookDeliveryRow)
        .where(WebhookDeliveryRow.id == delivery_id)
        .values(state="dead", next_attempt_at=None, last_error=f"superseded: {why}")
        .execution_options(synchronize_session=False)
    )


def _previous_secret(endpoint: WebhookEndpointRow, now: datetime) -> str | None:
    until = endpoint.previous_secret_until
    if endpoint.previous_secret is None or until is None or now >= until:
        return None
    return endpoint.previous_secret


def settle_delivery(
    *,
    session: Session,
    claim: ClaimedDelivery,
    state: str,
    status: int | None,
    error: str | None,
    next_attempt_at: datetime | None,
    delivered_at: datetime | None = None,
) -> bool:
    """Record the result of one claimed attempt; False if the claim was lost meanwhile
    (lease expired and another dispatcher took the row, or an admin asked to redeliver)."""
    result = session.execute(
        update(WebhookDeliveryRow)
        .where(
            WebhookDeliveryRow.id == claim.delivery_id,
            WebhookDeliveryRow.attempts == claim.attempts,
            WebhookDeliveryRow.state.in_(OPEN_STATES),
            WebhookDeliveryRow.next_attempt_at == claim.lease_until,
        )
        .values(
            state=state,
            last_status=status,
            last_error=None if error is None else printable(error)[:2000],
            next_attempt_at=next_attempt_at,
            delivered_at=delivered_at,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def printable(text: str) -> str:
    """``text`` without NUL and other control characters (a receiver's answer can hold
    anything; PostgreSQL refuses NUL in text, and a row that cannot be settled would be
    sent again and again).

    >>> printable("HTTP 500: a\\x00b\\nc")
    'HTTP 500: a b c'
    """
    return "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in text)


def disable_endpoint(*, session: Session, endpoint_id: int, reason: str) -> None:
    """Stop sending to an endpoint (e.g. it answered 410 Gone); its open deliveries, and those
    queued meanwhile, wait until it is resumed."""
    session.execute(
        update(WebhookEndpointRow)
        .where(WebhookEndpointRow.id == endpoint_id)
        .values(enabled=False, disabled_reason=reason)
        .execution_options(synchronize_session=False)
    )
