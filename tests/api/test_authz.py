"""``GET /v1/authz``: the decision as a gateway asks for it, in status and headers."""

from __future__ import annotations

import httpx

from querywatch.detector.client import client_id_for_key
from tests.api.seed import seed_client
from tests.api.server import ApiServer


def _authz(http: httpx.Client, api: ApiServer, **headers: str) -> httpx.Response:
    return http.get("/v1/authz", headers={**api.reader_headers, **headers})


def test_allow_degrade_and_block_in_status_and_headers(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "calm", 0.1)
    seed_client(api_server.sessions, "odd", 0.6)
    seed_client(api_server.sessions, "thief", 0.95)
    calm = _authz(http, api_server, **{"X-Querywatch-Client": "calm", "X-Querywatch-Model": "digits-v1"})
    assert calm.status_code == 200
    assert calm.headers["x-querywatch-action"] == "allow"
    assert calm.headers["x-querywatch-model"] == "digits-v1"
    assert "x-querywatch-degrade" not in calm.headers
    odd = _authz(http, api_server, **{"X-Querywatch-Client": "odd"})
    assert odd.status_code == 200
    assert (odd.headers["x-querywatch-action"], odd.headers["x-querywatch-degrade"]) == (
        "degrade",
        "precision=1",
    )
    assert odd.headers["x-querywatch-risk"] == "0.6000"
    assert odd.json()["action"] == "degrade"
    thief = _authz(http, api_server, **{"X-Querywatch-Client": "thief"})
    assert thief.status_code == 403
    assert thief.headers["content-type"] == "application/problem+json"
    assert thief.headers["x-querywatch-action"] == "block"
    assert thief.json()["client_id"] == "thief"
    unknown = _authz(http, api_server, **{"X-Querywatch-Client": "never-seen"})
    assert (unknown.status_code, unknown.headers["x-querywatch-action"]) == (200, "allow")


def test_a_raw_key_is_hashed_as_the_client_library_does(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, client_id_for_key("sk-live-thief"), 0.99)
    answer = _authz(http, api_server, **{"X-Querywatch-Client-Key": "sk-live-thief"})
    assert answer.status_code == 403
    assert answer.json()["client_id"] == client_id_for_key("sk-live-thief")


def test_the_status_an_analyst_sets_wins(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "scraper", 0.1)
    seed_client(api_server.sessions, "qa-bot", 0.99)
    for client, status in (("scraper", "blocked"), ("qa-bot", "trusted")):
        http.put(f"/v1/clients/{client}/status", json={"status": status}, headers=api_server.admin_headers)
    assert _authz(http, api_server, **{"X-Querywatch-Client": "scraper"}).status_code == 403
    assert _authz(http, api_server, **{"X-Querywatch-Client": "qa-bot"}).status_code == 200


def test_without_a_client_or_a_key_it_says_what_is_missing(http: httpx.Client, api_server: ApiServer) -> None:
    missing = _authz(http, api_server)
    assert missing.status_code == 400
    assert "X-Querywatch-Client" in missing.json()["detail"]
    assert http.get("/v1/authz", headers={"X-Querywatch-Client": "calm"}).status_code == 401


def test_a_client_named_both_ways_is_refused_not_judged_by_the_name_the_caller_chose(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """A gateway that forwards the caller's headers let a blocked caller add X-Querywatch-Client
    with another client's id beside its key, and that id was the one judged."""
    seed_client(api_server.sessions, client_id_for_key("sk-thief"), 0.99)
    both = _authz(http, api_server, **{"X-Querywatch-Client": "calm", "X-Querywatch-Client-Key": "sk-thief"})
    assert both.status_code == 400 and "not both" in both.json()["detail"]
