"""Read alerts and record what analysts did with them (acknowledge, resolve, false positive).

Alerts are listed newest first, keyset-paginated on ``(opened_at DESC, alert_id DESC)``;
a polling collector instead follows ``after`` (the id of the latest alert event it saw) and
gets every alert changed since, in the order of their latest events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.session import on_commit, where_equal
from querywatch.detector.adapters.db.tables import AlertEventRow, AlertRow, utcnow
from querywatch.detector.errors import QuerywatchError
from querywatch.detector.metrics import ALERTS_CLOSED


class AlertNotFound(QuerywatchError):
    """No alert with this id."""


class AlertStateConflict(QuerywatchError):
    """The alert is not in a state that allows this action (e.g. acknowledging a resolved alert)."""


@dataclass(frozen=True)
class AlertCursor:
    """Where an alert page ends: the last row's opening time and id."""

    opened_at: datetime
    alert_id: str


def list_alerts(
    *,
    session: Session,
    limit: int,
    after: AlertCursor | None = None,
    state: str | None = None,
    severity: str | None = None,
    client_id: str | None = None,
    model_id: str | None = None,
    false_positive: bool | None = None,
) -> list[AlertRow]:
    """Alerts matching every given filter, newest first, strictly after ``after``."""
    query = where_equal(
        select(AlertRow),
        (AlertRow.state, state),
        (AlertRow.severity, severity),
        (AlertRow.client_id, client_id),
        (AlertRow.model_id, model_id),
    )
    if false_positive is not None:
        query = query.where(AlertRow.false_positive.is_(false_positive))
    if after is not None:
        query = query.where(
            or_(
                AlertRow.opened_at < after.opened_at,
                and_(AlertRow.opened_at == after.opened_at, AlertRow.alert_id < after.alert_id),
            )
        )
    query = query.order_by(AlertRow.opened_at.desc(), AlertRow.alert_id.desc()).limit(limit)
    return list(session.scalars(query))


def alerts_changed_after(
    *, session: Session, after: int, limit: int, model_id: str | None = None
) -> list[AlertRow]:
    """Alerts whose latest event came after event ``after``, oldest change first."""
    query = where_equal(select(AlertRow).where(AlertRow.last_event_id > after), (AlertRow.model_id, model_id))
    return list(session.scalars(query.order_by(AlertRow.last_event_id).limit(limit)))


def alert_events(*, session: Session, alert_id: str) -> list[AlertEventRow]:
    query = select(AlertEventRow).where(AlertEventRow.alert_id == alert_id)
    return list(session.scalars(query.order_by(AlertEventRow.sequence)))


def record_feedback(
    *, session: Session, alert_id: str, actor: str, false_positive: bool, note: str | None
) -> AlertRow:
    """An analyst's verdict on an alert in any state (the engine may have closed it already):
    the calibration report counts it."""
    alert = _existing(session, alert_id)
    alert.false_positive = false_positive
    if note:
        alert.resolution_note = f"{note} ({actor})"
    return alert


def get_alert(*, session: Session, alert_id: str) -> AlertRow | None:
    return session.get(AlertRow, alert_id)


def acknowledge_alert(*, session: Session, alert_id: str, actor: str) -> AlertRow:
    """Mark an open alert as seen by ``actor``. Acknowledging twice is harmless."""
    alert = _existing(session, alert_id)
    if alert.state == "resolved":
        raise AlertStateConflict(f"alert {alert_id} is already resolved")
    if alert.state == "open":
        alert.state = "acknowledged"
        alert.acknowledged_by = actor
        alert.acknowledged_at = utcnow()
    return alert


def resolve_alert(
    *, session: Session, alert_id: str, actor: str, note: str | None, false_positive: bool
) -> AlertRow:
    """Close an alert with a note; ``false_positive`` is the feedback that tunes thresholds."""
    alert = _existing(session, alert_id)
    if alert.state == "resolved":
        raise AlertStateConflict(f"alert {alert_id} is already resolved")
    alert.state = "resolved"
    alert.resolved_by = actor
    alert.resolved_at = utcnow()
    alert.resolution_note = note
    alert.false_positive = false_positive
    on_commit(session, ALERTS_CLOSED.labels(by="analyst").inc)  # counted once it is true
    return alert


def _existing(session: Session, alert_id: str) -> AlertRow:
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id!r}")
    return alert
