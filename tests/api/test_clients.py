from __future__ import annotations

import httpx
from sqlalchemy import select

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.tables import PendingStatusRow
from tests.api.seed import T0, seed_client
from tests.api.server import ApiServer


def test_leaderboard_sorts_filters_and_pages_without_gaps(http: httpx.Client, api_server: ApiServer) -> None:
    risks = {f"c{i:02d}": round((i % 7) / 10, 1) for i in range(23)}  # many ties
    for client_id, risk in risks.items():
        seed_client(api_server.sessions, client_id, risk, model_id="m-a" if risk >= 0.3 else "m-b")
    seen: list[dict[str, object]] = []
    cursor = None
    while True:
        page = http.get(
            "/v1/clients",
            params={"limit": 5, **({"cursor": cursor} if cursor else {})},
            headers=api_server.reader_headers,
        ).json()
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [c["client_id"] for c in seen] == sorted(risks, key=lambda c: (-risks[c], c))
    high = http.get(
        "/v1/clients", params={"min_risk": 0.5, "model": "m-a"}, headers=api_server.reader_headers
    ).json()
    assert {c["client_id"] for c in high["items"]} == {c for c, r in risks.items() if r >= 0.5}
    assert high["next_cursor"] is None


def test_one_client_and_its_history(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "acct-1", 0.2, ts=T0)
    seed_client(api_server.sessions, "acct-1", 0.7, ts=T0 + 60)
    client = http.get("/v1/clients/acct-1", headers=api_server.reader_headers).json()
    assert client["risk"] == 0.7 and client["status"] == "normal"
    assert client["first_seen"].startswith("2027-01-15T08:00:00")
    history = http.get("/v1/clients/acct-1/history", headers=api_server.reader_headers).json()
    assert [p["risk"] for p in history] == [0.2, 0.7]
    since = http.get(
        "/v1/clients/acct-1/history",
        params={"since": "2027-01-15T08:00:30Z"},
        headers=api_server.reader_headers,
    )
    assert [p["risk"] for p in since.json()] == [0.7]
    assert http.get("/v1/clients/nobody", headers=api_server.reader_headers).status_code == 404
    assert http.get("/v1/clients/nobody/history", headers=api_server.reader_headers).status_code == 404


def test_history_points_carry_the_extraction_estimate(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "acct-1", 0.2, ts=T0, extraction=0.31)
    seed_client(api_server.sessions, "acct-1", 0.7, ts=T0 + 60, extraction=0.58)
    seed_client(api_server.sessions, "acct-2", 0.2, ts=T0)  # a model without a labelled reference
    history = http.get("/v1/clients/acct-1/history", headers=api_server.reader_headers).json()
    assert [p["extraction"] for p in history] == [0.31, 0.58]
    assert history[1]["features"]["extraction"] == 0.58
    other = http.get("/v1/clients/acct-2/history", headers=api_server.reader_headers).json()
    assert [p["extraction"] for p in other] == [None]


def test_decision_follows_the_policy(http: httpx.Client, api_server: ApiServer) -> None:
    policy = api_server.settings.api
    for client_id, risk in [
        ("low", 0.1),
        ("mid", (policy.degrade_risk + policy.block_risk) / 2),
        ("high", policy.block_risk),
    ]:
        seed_client(api_server.sessions, client_id, risk)

    def decision(client_id: str) -> dict[str, object]:
        response = http.get(f"/v1/clients/{client_id}/decision", headers=api_server.reader_headers)
        assert response.status_code == 200
        return dict(response.json())

    assert decision("low")["action"] == "allow" and decision("low")["output_precision"] is None
    mid = decision("mid")
    assert mid["action"] == "degrade" and mid["output_precision"] == policy.degraded_precision
    assert mid["mitigations"] == ["AML.M0002", "AML.M0004"]
    assert decision("high")["action"] == "block"
    unknown = decision("never-seen")
    assert (unknown["action"], unknown["risk"]) == ("allow", 0.0)


def test_status_change_is_applied_audited_and_drives_the_decision(
    http: httpx.Client, api_server: ApiServer
) -> None:
    seed_client(api_server.sessions, "risky", 0.95)
    seed_client(api_server.sessions, "calm", 0.05)
    trusted = http.put(
        "/v1/clients/risky/status",
        json={"status": "trusted", "note": "our red team"},
        headers=api_server.admin_headers,
    )
    assert trusted.status_code == 200 and trusted.json()["status"] == "trusted"
    assert trusted.json()["status_changed_by"].startswith("test-admin")
    assert (
        http.get("/v1/clients/risky/decision", headers=api_server.reader_headers).json()["action"] == "allow"
    )
    http.put("/v1/clients/calm/status", json={"status": "blocked"}, headers=api_server.admin_headers)
    assert (
        http.get("/v1/clients/calm/decision", headers=api_server.reader_headers).json()["action"] == "block"
    )
    blocked = http.get("/v1/clients", params={"status": "blocked"}, headers=api_server.reader_headers).json()
    assert [c["client_id"] for c in blocked["items"]] == ["calm"]
    with api_server.sessions() as session:
        entries = audit.recent(session=session, target="client:risky")
    assert [(e.action, e.detail["to"], e.detail["note"]) for e in entries] == [
        ("client.status", "trusted", "our red team")
    ]
    bad = http.put("/v1/clients/calm/status", json={"status": "evil"}, headers=api_server.admin_headers)
    assert bad.status_code == 422


def test_a_nul_character_in_a_filter_is_a_problem_not_a_crash(
    http: httpx.Client, api_server: ApiServer
) -> None:
    for params in ({"model": "a\x00b"}, {"status": "\x00"}, {"cursor": "\x00"}):
        response = http.get("/v1/clients", params=params, headers=api_server.reader_headers)
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")


