"""Campaigns over the API (SQLite and PostgreSQL): list and detail, the analyst's verdict,
and a campaign's risk as a floor on each member's decision."""

from __future__ import annotations

import httpx

from querywatch.detector.adapters.db.campaigns import save_campaigns
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.engine.campaigns.campaign import Campaign, Link
from tests.api.seed import T0, seed_client
from tests.api.server import ApiServer


def _campaign(campaign_id: str, members: list[str], risk: float, ts: float = T0) -> Campaign:
    link = Link(members[0], members[1], "lineage", 42.0, 12, 40, ("network",))
    return Campaign(
        campaign_id,
        "digits-v1",
        members,
        ts,
        [link],
        risk=risk,
        peak_risk=risk,
        reasons=("3 accounts, 90 queries: 12 of 40 same-cell pairs ...",),
        features={"accounts": float(len(members))},
        first_alert_ts=ts + 60,
    )


def test_campaigns_are_listed_and_shown(http: httpx.Client, api_server: ApiServer) -> None:
    with transaction(api_server.sessions) as session:
        save_campaigns(
            session=session, live=[_campaign(f"cp_{i}", ["a", "b", f"c{i}"], 0.9, T0 + i) for i in range(3)]
        )
    headers = api_server.reader_headers
    page = http.get("/v1/campaigns", params={"limit": 2}, headers=headers).json()
    assert [c["campaign_id"] for c in page["items"]] == ["cp_2", "cp_1"] and page["next_cursor"]
    rest = http.get("/v1/campaigns", params={"cursor": page["next_cursor"]}, headers=headers).json()
    assert [c["campaign_id"] for c in rest["items"]] == ["cp_0"] and rest["next_cursor"] is None
    one = http.get("/v1/campaigns/cp_1", headers=headers).json()
    assert one["members"] == ["a", "b", "c1"] and one["links"][0]["shared_keys"] == ["network"]
    assert one["first_alert_at"] is not None and one["state"] == "active"
    only = http.get("/v1/campaigns", params={"client_id": "c2"}, headers=headers).json()["items"]
    assert [c["campaign_id"] for c in only] == ["cp_2"]
    assert http.get("/v1/campaigns/cp_nope", headers=headers).status_code == 404
    assert http.get("/v1/campaigns", params={"cursor": "nonsense"}, headers=headers).status_code == 400


def test_campaign_risk_is_a_floor_and_a_false_positive_lifts_it(
    http: httpx.Client, api_server: ApiServer
) -> None:
    seed_client(api_server.sessions, "small-1", 0.1)
    seed_client(api_server.sessions, "small-2", 0.1)
    with transaction(api_server.sessions) as session:
        save_campaigns(session=session, live=[_campaign("cp_theft", ["small-1", "small-2"], 0.97)])
    decision = http.get("/v1/clients/small-1/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "block"
    assert any("campaign risk 0.97" in r for r in decision["models"][0]["reasons"])
    body = {"false_positive": True, "note": "one customer's teams"}
    assert (
        http.post("/v1/campaigns/cp_theft/feedback", json=body, headers=api_server.reader_headers).status_code
        == 403
    )
    marked = http.post("/v1/campaigns/cp_theft/feedback", json=body, headers=api_server.admin_headers).json()
    assert marked["false_positive"] is True and marked["state"] == "ended" and marked["note"] == body["note"]
    after = http.get("/v1/clients/small-1/decision", headers=api_server.reader_headers).json()
    assert after["action"] == "allow"
