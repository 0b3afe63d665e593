"""The decision endpoints' cache: a change made through this API applies at once, one made
elsewhere within ``api.decision_cache_seconds``, and a read never puts back stale data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from querywatch.detector.adapters.api.decision_cache import DecisionCache
from querywatch.detector.adapters.db.clients import set_status
from querywatch.detector.adapters.db.decision_inputs import Changes, watch_changes
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.config import ApiSettings
from tests.api.seed import seed_client
from tests.api.server import ApiServer, running_api
from tests.storage.databases import KINDS, migrated_database


def _action(http: httpx.Client, api: ApiServer, client: str) -> str:
    answer = http.get("/v1/authz", headers={**api.reader_headers, "X-Querywatch-Client": client})
    return str(answer.headers["x-querywatch-action"])


@pytest.fixture(params=KINDS)
def api_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    """A live API whose decision cache keeps entries a minute: only invalidation refreshes them."""
    with migrated_database(str(request.param), tmp_path) as settings:
        cached = settings.model_copy(update={"api": ApiSettings(decision_cache_seconds=60)})
        with running_api(cached) as server:
            yield server


def test_changes_through_the_api_apply_at_once(http: httpx.Client, api_server: ApiServer) -> None:
    seed_client(api_server.sessions, "acct-1", 0.95, model_id="digits-v1")
    assert _action(http, api_server, "acct-1") == "block"  # now cached
    admin = api_server.admin_headers
    http.put("/v1/models/digits-v1/policy", json={"mode": "monitor"}, headers=admin).raise_for_status()
    assert _action(http, api_server, "acct-1") == "allow"
    http.put("/v1/models/digits-v1/policy", json={"mode": "enforce"}, headers=admin).raise_for_status()
    assert _action(http, api_server, "acct-1") == "block"
    http.put("/v1/clients/acct-1/status", json={"status": "trusted"}, headers=admin).raise_for_status()
    assert _action(http, api_server, "acct-1") == "allow"
    http.put("/v1/clients/acct-1/status", json={"status": "normal"}, headers=admin).raise_for_status()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    silence = {"model_id": "digits-v1", "expires_at": until, "comment": "maintenance"}
    created = http.post("/v1/silences", json=silence, headers=admin)
    created.raise_for_status()
    decision = http.get("/v1/clients/acct-1/decision", headers=api_server.reader_headers).json()
    assert decision["action"] == "block" and decision["models"][0]["silenced_by"] == created.json()["id"]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_change_made_elsewhere_is_seen_after_the_ttl_and_one_made_here_at_once(tmp_path: Path) -> None:
    with migrated_database("sqlite", tmp_path) as settings:
        engine = make_engine(settings.database)
        watched, elsewhere = make_sessionmaker(engine), make_sessionmaker(engine)
        clock = _Clock()
        cache = DecisionCache(ttl=1.0, clock=clock)
        watch_changes(watched, cache.changed)
        seed_client(elsewhere, "acct-2", 0.2)
        with watched() as session:
            assert cache.client(session, "acct-2").status == "normal"
        with transaction(elsewhere) as session:  # another replica
            set_status(session=session, client_id="acct-2", status="blocked", actor="t")
        with watched() as session:
            assert cache.client(session, "acct-2").status == "normal"
            clock.now += 1.0
            assert cache.client(session, "acct-2").status == "blocked"
        with transaction(watched) as session:  # this API
            set_status(session=session, client_id="acct-2", status="trusted", actor="t")
        with watched() as session:
            assert cache.client(session, "acct-2").status == "trusted"
        with pytest.raises(RuntimeError), transaction(watched) as session:  # rolled back: kept
            set_status(session=session, client_id="acct-2", status="normal", actor="t")
            raise RuntimeError
        assert cache.client(elsewhere(), "acct-2").status == "trusted"
        engine.dispose()


def test_a_read_that_overlaps_a_change_is_not_kept() -> None:
    cache = DecisionCache(ttl=60.0, clock=_Clock())
    reads = iter([{"old": 1}, {"new": 2}])

    def read_during_a_change() -> dict[str, int]:
        cache.changed(Changes(policies=True))  # committed while this read ran
        return next(reads)

    assert cache._get("policies", read_during_a_change) == {"old": 1}
    assert cache._get("policies", lambda: next(reads)) == {"new": 2}
