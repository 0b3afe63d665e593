"""Notices: what the alert channels hear besides alert events, through the same outbox.

* ``silence.created``: a silence is announced when it is made, so that the people it
  quiets know who quieted what, why and until when.
* ``monitor.digest``: a model in monitor mode pages nobody; once a day each such model's
  channels get one digest of the alerts that would have paged the day before.

A notice is made once per ``key`` (two dispatchers racing to make the same digest make one),
in the caller's transaction, with one delivery per endpoint that wants it (a paused one's
waits until it is resumed, as alert deliveries do): not PagerDuty (a notice is no incident),
the endpoint's model (if it has one) the notice's model (if it has one), and its event types
(if it lists any) including the notice's type.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.inserts import InsertIfAbsent
from querywatch.detector.adapters.db.tables import (
    AlertRow,
    ModelPolicyRow,
    ModelPolicyVersionRow,
    NoticeRow,
    SilenceRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    utcnow,
)
from querywatch.detector.engine.outcomes import MONITOR_DIGEST, SILENCE_CREATED

#: Alerts listed in one digest at most (the count is always the full one).
DIGEST_ALERTS = 100
_DAY = timedelta(days=1)
#: A notice: nothing inserted if one with its key is stored already.
_NEW_NOTICE = InsertIfAbsent(NoticeRow, NoticeRow.id)


def notice_webhook_id(notice_id: int, endpoint_id: int) -> str:
    """The ``webhook-id`` of a notice sent to an endpoint, the same on every attempt.

    >>> notice_webhook_id(1, 2) == notice_webhook_id(1, 2) != notice_webhook_id(1, 3)
    True
    """
    digest = hashlib.sha256(f"notice\x00{notice_id}\x00{endpoint_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


def add_notice(
    *, session: Session, key: str, type: str, body: dict[str, Any], model_id: str | None = None
) -> NoticeRow | None:
    """Store a notice and queue its deliveries; None if a notice with ``key`` exists."""
    if session.scalar(select(NoticeRow.id).where(NoticeRow.key == key)) is not None:
        return None
    now = utcnow()
    made = _NEW_NOTICE(
        session,
        {"key": key, "type": type, "model_id": model_id, "body": {"type": type, **body}, "created_at": now},
    )
    if made is None:  # made meanwhile by another transaction
        return None
    notice = session.get_one(NoticeRow, made.id)
    endpoints = session.scalars(select(WebhookEndpointRow).where(WebhookEndpointRow.kind != "pagerduty"))
    session.add_all(
        WebhookDeliveryRow(
            notice_id=notice.id,
            endpoint_id=endpoint.id,
            webhook_id=notice_webhook_id(notice.id, endpoint.id),
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in endpoints
        if (endpoint.model_id is None or model_id is None or endpoint.model_id == model_id)
        and (endpoint.event_types is None or type in endpoint.event_types)
    )
    return notice


def announce_silence(*, session: Session, silence: SilenceRow) -> NoticeRow | None:
    """Queue the announcement of a silence just made (in its transaction)."""
    matchers = {
        name: getattr(silence, name)
        for name in ("client_id", "model_id", "campaign_id", "reason_contains")
        if getattr(silence, name)
    }
    body = {
        "event_time": silence.created_at.isoformat(),
        "silence": {
            "id": silence.id,
            "matchers": matchers,
            "comment": silence.comment,
            "created_by": silence.created_by,
            "expires_at": silence.expires_at.isoformat(),
        },
    }
    return add_notice(
        session=session,
        key=f"silence:{silence.id}",
        type=SILENCE_CREATED,
        body=body,
        model_id=silence.model_id,
    )


def monitor_since(*, session: Session, model_id: str) -> datetime | None:
    """When the model's current stretch in monitor mode began (None if it is not in it)."""
    since = None
    versions = session.scalars(
        select(ModelPolicyVersionRow)
        .where(ModelPolicyVersionRow.model_id == model_id)
        .order_by(ModelPolicyVersionRow.version.desc())
    )
    for version in versions:
        if version.policy.get("mode") != "monitor":
            break
        since = version.changed_at
    return since


def make_due_digests(*, session: Session, now: datetime) -> list[NoticeRow]:
    """Make yesterday's (UTC) digest of every model in monitor mode that has none yet.

    A digest covers the part of that day the model spent in its current monitor stretch
    and lists the alerts detected then (they paged nobody). Only the last full day is
    looked at: after an outage of several days the days before it get no digest."""
    day_end = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day_start = day_end - _DAY
    made = []
    models = session.scalars(select(ModelPolicyRow.model_id).where(ModelPolicyRow.mode == "monitor"))
    for model_id in list(models):
        since = monitor_since(session=session, model_id=model_id)
        if since is None or since >= day_end:
            continue
        start = max(since, day_start)
        alerts = session.scalars(
            select(AlertRow)
            .where(
                AlertRow.model_id == model_id, AlertRow.detected_at >= start, AlertRow.detected_at < day_end
            )
            .order_by(AlertRow.peak_risk.desc(), AlertRow.alert_id)
        ).all()
        body = {
            "event_time": day_end.isoformat(),
            "model_id": model_id,
            "day": day_start.date().isoformat(),
            "from": start.isoformat(),
            "to": day_end.isoformat(),
            "alerts_count": len(alerts),
            "alerts": [_digest_line(a) for a in alerts[:DIGEST_ALERTS]],
        }
        key = f"digest:{model_id}:{body['day']}"
        notice = add_notice(session=session, key=key, type=MONITOR_DIGEST, body=body, model_id=model_id)
        if notice is not None:
            made.append(notice)
    return made


def _digest_line(alert: AlertRow) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind,
        "subject_id": alert.client_id,
        "severity": alert.severity,
        "peak_risk": round(max(alert.peak_risk, alert.risk), 4),
        "opened_at": alert.opened_at.isoformat(),
        "state": alert.state,
        "reasons": list(alert.reasons)[:3],
    }
