"""The dashboard's Campaigns pages: the list, one campaign's members, links and coverage, and
an admin marking it a false positive."""

from __future__ import annotations

from typing import Any

import pytest

from querywatch.detector.adapters.db.campaigns import save_campaigns
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.engine.campaigns.campaign import Campaign, Link
from tests.api.server import ApiServer
from tests.ui.conftest import Console, screenshot, sign_in
from tests.ui.scenario import MODEL

pytestmark = pytest.mark.browser
MEMBERS = ["acct-c1", "acct-c2", "acct-c3"]


@pytest.fixture
def with_campaign(dashboard: ApiServer) -> ApiServer:
    links = [
        Link("acct-c1", "acct-c2", "lineage", 35.2, 11, 38, ("network",)),
        Link("acct-c2", "acct-c3", "lineage with the campaign", 23.0, 9, 16),
    ]
    campaign = Campaign(
        "cp_browser",
        MODEL,
        list(MEMBERS),
        1_800_000_000.0,
        links,
        risk=0.96,
        peak_risk=0.98,
        reasons=(
            "3 accounts, 87 queries: 20 of 54 same-cell pairs of their sampled queries are structured steps",
        ),
        features={"union_cells": 41.0, "union_coverage_ratio": 0.9, "queries": 87.0},
        extraction=0.41,
        first_alert_ts=1_800_000_600.0,
    )
    with transaction(dashboard.sessions) as session:
        save_campaigns(session=session, live=[campaign])
    return dashboard


def test_campaign_list_detail_and_false_positive(
    with_campaign: ApiServer, page: Any, console: Console
) -> None:
    sign_in(page, with_campaign.base_url, with_campaign.admin_key)
    page.click("#nav a[data-view=campaigns]")
    row = page.wait_for_selector("#campaign-rows tr.campaign")
    assert "cp_browser" in row.inner_text() and "0.98" in row.inner_text()
    page.click("#campaign-rows a")
    members = page.wait_for_selector("#campaign-members")
    assert [m.strip() for m in members.inner_text().split("\n") if m.strip()] == MEMBERS
    links = page.inner_text("#campaign-links")
    assert "lineage with the campaign" in links and "11 of 38" in links and "network" in links
    assert "41 input cells" in page.inner_text("#campaign .coverage")
    screenshot(page, "campaign")
    page.fill(".verdict-form input[name=note]", "one customer's teams")
    page.click(".verdict-form button")
    page.wait_for_selector("#campaign .campaign-state:has-text('false positive')")
    assert "one customer's teams" in page.inner_text("#campaign .campaign-state")
    assert console.unexpected() == []


def test_a_reader_sees_no_verdict_button(with_campaign: ApiServer, page: Any, console: Console) -> None:
    sign_in(page, with_campaign.base_url, with_campaign.reader_key)
    page.goto(f"{with_campaign.base_url}/ui/#/campaign/cp_browser")
    page.wait_for_selector("#campaign-members")
    assert page.query_selector(".verdict-form") is None
    assert console.unexpected() == []
