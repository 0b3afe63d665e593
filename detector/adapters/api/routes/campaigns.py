"""Campaigns: the list, one campaign with its members and links, and the analyst's verdict."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.api.campaign_schemas import CampaignPage, CampaignPublic, CampaignVerdict
from querywatch.detector.adapters.api.deps import AdminKey, ReaderKey, SessionDep, actor_name
from querywatch.detector.adapters.api.routes.responses import ADMIN, READ, problems
from querywatch.detector.adapters.db.campaigns import (
    CampaignNotFound,
    get_campaign,
    list_campaigns,
    mark_false_positive,
)

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
CampaignId = Annotated[str, Path(min_length=1, max_length=64, description="The campaign's id (`cp_…`).")]


@router.get("", response_model=CampaignPage, responses={**READ, **problems(400)})
def list_campaigns_newest_first(
    session: SessionDep,
    _key: ReaderKey,
    model: Annotated[str | None, Query(max_length=256)] = None,
    state: Annotated[Literal["active", "ended"] | None, Query()] = None,
    client_id: Annotated[
        str | None, Query(max_length=256, description="Only campaigns with this member.")
    ] = None,
    limit: cursors.PageLimit = 50,
    cursor: cursors.PageCursor = None,
) -> CampaignPage:
    """Campaigns, newest first (by the event time of their first link); follow `next_cursor`."""
    rows = list_campaigns(
        session=session,
        limit=limit + 1,
        after=cursors.campaign_cursor(cursor),
        model_id=model,
        state=state,
        client_id=client_id,
    )
    return CampaignPage.of(rows, limit, lambda c: [c.opened_at.isoformat(), c.campaign_id])


@router.get("/{campaign_id}", response_model=CampaignPublic, responses={**READ, **problems(404)})
def one_campaign(session: SessionDep, _key: ReaderKey, campaign_id: CampaignId) -> CampaignPublic:
    row = get_campaign(session=session, campaign_id=campaign_id)
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r}")
    return CampaignPublic.model_validate(row)


@router.post("/{campaign_id}/feedback", response_model=CampaignPublic, responses={**ADMIN, **problems(404)})
def verdict(
    session: SessionDep, key: AdminKey, campaign_id: CampaignId, body: CampaignVerdict
) -> CampaignPublic:
    """Mark a campaign a false positive (it ends: its members lose the campaign floor, its open
    alert is resolved as a false positive), or not (audited)."""
    row = mark_false_positive(
        session=session,
        campaign_id=campaign_id,
        actor=actor_name(key),
        false_positive=body.false_positive,
        note=body.note,
    )
    session.commit()
    return CampaignPublic.model_validate(row)
