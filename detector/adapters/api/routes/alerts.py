"""Alerts: the feed, changes since a cursor, one alert and its events, and the analyst's
acknowledge / resolve / feedback (audited). A verdict on a campaign's alert is the verdict on
its campaign (``_campaign_verdict``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.api.deps import AdminKey, ReaderKey, SessionDep, actor_name
from querywatch.detector.adapters.api.routes.responses import ADMIN, READ, problems
from querywatch.detector.adapters.api.schemas import (
    AlertEventPublic,
    AlertPage,
    AlertPublic,
    AlertState,
    FeedbackRequest,
    ResolveRequest,
    Severity,
)
from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.alerts import (
    AlertNotFound,
    acknowledge_alert,
    alert_events,
    alerts_changed_after,
    get_alert,
    list_alerts,
    record_feedback,
    resolve_alert,
)
from querywatch.detector.adapters.db.campaigns import mark_false_positive
from querywatch.detector.adapters.db.session import Session
from querywatch.detector.adapters.db.tables import AlertRow

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])
AlertId = Annotated[str, Path(min_length=1, max_length=64, description="The alert's id (`al_…`).")]


@router.get("", response_model=AlertPage, responses={**READ, **problems(400)})
def list_alerts_newest_first(
    session: SessionDep,
    _key: ReaderKey,
    state: Annotated[AlertState | None, Query(description="Only alerts in this state.")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    client_id: Annotated[str | None, Query(max_length=256)] = None,
    model: Annotated[str | None, Query(max_length=256)] = None,
    false_positive: Annotated[
        bool | None, Query(description="Only alerts resolved as (not) false positives.")
    ] = None,
    limit: cursors.PageLimit = 50,
    cursor: cursors.PageCursor = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="For polling collectors: only alerts changed (opened, updated, closed) after this "
            "event id, oldest change first; pass the answer's `next_after` next time (start with 0). "
            "Other filters but `model` are ignored.",
        ),
    ] = None,
) -> AlertPage:
    """Alerts, newest first (by event time). Keyset-paginated: follow `next_cursor`.
    With `after`, every alert changed since that event instead, so updates are seen too."""
    if after is not None:
        changed = alerts_changed_after(session=session, after=after, limit=limit, model_id=model)
        newest = max((a.last_event_id or after for a in changed), default=after)
        return AlertPage(
            items=[AlertPublic.model_validate(a) for a in changed], next_cursor=None, next_after=newest
        )
    rows = list_alerts(
        session=session,
        limit=limit + 1,
        after=cursors.alert_cursor(cursor),
        state=state,
        severity=severity,
        client_id=client_id,
        model_id=model,
        false_positive=false_positive,
    )
    return AlertPage.of(rows, limit, lambda a: [a.opened_at.isoformat(), a.alert_id])


@router.get("/{alert_id}", response_model=AlertPublic, responses={**READ, **problems(404)})
def one_alert(session: SessionDep, _key: ReaderKey, alert_id: AlertId) -> AlertPublic:
    alert = get_alert(session=session, alert_id=alert_id)
    if alert is None:
        raise AlertNotFound(f"no alert {alert_id!r}")
    return AlertPublic.model_validate(alert)


@router.get("/{alert_id}/events", response_model=list[AlertEventPublic], responses={**READ, **problems(404)})
def events_of_alert(session: SessionDep, _key: ReaderKey, alert_id: AlertId) -> list[AlertEventPublic]:
    """The alert's events (opened, updated, closed) in sequence, each as the channels got it."""
    if get_alert(session=session, alert_id=alert_id) is None:
        raise AlertNotFound(f"no alert {alert_id!r}")
    return [AlertEventPublic.model_validate(e) for e in alert_events(session=session, alert_id=alert_id)]


@router.post("/{alert_id}/feedback", response_model=AlertPublic, responses={**ADMIN, **problems(404)})
def feedback(session: SessionDep, key: AdminKey, alert_id: AlertId, body: FeedbackRequest) -> AlertPublic:
    """Mark an alert (in any state) a false positive, or not: it feeds the model's calibration report.
    On a campaign's alert it is also the campaign's verdict (`POST /v1/campaigns/{id}/feedback`)."""
    actor = actor_name(key)
    alert = record_feedback(
        session=session, alert_id=alert_id, actor=actor, false_positive=body.false_positive, note=body.note
    )
    audit.record(
        session=session,
        actor=actor,
        action="alert.feedback",
        target=f"alert:{alert_id}",
        detail={"false_positive": body.false_positive, "note": body.note},
    )
    _campaign_verdict(session, alert, actor, body.false_positive, body.note)
    session.commit()
    return AlertPublic.model_validate(alert)


@router.post("/{alert_id}/ack", response_model=AlertPublic, responses={**ADMIN, **problems(404, 409)})
def acknowledge(session: SessionDep, key: AdminKey, alert_id: AlertId) -> AlertPublic:
    """Mark an open alert as being looked at. Acknowledging twice is harmless; a resolved alert is 409."""
    actor = actor_name(key)
    alert = acknowledge_alert(session=session, alert_id=alert_id, actor=actor)
    audit.record(session=session, actor=actor, action="alert.ack", target=f"alert:{alert_id}")
    session.commit()
    return AlertPublic.model_validate(alert)


@router.post("/{alert_id}/resolve", response_model=AlertPublic, responses={**ADMIN, **problems(404, 409)})
def resolve(session: SessionDep, key: AdminKey, alert_id: AlertId, body: ResolveRequest) -> AlertPublic:
    """Close an alert with a note; `false_positive: true` records that the alert was wrong (on a
    campaign's alert, also the campaign's false-positive feedback: the campaign ends)."""
    actor = actor_name(key)
    alert = resolve_alert(
        session=session, alert_id=alert_id, actor=actor, note=body.note, false_positive=body.false_positive
    )
    audit.record(
        session=session,
        actor=actor,
        action="alert.resolve",
        target=f"alert:{alert_id}",
        detail={"note": body.note, "false_positive": body.false_positive},
    )
    if body.false_positive:  # resolved as a true alert, a campaign stays as it is
        _campaign_verdict(session, alert, actor, True, body.note)
    session.commit()
    return AlertPublic.model_validate(alert)


def _campaign_verdict(
    session: Session, alert: AlertRow, actor: str, false_positive: bool, note: str | None
) -> None:
    """A verdict on a campaign's alert is the verdict on the campaign: the campaign's own
    feedback (``mark_false_positive``, audited there), so a false positive ends it as
    ``POST /v1/campaigns/{id}/feedback`` does. A client's alert changes nothing else."""
    if alert.kind == "campaign":
        mark_false_positive(
            session=session,
            campaign_id=alert.client_id,
            actor=actor,
            false_positive=false_positive,
            note=note,
        )
