"""Campaigns over the API (SQLite and PostgreSQL): list and detail, the analyst's verdict
(given to the campaign or to its alert), and a campaign's risk as a floor on each member's
decision."""

from __future__ import annotations

from dataclasses import replace

import httpx

from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.alert_store import save_alert_events
from querywatch.detector.adapters.db.campaigns import save_campaigns
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.engine.campaigns.campaign import Campaign, Link
from querywatch.detector.engine.outcomes import ALERT_OPENED, AlertEvent, RiskUpdate
from tests.api.seed import T0, seed_client
from tests.api.server import ApiServer
from tests.outcomes import first_alert


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


def _stored_with_alert(api_server: ApiServer, campaign: Campaign) -> str:
    """``campaign`` and its open alert, stored as the stage's write stores them; the alert's id."""
    c = campaign
    update = RiskUpdate(c.campaign_id, c.model_id, c.opened_ts, 90, c.risk, c.reasons, c.features)
    alert = replace(first_alert(update), kind="campaign")
    with transaction(api_server.sessions) as session:
        save_campaigns(session=session, live=[campaign])
        save_alert_events(session=session, events=[AlertEvent(ALERT_OPENED, 1, c.opened_ts, alert)])
    return alert.alert_id


def _audited(api_server: ApiServer, target: str) -> list[tuple[str, str, dict[str, object]]]:
    """(action, actor, detail) of the audit entries about ``target``, oldest first."""
    with api_server.sessions() as session:
        return [(e.action, e.actor, e.detail) for e in audit.recent(session=session, target=target)][::-1]


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


def test_resolving_a_campaign_alert_as_a_false_positive_ends_the_campaign_as_its_feedback_does(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """It left the campaign active, its members floored: only the campaign's feedback ended it."""
    seed_client(api_server.sessions, "small-1", 0.1)
    theft = _stored_with_alert(api_server, _campaign("cp_theft", ["small-1", "small-2"], 0.97))
    kept = _stored_with_alert(api_server, _campaign("cp_kept", ["big-1", "big-2"], 0.97))
    admin, reader = api_server.admin_headers, api_server.reader_headers
    true_alert = http.post(f"/v1/alerts/{kept}/resolve", json={"note": "blocked them"}, headers=admin)
    assert true_alert.json()["state"] == "resolved"
    assert http.get("/v1/campaigns/cp_kept", headers=reader).json()["state"] == "active"
    assert _audited(api_server, "campaign:cp_kept") == []

    body = {"note": "one customer's teams", "false_positive": True}
    resolved = http.post(f"/v1/alerts/{theft}/resolve", json=body, headers=admin).json()
    assert (resolved["state"], resolved["false_positive"], resolved["resolution_note"]) == (
        "resolved",
        True,
        body["note"],
    )
    campaign = http.get("/v1/campaigns/cp_theft", headers=reader).json()
    assert (campaign["state"], campaign["false_positive"], campaign["note"]) == ("ended", True, body["note"])
    assert campaign["marked_by"] == resolved["resolved_by"]
    assert http.get("/v1/clients/small-1/decision", headers=reader).json()["action"] == "allow"
    [(action, actor, detail)] = _audited(api_server, "campaign:cp_theft")
    assert (action, detail) == ("campaign.feedback", {"false_positive": True, "note": body["note"]})
    assert [actor] == [a for _, a, _ in _audited(api_server, f"alert:{theft}")]


def test_a_campaign_verdict_is_its_alerts_and_an_alert_verdict_is_its_campaigns(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """The campaign's false positive left its alert open (until the stage next wrote, and for
    good when no running stage held the campaign); a mark taken back now unmarks it too."""
    alert_id = _stored_with_alert(api_server, _campaign("cp_teams", ["team-1", "team-2"], 0.97))
    admin, reader = api_server.admin_headers, api_server.reader_headers
    alert_path, verdict_path = f"/v1/alerts/{alert_id}", "/v1/campaigns/cp_teams/feedback"
    http.post(verdict_path, json={"false_positive": True, "note": "one customer"}, headers=admin)
    alert = http.get(alert_path, headers=reader).json()
    assert (alert["state"], alert["false_positive"], alert["resolution_note"]) == (
        "resolved",
        True,
        "one customer",
    )
    assert alert["resolved_by"].startswith("test-admin")

    http.post(verdict_path, json={"false_positive": False}, headers=admin)
    assert http.get(alert_path, headers=reader).json()["false_positive"] is False
    http.post(f"{alert_path}/feedback", json={"false_positive": True}, headers=admin)
    campaign = http.get("/v1/campaigns/cp_teams", headers=reader).json()
    assert (campaign["state"], campaign["false_positive"]) == ("ended", True)
    verdicts = [d["false_positive"] for a, _, d in _audited(api_server, "campaign:cp_teams")]
    assert verdicts == [True, False, True]
