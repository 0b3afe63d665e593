"""Decisions keyed by (client, model), the per-model policy, silences and feedback, over HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from querywatch.detector.adapters.db import policies
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.db.tables import (
    ModelPolicyVersionRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.engine.outcomes import (
    ALERT_UPDATED,
    AlertEvent,
    Outcome,
    RiskUpdate,
)
from tests.api.seed import T0, seed_client
from tests.api.server import ApiServer
from tests.outcomes import first_alert


def _deliveries(api_server: ApiServer, *, notices: bool = False) -> int:
    """Alert deliveries queued (or, with ``notices``, notice deliveries)."""
    column = WebhookDeliveryRow.notice_id if notices else WebhookDeliveryRow.event_id
    with api_server.sessions() as session:
        return int(session.scalar(select(func.count()).where(column.is_not(None))) or 0)


def _endpoint(api_server: ApiServer) -> None:
    with transaction(api_server.sessions) as session:
        session.add(
            WebhookEndpointRow(url="https://soc.example.test/hook", secret="whsec_x", min_severity="low")
        )


def test_a_client_blocked_on_one_model_stays_blocked_when_it_queries_another(
    http: httpx.Client, api_server: ApiServer
) -> None:
    seed_client(api_server.sessions, "acct-9", 0.97, model_id="digits-v1", alert=True)
    decision = http.get("/v1/clients/acct-9/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "block"
    seed_client(api_server.sessions, "acct-9", 0.01, model_id="credit-v1", ts=T0 + 60)
    decision = http.get("/v1/clients/acct-9/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "block" and decision["risk"] == 0.97
    assert {m["model_id"]: m["action"] for m in decision["models"]} == {
        "digits-v1": "block",
        "credit-v1": "allow",
    }
    client = http.get("/v1/clients/acct-9", headers=api_server.reader_headers).json()
    assert (client["model_id"], client["risk"]) == ("digits-v1", 0.97)  # v1 fields: the riskiest model
    assert sorted((m["model_id"], m["risk"]) for m in client["models"]) == [
        ("credit-v1", 0.01),
        ("digits-v1", 0.97),
    ]
    board = http.get("/v1/clients", headers=api_server.reader_headers).json()["items"]
    assert [(c["client_id"], c["model_id"]) for c in board] == [
        ("acct-9", "digits-v1"),
        ("acct-9", "credit-v1"),
    ]


def test_an_analysts_status_holds_on_every_model(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "acct-5", 0.1, model_id="digits-v1")
    seed_client(api_server.sessions, "acct-5", 0.2, model_id="credit-v1")
    answer = http.put(
        "/v1/clients/acct-5/status",
        json={"status": "blocked", "note": "scraper"},
        headers=api_server.admin_headers,
    )
    assert answer.status_code == 200
    decision = http.get("/v1/clients/acct-5/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "block" and {m["action"] for m in decision["models"]} == {"block"}
    seed_client(api_server.sessions, "acct-5", 0.0, model_id="third-v1", ts=T0 + 5)  # a model seen later
    board = http.get("/v1/clients", params={"status": "blocked"}, headers=api_server.reader_headers).json()
    assert sorted(c["model_id"] for c in board["items"]) == ["credit-v1", "digits-v1", "third-v1"]


def test_trusted_clients_never_page(http: httpx.Client, api_server: ApiServer) -> None:
    _endpoint(api_server)
    seed_client(api_server.sessions, "acct-qa", 0.1)
    http.put("/v1/clients/acct-qa/status", json={"status": "trusted"}, headers=api_server.admin_headers)
    seed_client(api_server.sessions, "acct-qa", 0.99, alert=True, ts=T0 + 10)
    seed_client(api_server.sessions, "acct-thief", 0.99, alert=True, ts=T0 + 10)
    assert _deliveries(api_server) == 1  # the thief's, not the trusted client's
    alerts = http.get("/v1/alerts", headers=api_server.reader_headers).json()["items"]
    assert {a["client_id"]: a["decision"] for a in alerts} == {"acct-qa": "allow", "acct-thief": "block"}


def test_monitor_mode_allows_and_does_not_page_and_is_reversible(
    http: httpx.Client, api_server: ApiServer
) -> None:
    _endpoint(api_server)
    put = http.put(
        "/v1/models/digits-v1/policy",
        json={"mode": "monitor", "note": "shadow week"},
        headers=api_server.admin_headers,
    )
    assert put.status_code == 200 and put.json()["mode"] == "monitor" and put.json()["version"] == 1
    assert (
        http.put(
            "/v1/models/digits-v1/policy", json={"mode": "monitor"}, headers=api_server.reader_headers
        ).status_code
        == 403
    )
    seed_client(api_server.sessions, "acct-1", 0.99, alert=True)
    assert _deliveries(api_server) == 0
    decision = http.get("/v1/clients/acct-1/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "allow" and "monitor mode" in decision["reasons"][0]
    back = http.post(
        "/v1/models/digits-v1/policy/revert", json={"version": 1}, headers=api_server.admin_headers
    )
    assert back.json()["version"] == 2
    enforce = http.put(
        "/v1/models/digits-v1/policy", json={"mode": "enforce"}, headers=api_server.admin_headers
    )
    assert enforce.json()["version"] == 3
    versions = http.get("/v1/models/digits-v1/policy/versions", headers=api_server.reader_headers).json()
    assert [v["policy"]["mode"] for v in versions] == ["enforce", "monitor", "monitor"]
    assert (
        http.get("/v1/clients/acct-1/decision", headers=api_server.reader_headers).json()["action"] == "block"
    )


def test_silences_stop_paging_until_removed_and_leave_the_decision(
    http: httpx.Client, api_server: ApiServer
) -> None:
    _endpoint(api_server)
    expires = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    made = http.post(
        "/v1/silences",
        json={"client_id": "acct-2", "comment": "pen test", "expires_at": expires},
        headers=api_server.admin_headers,
    )
    assert made.status_code == 201
    silence = made.json()
    assert (
        http.post(
            "/v1/silences", json={"comment": "all", "expires_at": expires}, headers=api_server.admin_headers
        ).status_code
        == 422
    )
    assert _deliveries(api_server, notices=True) == 1  # the announcement, to the one endpoint
    seed_client(api_server.sessions, "acct-2", 0.99, alert=True)
    assert _deliveries(api_server) == 0
    [alert] = http.get("/v1/alerts", headers=api_server.reader_headers).json()["items"]
    assert (alert["decision"], alert["silenced_by"]) == ("block", silence["id"])
    assert (
        http.get("/v1/clients/acct-2/decision", headers=api_server.reader_headers).json()["action"] == "block"
    )
    assert http.delete(f"/v1/silences/{silence['id']}", headers=api_server.admin_headers).status_code == 204
    assert http.get("/v1/silences", headers=api_server.reader_headers).json() == []
    seed_client(api_server.sessions, "acct-3", 0.99, alert=True)
    assert _deliveries(api_server) == 1


def test_a_model_id_holding_a_slash_has_a_policy(http: httpx.Client, api_server: ApiServer) -> None:
    """Ids such as ``org/digits`` (events allow them) matched no policy route: 404, so such a
    model could not be put in monitor mode."""
    admin, reader = api_server.admin_headers, api_server.reader_headers
    assert (
        http.put("/v1/models/org/digits/policy", json={"mode": "monitor"}, headers=admin).status_code == 200
    )
    assert http.get("/v1/models/org%2Fdigits/policy", headers=reader).json()["mode"] == "monitor"
    versions = http.get("/v1/models/org/digits/policy/versions", headers=reader).json()
    assert [v["policy"]["mode"] for v in versions] == ["monitor"]
    assert http.get("/v1/models/org/policy", headers=reader).json()["mode"] == "enforce"  # another model


def test_a_policy_says_whether_its_model_was_ever_seen(http: httpx.Client, api_server: ApiServer) -> None:
    """A policy put on a mistyped model id answered 200 as any other: the admin believed the
    model in monitor mode."""
    admin = api_server.admin_headers
    typo = http.put("/v1/models/digits-V1-typo/policy", json={"mode": "monitor"}, headers=admin).json()
    assert (typo["version"], typo["seen"]) == (1, False)
    seed_client(api_server.sessions, "acct-9", 0.1)
    known = http.get("/v1/models/digits-v1/policy", headers=api_server.reader_headers).json()
    assert known["seen"] is True


def test_a_silences_end_needs_its_offset_and_is_kept_in_utc(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """A time without an offset could not be compared with the clock: a 500. With one, the
    answer echoed the offset sent where every later read says UTC."""
    body = {"client_id": "acct-5", "comment": "load test"}
    naive = http.post(
        "/v1/silences", json={**body, "expires_at": "2099-01-01T00:00:00"}, headers=api_server.admin_headers
    )
    assert naive.status_code == 422 and "timezone" in naive.text
    made = http.post(
        "/v1/silences",
        json={**body, "expires_at": "2099-01-01T00:00:00+02:00"},
        headers=api_server.admin_headers,
    )
    assert made.status_code == 201 and made.json()["expires_at"] == "2098-12-31T22:00:00Z"
    [listed] = http.get("/v1/silences", headers=api_server.reader_headers).json()
    assert listed["expires_at"] == made.json()["expires_at"]


def test_polling_with_after_sees_updates(http: httpx.Client, api_server: ApiServer) -> None:
    alert_id = seed_client(api_server.sessions, "acct-4", 0.85, alert=True)
    first = http.get("/v1/alerts", params={"after": 0}, headers=api_server.reader_headers).json()
    assert [a["alert_id"] for a in first["items"]] == [alert_id] and first["items"][0]["severity"] == "medium"
    cursor = first["next_after"]
    assert (
        http.get("/v1/alerts", params={"after": cursor}, headers=api_server.reader_headers).json()["items"]
        == []
    )
    opened = first_alert(RiskUpdate("acct-4", "digits-v1", T0, 100, 0.85))
    later = RiskUpdate("acct-4", "digits-v1", T0 + 120, 300, 0.995, ("boundary",), {"coverage": 1.0})
    event = AlertEvent(
        ALERT_UPDATED, 2, later.ts, replace(opened, risk=0.995, severity="critical", queries=300)
    )
    with transaction(api_server.sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(later, event)])
    changed = http.get("/v1/alerts", params={"after": cursor}, headers=api_server.reader_headers).json()
    [alert] = changed["items"]
    assert (alert["severity"], alert["sequence"], alert["risk"]) == ("critical", 2, 0.995)
    assert changed["next_after"] > cursor
    events = http.get(f"/v1/alerts/{alert_id}/events", headers=api_server.reader_headers).json()
    assert [(e["type"], e["body"]["severity"]) for e in events] == [
        ("alert.opened", "medium"),
        ("alert.updated", "critical"),
    ]
    critical = http.get(
        "/v1/alerts", params={"state": "open", "severity": "critical"}, headers=api_server.reader_headers
    )
    assert [a["alert_id"] for a in critical.json()["items"]] == [alert_id]


def test_false_positive_feedback_feeds_calibration_applied_by_an_admin(
    http: httpx.Client, api_server: ApiServer
) -> None:
    fp = seed_client(api_server.sessions, "acct-qa", 0.86, alert=True)
    seed_client(api_server.sessions, "acct-thief", 0.99, alert=True)
    answer = http.post(
        f"/v1/alerts/{fp}/feedback",
        json={"false_positive": True, "note": "QA"},
        headers=api_server.admin_headers,
    )
    assert answer.status_code == 200 and answer.json()["false_positive"] is True
    report = http.get("/v1/models/digits-v1/calibration", headers=api_server.reader_headers).json()
    assert (report["alerts"], report["false_positives"], report["true_alerts_below"]) == (2, 1, 0)
    assert 0.86 < report["suggested_page_risk"] < 0.99 and report["current_page_risk"] is None
    assert (
        http.post("/v1/models/digits-v1/calibration/apply", headers=api_server.reader_headers).status_code
        == 403
    )
    applied = http.post("/v1/models/digits-v1/calibration/apply", headers=api_server.admin_headers).json()
    assert applied["page_risk"] == report["suggested_page_risk"]


def test_extraction_degrade_is_opt_in_and_degrades_whatever_the_risk(
    http: httpx.Client, api_server: ApiServer
) -> None:
    seed_client(api_server.sessions, "heavy", 0.05, extraction=0.93)
    seed_client(api_server.sessions, "light", 0.05, extraction=0.42)
    seed_client(api_server.sessions, "unknown", 0.05)  # no labelled reference: no estimate
    headers = api_server.reader_headers
    assert http.get("/v1/clients/heavy/decision", headers=headers).json()["action"] == "allow"
    assert http.get("/v1/models/digits-v1/policy", headers=headers).json()["extraction_degrade"] is None
    too_high = http.put(
        "/v1/models/digits-v1/policy", json={"extraction_degrade": 1.5}, headers=api_server.admin_headers
    )
    assert too_high.status_code == 422

    put = http.put(
        "/v1/models/digits-v1/policy", json={"extraction_degrade": 0.9}, headers=api_server.admin_headers
    )
    assert put.json()["extraction_degrade"] == 0.9 and put.json()["version"] == 1
    heavy = http.get("/v1/clients/heavy/decision", headers=headers).json()
    assert (heavy["action"], heavy["output_precision"]) == (
        "degrade",
        api_server.settings.api.degraded_precision,
    )
    assert heavy["reasons"][-1] == (
        "a copy trained on this client's answers would already agree with the model on about 93% of "
        "inputs (degrade level 90%)"
    )
    assert heavy["mitigations"] == ["AML.M0002", "AML.M0004"]
    for client_id in ("light", "unknown"):
        assert http.get(f"/v1/clients/{client_id}/decision", headers=headers).json()["action"] == "allow"
    versions = http.get("/v1/models/digits-v1/policy/versions", headers=headers).json()
    assert versions[0]["policy"]["extraction_degrade"] == 0.9


def test_reverting_to_a_version_stored_before_a_field_existed_turns_that_field_off(
    http: httpx.Client, api_server: ApiServer
) -> None:
    with transaction(api_server.sessions) as session:  # as stored before extraction_degrade
        policies.set_policy(session=session, model_id="digits-v1", changes={"page_risk": 0.7}, actor="old")
        old = session.scalars(select(ModelPolicyVersionRow)).one()
        old.policy = {k: v for k, v in old.policy.items() if k != "extraction_degrade"}
    http.put(
        "/v1/models/digits-v1/policy", json={"extraction_degrade": 0.9}, headers=api_server.admin_headers
    )
    back = http.post(
        "/v1/models/digits-v1/policy/revert", json={"version": 1}, headers=api_server.admin_headers
    ).json()
    assert (back["version"], back["page_risk"], back["extraction_degrade"]) == (3, 0.7, None)


def test_a_degrade_level_above_its_block_level_is_refused_and_the_policy_stays(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """It would degrade no one (every client reaching it is blocked first); it was stored
    without a word. Against the default block level too; equal levels skip degrading."""
    admin = api_server.admin_headers
    block = api_server.settings.api.block_risk
    refused = http.put("/v1/models/digits-v1/policy", json={"degrade_risk": block + 0.05}, headers=admin)
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        f"degrade_risk {block + 0.05:g} is above block_risk {block:g} (the default): it would degrade no one"
    )
    assert http.put("/v1/models/digits-v1/policy", json={"extraction_block": 0.8}, headers=admin).is_success
    crossed = http.put("/v1/models/digits-v1/policy", json={"extraction_degrade": 0.9}, headers=admin)
    assert crossed.status_code == 422 and "extraction_block 0.8" in crossed.json()["detail"]
    policy = http.get("/v1/models/digits-v1/policy", headers=api_server.reader_headers).json()
    assert (policy["version"], policy["degrade_risk"], policy["extraction_degrade"]) == (1, None, None)
    assert http.put("/v1/models/digits-v1/policy", json={"degrade_risk": block}, headers=admin).is_success
