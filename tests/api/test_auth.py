from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from querywatch.detector.adapters.db.apikeys import create_api_key, revoke_api_key
from querywatch.detector.adapters.db.migrate import downgrade
from querywatch.detector.adapters.db.session import transaction
from tests.api.server import ApiServer, running_api
from tests.storage.databases import ADMIN_URL, migrated_database

PROBLEM = "application/problem+json"


def test_health_is_open_and_ready(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_not_ready_is_said_without_the_database_url(tmp_path: Path) -> None:
    """The probe needs no key; it answered with the database's URL and the driver's words."""
    with migrated_database("sqlite", tmp_path) as settings, running_api(settings) as api:
        downgrade(settings, "-1")
        behind = httpx.get(f"{api.base_url}/readyz")
        assert behind.status_code == 503
        assert behind.json()["detail"] == (
            "the database is not at this release's schema: run `querywatch db upgrade`"
        )
        assert str(tmp_path) not in behind.text and "sqlite" not in behind.text


@pytest.mark.postgres
def test_a_database_that_cannot_be_reached_is_not_said_to_need_an_upgrade(tmp_path: Path) -> None:
    """A PostgreSQL that refused connections was reported as a schema to upgrade."""
    with migrated_database("postgres", tmp_path) as settings, running_api(settings) as api:
        name = make_url(settings.database.url).database
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                )
            unreachable = httpx.get(f"{api.base_url}/readyz")
            assert unreachable.status_code == 503
            assert unreachable.json()["detail"] == "the database cannot be reached (the API's log says why)"
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()


@pytest.mark.parametrize(
    "path", ["/v1/clients", "/v1/alerts", "/v1/models", "/v1/me", "/metrics", "/v1/clients/x/decision"]
)
def test_everything_else_needs_a_key(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 401


def test_wrong_and_malformed_keys_are_401(http: httpx.Client, api_server: ApiServer) -> None:
    tampered = api_server.reader_key[:-2] + ("AA" if not api_server.reader_key.endswith("AA") else "BB")
    for key in [tampered, "nonsense", "qw__", "qw_abc_def"]:
        assert http.get("/v1/me", headers={"X-API-Key": key}).status_code == 401


def test_reader_is_403_on_admin_routes_and_admin_is_not(http: httpx.Client, api_server: ApiServer) -> None:
    body = {"status": "blocked"}
    reader = http.put("/v1/clients/nobody/status", json=body, headers=api_server.reader_headers)
    assert reader.status_code == 403 and reader.headers["content-type"].startswith(PROBLEM)
    admin = http.put("/v1/clients/nobody/status", json=body, headers=api_server.admin_headers)
    assert admin.status_code == 404  # authorized; the client simply does not exist


def test_me_tells_the_role(http: httpx.Client, api_server: ApiServer) -> None:
    assert http.get("/v1/me", headers=api_server.reader_headers).json()["role"] == "reader"
    me = http.get("/v1/me", headers=api_server.admin_headers).json()
    assert me["role"] == "admin" and me["name"] == "test-admin"


def test_revoked_key_is_refused(http: httpx.Client, api_server: ApiServer) -> None:
    with transaction(api_server.sessions) as session:
        key = create_api_key(session=session, role="reader", name="short-lived")
    with transaction(api_server.sessions) as session:
        assert revoke_api_key(session=session, key_id=key.id)
    assert http.get("/v1/me", headers={"X-API-Key": key.secret}).status_code == 401


def test_metrics_accept_a_bearer_key(http: httpx.Client, api_server: ApiServer) -> None:
    http.get("/healthz")
    http.get("/v1/clients/acct-secret-42", headers=api_server.reader_headers)
    http.request("BREW-COFFEE-7", "/healthz")  # made-up methods share one label, not one each
    response = http.get("/metrics", headers={"Authorization": f"Bearer {api_server.reader_key}"})
    assert "BREW-COFFEE" not in response.text and 'method="other"' in response.text
    assert response.status_code == 200
    assert 'querywatch_api_request_seconds_count{method="GET",route="/healthz",status="200"}' in response.text
    assert 'route="/v1/clients/{client_id:path}",status="404"' in response.text
    assert "acct-secret-42" not in response.text  # templates, never raw ids, as labels


def test_unknown_route_and_bad_input_are_problems(http: httpx.Client, api_server: ApiServer) -> None:
    missing = http.get("/v1/nothing-here", headers=api_server.reader_headers)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    invalid = http.get("/v1/clients", params={"min_risk": "2"}, headers=api_server.reader_headers)
    assert invalid.status_code == 422 and invalid.headers["content-type"].startswith(PROBLEM)
    assert invalid.json()["errors"][0]["loc"] == ["query", "min_risk"]
    cursor = http.get("/v1/clients", params={"cursor": "!!"}, headers=api_server.reader_headers)
    assert cursor.status_code == 400