def test_a_client_id_with_slashes_is_addressable(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "org/team/key-1", 0.6)
    headers = api_server.reader_headers
    for path in ("/v1/clients/org/team/key-1", "/v1/clients/org%2Fteam%2Fkey-1"):
        assert http.get(path, headers=headers).json()["client_id"] == "org/team/key-1"
    assert [p["risk"] for p in http.get("/v1/clients/org/team/key-1/history", headers=headers).json()] == [
        0.6
    ]
    assert http.get("/v1/clients/org/team/key-1/decision", headers=headers).json()["action"] != "block"
    assert http.get("/v1/clients/org/team", headers=headers).status_code == 404


def test_a_client_can_be_blocked_before_its_first_event_audited(
    http: httpx.Client, api_server: ApiServer
) -> None:
    body = {"status": "blocked", "note": "key leaked on a forum"}
    typo = http.put("/v1/clients/leaked-key/status", json=body, headers=api_server.admin_headers)
    assert typo.status_code == 404  # an unknown id needs ?unseen=true, so a typo creates nothing
    blocked = http.put(
        "/v1/clients/leaked-key/status",
        params={"unseen": "true"},
        json=body,
        headers=api_server.admin_headers,
    )
    assert blocked.status_code == 200
    assert blocked.json() == {
        "client_id": "leaked-key",
        "status": "blocked",
        "status_changed_by": blocked.json()["status_changed_by"],
        "pending": True,
    }
    decision = http.get("/v1/clients/leaked-key/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "block" and decision["models"] == []
    # No client row stands for a model that does not exist: not on the leaderboard, not a model.
    reader = api_server.reader_headers
    unseen = http.get("/v1/clients/leaked-key", headers=reader)
    assert unseen.status_code == 404
    assert "status 'blocked'" in unseen.json()["detail"]  # the 404 says the block is waiting
    assert "status" not in http.get("/v1/clients/never-seen", headers=reader).json()["detail"]
    assert "leaked-key" not in [
        c["client_id"] for c in http.get("/v1/clients", headers=reader).json()["items"]
    ]
    assert "" not in [m["model_id"] for m in http.get("/v1/models", headers=reader).json()]
    seed_client(api_server.sessions, "leaked-key", 0.1)  # its first events arrive: still blocked
    seen = http.get("/v1/clients/leaked-key", headers=reader).json()
    assert seen["status"] == "blocked" and [m["model_id"] for m in seen["models"]] == ["digits-v1"]
    with api_server.sessions() as session:
        assert session.scalars(select(PendingStatusRow)).all() == []  # taken by the first row
    with api_server.sessions() as session:
        entries = audit.recent(session=session, target="client:leaked-key")
    assert [(e.detail["from"], e.detail["to"]) for e in entries] == [(None, "blocked")]


def test_a_query_parameter_the_endpoint_does_not_take_is_refused_by_name(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """``status`` filters clients, ``state`` filters alerts: the mix-up listed every alert."""
    seed_client(api_server.sessions, "acct-1", 0.9, alert=True)
    headers = api_server.reader_headers
    refused = http.get("/v1/alerts", params={"status": "resolved", "limit": 5}, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    (error,) = refused.json()["errors"]
    assert error["loc"] == ["query", "status"] and "state" in error["msg"] and "severity" in error["msg"]
    assert http.get("/v1/alerts", params={"state": "resolved"}, headers=headers).json()["items"] == []
    assert http.get("/v1/clients", params={"status": "normal"}, headers=headers).status_code == 200
    assert http.get("/v1/clients/acct-1", params={"model": "m"}, headers=headers).status_code == 422
    envoy = http.get("/v1/authz?/predict?x=1", headers={**headers, "X-Querywatch-Client": "acct-1"})
    assert envoy.status_code in (200, 403) and envoy.headers["X-Querywatch-Action"]


def test_an_id_ending_in_a_routes_name_is_read_through_that_route_as_the_readme_says(
    http: httpx.Client, api_server: ApiServer
) -> None:
    seed_client(api_server.sessions, "proj/history", 0.4)
    headers = api_server.reader_headers
    assert http.get("/v1/clients/proj/history", headers=headers).status_code == 404  # history of "proj"
    assert [p["risk"] for p in http.get("/v1/clients/proj/history/history", headers=headers).json()] == [0.4]
    assert (
        http.get("/v1/clients/proj/history/decision", headers=headers).json()["client_id"] == "proj/history"
    )
    listed = http.get("/v1/clients", headers=headers).json()["items"]
    assert [c["client_id"] for c in listed] == ["proj/history"]


def test_cursors_and_times_a_database_cannot_take_are_the_callers_mistake_not_a_500(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """Each of these reached the driver and failed there (a 500 and a traceback with the SQL):
    a lone surrogate half or a NUL inside a well-formed cursor, and times whose UTC instant
    leaves years 1-9999."""
    seed_client(api_server.sessions, "acct-1", 0.5)
    headers = api_server.reader_headers
    for cursor in ([0.5, "\ud800", "m"], [0.5, "a\x00b", "m"]):
        answer = http.get("/v1/clients", params={"cursor": cursors.encode(cursor)}, headers=headers)
        assert answer.status_code == 400, cursor
    for opened_at in ("9999-12-31T23:00:00-14:00", "0001-01-01T01:00:00+14:00"):
        for path in ("/v1/alerts", "/v1/campaigns"):
            answer = http.get(path, params={"cursor": cursors.encode([opened_at, "al_x"])}, headers=headers)
            assert answer.status_code == 400, (path, opened_at)
    far = http.get(
        "/v1/clients/acct-1/history", params={"since": "9999-12-31T23:00:00-14:00"}, headers=headers
    )
    assert far.status_code == 422 and "since" in far.json()["detail"]
