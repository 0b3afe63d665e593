from __future__ import annotations

from dataclasses import replace

import httpx
import numpy as np

from querywatch.detector.adapters.db.profiles import save_profile
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.engine.outcomes import severity_for
from querywatch.models.profile import fit_profile
from tests.api.seed import T0, seed_client
from tests.api.server import ApiServer


def test_alert_feed_filters_and_pages(http: httpx.Client, api_server: ApiServer) -> None:
    risks = [0.85 + i / 50 for i in range(7)]  # 0.85 ... 0.97: medium and high
    ids = [seed_client(api_server.sessions, f"c{i}", r, alert=True, ts=T0 + i) for i, r in enumerate(risks)]
    seen = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/alerts", params=params, headers=api_server.reader_headers).json()
        seen += [a["alert_id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids[::-1]  # newest first
    one = http.get("/v1/alerts", params={"client_id": "c3"}, headers=api_server.reader_headers).json()[
        "items"
    ]
    assert [a["alert_id"] for a in one] == [ids[3]]
    assert one[0]["technique"] == "AML.T0024.002" and one[0]["state"] == "open"
    high = http.get("/v1/alerts", params={"severity": "high"}, headers=api_server.reader_headers).json()[
        "items"
    ]
    assert {a["client_id"] for a in high} == {
        f"c{i}" for i, r in enumerate(risks) if severity_for(r) == "high"
    }
    assert len(high) >= 2


def test_ack_then_resolve_as_false_positive(http: httpx.Client, api_server: ApiServer) -> None:
    alert_id = seed_client(api_server.sessions, "acct-9", 0.97, alert=True)
    assert alert_id is not None
    path = f"/v1/alerts/{alert_id}"
    assert http.post(f"{path}/ack", headers=api_server.reader_headers).status_code == 403
    acked = http.post(f"{path}/ack", headers=api_server.admin_headers).json()
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"].startswith("test-admin")
    body = {"note": "load test", "false_positive": True}
    resolved = http.post(f"{path}/resolve", json=body, headers=api_server.admin_headers).json()
    assert (resolved["state"], resolved["false_positive"], resolved["resolution_note"]) == (
        "resolved",
        True,
        "load test",
    )
    assert http.get(path, headers=api_server.reader_headers).json()["state"] == "resolved"
    again = http.post(f"{path}/resolve", json=body, headers=api_server.admin_headers)
    assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
    fps = http.get("/v1/alerts", params={"false_positive": "true"}, headers=api_server.reader_headers).json()[
        "items"
    ]
    assert [a["alert_id"] for a in fps] == [alert_id]
    assert http.get("/v1/alerts/al_missing", headers=api_server.reader_headers).status_code == 404
    assert http.post("/v1/alerts/al_missing/ack", headers=api_server.admin_headers).status_code == 404


def test_models_list_clients_and_open_alerts(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "a", 0.95, alert=True, model_id="digits-v1")
    seed_client(api_server.sessions, "b", 0.1, model_id="digits-v1")
    seed_client(api_server.sessions, "c", 0.2, model_id="text-v2")
    models = http.get("/v1/models", headers=api_server.reader_headers).json()
    assert [(m["model_id"], m["clients"], m["open_alerts"]) for m in models] == [
        ("digits-v1", 2, 1),
        ("text-v2", 1, 0),
    ]
    assert models[0]["max_risk"] == 0.95


def test_models_show_the_reference_size_and_the_derived_thresholds(
    http: httpx.Client, api_server: ApiServer
) -> None:
    rng = np.random.default_rng(0)
    profile = fit_profile(rng.normal(size=(600, 8)), model_id="tab-v1", version="1", cells=8, components=4)
    with transaction(api_server.sessions) as session:
        save_profile(session=session, model_id="tab-v1", version=1, dim=8, blob=profile.to_bytes())
    model = next(
        m
        for m in http.get("/v1/models", headers=api_server.reader_headers).json()
        if m["model_id"] == "tab-v1"
    )
    assert model["reference_size"] == 600 and model["required_reference_size"] == 5000
    assert model["warning"] is None  # small, but a trusted file: `querywatch profile` said so when built
    t = model["thresholds"]
    assert t["ood_threshold"] == profile.ood_threshold and t["far_threshold"] > t["ood_threshold"]
    assert t["spread_threshold"] == profile.spread_threshold
    assert 0 < t["null_far"] < 1 and t["null_out_of_profile"] == max(0.2, t["drift_share"])
    assert t["margin_threshold"] == 0.0 and "null_boundary" not in t  # no answers: the test is silent
    assert "null_confidence" not in t


def test_models_show_when_and_why_the_profile_was_refreshed(
    http: httpx.Client, api_server: ApiServer
) -> None:
    rng = np.random.default_rng(1)
    fitted = replace(
        fit_profile(rng.normal(size=(600, 8)), model_id="drift-v1", version="1", cells=8, components=4),
        origin="warmup",
    )
    refreshed = replace(
        fitted,
        revision=1,
        refreshed_at=1_790_000_000.0,
        refresh_reason="drift: 80% ...",
        left_out=("acct-7",),
    )
    with transaction(api_server.sessions) as session:
        for profile in (fitted, refreshed):
            save_profile(
                session=session,
                model_id="drift-v1",
                version=profile.revision + 1,
                dim=8,
                blob=profile.to_bytes(),
            )
    model = next(
        m
        for m in http.get("/v1/models", headers=api_server.reader_headers).json()
        if m["model_id"] == "drift-v1"
    )
    assert model["versions"] == [1, 2] and model["origin"] == "warmup" and model["answers"] == "reference"
    # an instant, as every time the API gives
    assert (model["refreshed_at"], model["refresh_reason"]) == ("2026-09-21T14:13:20Z", "drift: 80% ...")
    assert model["left_out"] == ["acct-7"]
    # a warm-up of 600 inputs: thinner than a profile of it should be
    assert model["warning"].startswith("drift-v1's profile is a warm-up of 600 inputs from ")
    assert "needs 5,000 inputs" in model["warning"]
