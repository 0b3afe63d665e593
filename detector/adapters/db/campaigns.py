"""Campaigns in the database: stored as the stage reports them, listed, marked by analysts,
and looked up by member for the decision's campaign floor."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.alerts import record_feedback, resolve_alert
from querywatch.detector.adapters.db.tables import AlertRow, CampaignMemberRow, CampaignRow, utcnow
from querywatch.detector.errors import QuerywatchError

if TYPE_CHECKING:  # the stage's module loads numba: the API and the dispatcher never need it
    from querywatch.detector.engine.campaigns.campaign import Campaign


class CampaignNotFound(QuerywatchError):
    """No campaign with that id."""


@dataclass(frozen=True)
class CampaignCursor:
    opened_at: datetime
    campaign_id: str


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def save_campaigns(*, session: Session, live: Sequence[Campaign], ended: Iterable[str] = ()) -> None:
    """Bring the rows of ``live`` campaigns up to date (members replaced) and mark ``ended``
    ones; an analyst's false-positive mark is kept. Flushed, not committed."""
    ids = [c.campaign_id for c in live]
    rows = {
        r.campaign_id: r for r in session.scalars(select(CampaignRow).where(CampaignRow.campaign_id.in_(ids)))
    }
    now = utcnow()
    for c in live:
        row = rows.get(c.campaign_id)
        if row is None:
            row = CampaignRow(campaign_id=c.campaign_id, model_id=c.model_id, opened_at=_time(c.opened_ts))
            session.add(row)
        row.state = "active"
        row.first_alert_at = None if c.first_alert_ts is None else _time(c.first_alert_ts)
        row.updated_at = now
        row.risk = c.risk
        row.peak_risk = c.peak_risk
        row.extraction = c.extraction
        row.members = list(c.members)
        row.links = [link.to_dict() for link in c.links]
        row.reasons = list(c.reasons)
        row.evidence = dict(c.features)
        row.capped = c.capped
    session.flush()
    if ids:
        session.execute(delete(CampaignMemberRow).where(CampaignMemberRow.campaign_id.in_(ids)))
        session.add_all(
            CampaignMemberRow(campaign_id=c.campaign_id, client_id=m, model_id=c.model_id)
            for c in live
            for m in c.members
        )
    for campaign_id in ended:
        row = session.get(CampaignRow, campaign_id)
        if row is not None:  # its member rows stay: `?client_id=` finds an account's past campaigns
            row.state = "ended"
            row.updated_at = now
    session.flush()


def list_campaigns(
    *,
    session: Session,
    limit: int,
    after: CampaignCursor | None = None,
    model_id: str | None = None,
    state: str | None = None,
    client_id: str | None = None,
) -> Sequence[CampaignRow]:
    """Campaigns, newest first (by the event time of their first link)."""
    query = select(CampaignRow)
    if model_id is not None:
        query = query.where(CampaignRow.model_id == model_id)
    if state is not None:
        query = query.where(CampaignRow.state == state)
    if client_id is not None:
        members = select(CampaignMemberRow.campaign_id).where(CampaignMemberRow.client_id == client_id)
        query = query.where(CampaignRow.campaign_id.in_(members))
    if after is not None:
        query = query.where(
            tuple_(CampaignRow.opened_at, CampaignRow.campaign_id) < (after.opened_at, after.campaign_id)
        )
    query = query.order_by(CampaignRow.opened_at.desc(), CampaignRow.campaign_id.desc()).limit(limit)
    return session.scalars(query).all()


def get_campaign(*, session: Session, campaign_id: str) -> CampaignRow | None:
    return session.get(CampaignRow, campaign_id)


def mark_false_positive(
    *, session: Session, campaign_id: str, actor: str, false_positive: bool, note: str | None
) -> CampaignRow:
    """An analyst's verdict on a campaign, however it was given (the campaign's feedback, or
    a verdict on its alert): audited here, so each way records the same entry. A false
    positive ends it: its members lose the campaign floor at once, and the process running the
    stage ends it there before it next stores campaigns (``InProcessCampaigns``). Taken back
    (``false_positive`` false), the campaign stays ended, and the stage links its accounts
    afresh from their next summaries. Its alert takes the verdict too (``_alert_verdict``)."""
    row = session.get(CampaignRow, campaign_id)
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r}")
    row.false_positive = false_positive
    row.note = note
    row.marked_by = actor
    row.updated_at = utcnow()
    if false_positive:  # only active campaigns floor their members: the member rows stay as history
        row.state = "ended"
    _alert_verdict(session, row, actor, false_positive, note)
    audit.record(
        session=session,
        actor=actor,
        action="campaign.feedback",
        target=f"campaign:{campaign_id}",
        detail={"false_positive": false_positive, "note": note},
    )
    session.flush()
    return row


def _alert_verdict(
    session: Session, row: CampaignRow, actor: str, false_positive: bool, note: str | None
) -> None:
    """The campaign's alert says what the campaign says: a false positive resolves it if it is
    still open (the stage closes it only at its next write, and a stage restarted without
    the campaign never would); an alert that already says so is left as the analyst wrote it."""
    query = select(AlertRow).where(
        AlertRow.kind == "campaign", AlertRow.client_id == row.campaign_id, AlertRow.model_id == row.model_id
    )
    for alert in session.scalars(query).all():
        if false_positive and alert.state != "resolved":
            resolve_alert(
                session=session, alert_id=alert.alert_id, actor=actor, note=note, false_positive=True
            )
        elif alert.false_positive != false_positive:
            record_feedback(
                session=session,
                alert_id=alert.alert_id,
                actor=actor,
                false_positive=false_positive,
                note=note,
            )


def false_positives(*, session: Session, campaign_ids: Sequence[str]) -> set[str]:
    """Those of ``campaign_ids`` an analyst marked a false positive."""
    marked: set[str] = set()
    for start in range(0, len(campaign_ids), 500):
        chunk = list(campaign_ids[start : start + 500])
        marked.update(
            session.scalars(
                select(CampaignRow.campaign_id).where(
                    CampaignRow.campaign_id.in_(chunk), CampaignRow.false_positive.is_(True)
                )
            )
        )
    return marked


def campaign_floors(
    *, session: Session, client_ids: Sequence[str]
) -> dict[tuple[str, str], tuple[float, tuple[str, ...]]]:
    """For each (client, model) in a live campaign: the highest campaign risk and the campaigns."""
    if not client_ids:
        return {}
    rows = session.execute(
        select(
            CampaignMemberRow.client_id, CampaignMemberRow.model_id, CampaignRow.campaign_id, CampaignRow.risk
        )
        .join(CampaignRow, CampaignRow.campaign_id == CampaignMemberRow.campaign_id)
        .where(CampaignMemberRow.client_id.in_(list(client_ids)), CampaignRow.state == "active")
    ).all()
    floors: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
    for client_id, model_id, campaign_id, risk in rows:
        best, ids = floors.get((client_id, model_id), (0.0, ()))
        floors[(client_id, model_id)] = (max(best, risk), (*ids, campaign_id))
    return floors
