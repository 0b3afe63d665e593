"""API shapes of campaigns (``GET /v1/campaigns``, ``/v1/campaigns/{id}``, the analyst's verdict)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from querywatch.detector.adapters.api.cursors import Page


class CampaignLinkPublic(BaseModel):
    a: str
    b: str
    signal: str = Field(description="What linked the accounts (`lineage`, `lineage with the campaign`).")
    evidence: float = Field(description="Strength of the link: a log e-value bound, in nats.")
    hits: int = Field(description="Same-cell query pairs that are structured steps from one another.")
    trials: int = Field(description="Same-cell query pairs compared.")
    shared_keys: list[str] = Field(description="Grouping keys the two accounts share (support only).")


class CampaignPublic(BaseModel):
    """Accounts linked as one theft on one model, with why and what an analyst said."""

    model_config = ConfigDict(from_attributes=True)

    campaign_id: str
    model_id: str
    state: Literal["active", "ended"]
    opened_at: datetime = Field(description="Event time of the campaign's first link.")
    first_alert_at: datetime | None = Field(description="Event time its alert (kind `campaign`) opened.")
    updated_at: datetime
    risk: float
    peak_risk: float
    extraction: float | None = Field(description="Pooled extraction estimate of the union.")
    members: list[str] = Field(description="Member client ids, in the order they were found.")
    links: list[CampaignLinkPublic]
    reasons: list[str]
    evidence: dict[str, Any] = Field(description="The union's tests and coverage (names as in `reasons`).")
    capped: int = Field(description="Accounts linked but left out: the campaign had reached its cap.")
    false_positive: bool
    note: str | None
    marked_by: str | None


class CampaignPage(Page[CampaignPublic]):
    """Campaigns, newest first."""


class CampaignVerdict(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"false_positive": True, "note": "one customer's teams"}]},
    )

    false_positive: bool
    note: str | None = Field(None, max_length=4000)
