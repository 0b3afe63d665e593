"""Cached decisions from the real API: TTL, a block within the TTL, fail-open/closed, breaker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from querywatch.detector.client import DecisionClient, Extractor
from tests.api.seed import seed_client
from tests.api.server import ApiServer, running_api
from tests.ports import refusing_port
from tests.storage.databases import migrated_database


def test_decisions_are_cached_and_a_block_applies_within_the_ttl(api: ApiServer) -> None:
    seed_client(api.sessions, "calm", 0.1)
    seed_client(api.sessions, "odd", 0.7)
    decisions = DecisionClient(api.base_url, api.reader_key, ttl=0.5, timeout=10)
    assert decisions.get("calm").action == "allow"
    odd = decisions.get("odd")
    assert (odd.action, odd.output_precision, odd.risk) == ("degrade", 1, 0.7)
    assert decisions.get("calm").source == "cache"
    httpx.put(f"{api.base_url}/v1/clients/calm/status", json={"status": "blocked"}, headers=api.admin_headers)
    time.sleep(0.5)  # once the TTL has run out, the next request sees the block
    assert decisions.get("calm").action == "block"


def test_a_keep_alive_connection_the_server_closed_is_opened_again_not_counted_as_an_error(
    tmp_path: Path,
) -> None:
    """The API closes a connection idle for its keep-alive time. The client reused it, counted
    the failure as an error and answered from its stale cache (a new block missed) or, with
    three threads, opened the breaker and allowed a blocked client for ten seconds."""
    with (
        migrated_database("sqlite", tmp_path) as settings,
        running_api(settings, keep_alive_seconds=1) as api,
    ):
        seed_client(api.sessions, "thief", 0.1)
        decisions = DecisionClient(api.base_url, api.reader_key, ttl=0.5, timeout=10, failures=1)
        assert decisions.get("thief").action == "allow"
        httpx.put(
            f"{api.base_url}/v1/clients/thief/status", json={"status": "blocked"}, headers=api.admin_headers
        )
        time.sleep(1.5)  # past the TTL and the server's keep-alive: it has closed the connection
        blocked = decisions.get("thief")
        assert (blocked.action, blocked.source) == ("block", "api")
        assert decisions.counts["error"] == decisions.counts["fallback"] == 0


@pytest.fixture
def down() -> Iterator[int]:
    """The port of an API that is down: connections are refused."""
    with refusing_port() as port:
        yield port


def test_while_the_api_is_down_it_fails_open_or_closed_and_the_breaker_stops_asking(down: int) -> None:
    nowhere = f"http://127.0.0.1:{down}"
    fail_open = DecisionClient(nowhere, "qw_x", failures=3, open_seconds=60)
    assert [fail_open.get(f"c{i}").action for i in range(10)] == ["allow"] * 10
    assert fail_open.counts["error"] == 3  # then the breaker opened: no more attempts
    assert fail_open.counts["fallback"] == 10
    fail_closed = DecisionClient(nowhere, "qw_x", fail_open=False)
    assert fail_closed.get("c").action == "block"


def test_a_known_decision_outlives_an_api_outage(tmp_path: Path) -> None:
    with migrated_database("sqlite", tmp_path) as settings:
        with running_api(settings) as api:
            seed_client(api.sessions, "odd", 0.7)
            decisions = DecisionClient(api.base_url, api.reader_key, ttl=0.0, timeout=10)
            assert decisions.get("odd").action == "degrade"
        stale = decisions.get("odd")  # the API is gone now
    assert (stale.action, stale.source) == ("degrade", "stale")
    assert decisions.get("never-seen").action == "allow"


def test_the_breaker_asks_again_after_its_pause(down: int) -> None:
    decisions = DecisionClient(f"http://127.0.0.1:{down}", "qw_x", failures=1, open_seconds=0.2)
    decisions.get("c")
    decisions.get("c")
    assert decisions.counts["error"] == 1
    time.sleep(0.25)
    decisions.get("c")
    assert decisions.counts["error"] == 2


def test_a_wrong_key_is_said_in_the_log_and_is_no_outage(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A key querywatch refuses answers the fallback, says so as an error (once a minute),
    and does not open the breaker as an unreachable querywatch would."""
    decisions = DecisionClient(api.base_url, "qw_wrong", fail_open=False, timeout=10, failures=1)
    with caplog.at_level("ERROR", logger="querywatch.client"):
        assert [decisions.get(f"c{i}").action for i in range(3)] == ["block"] * 3
    assert (decisions.counts["refused"], decisions.counts["error"]) == (3, 0)
    assert [r.message for r in caplog.records if "api_key" in r.message] == [
        "querywatch refuses this DecisionClient's api_key (querywatch answered 401: Unauthorized): "
        "no decision is enforced"
    ]


def test_client_ids_querywatch_refuses_never_hold_off_other_clients_blocks(api: ApiServer) -> None:
    """Ids that no event can carry (a control character, over 256 characters) or that HTTP
    headers cannot hold as Latin-1 opened the breaker after three look-ups: anyone choosing
    such account names kept every client's new block away, as an outage would."""
    seed_client(api.sessions, "thief", 0.1)
    seed_client(api.sessions, "名前-thief", 0.1)
    decisions = DecisionClient(api.base_url, api.reader_key, ttl=0.0, timeout=10, failures=1)
    assert decisions.get("thief").action == "allow"
    for name in ("bad\nid", "x" * 300, "名前", "名前-2"):
        assert decisions.get(name).action == "allow"
    httpx.put(
        f"{api.base_url}/v1/clients/thief/status", json={"status": "blocked"}, headers=api.admin_headers
    )
    httpx.put(
        f"{api.base_url}/v1/clients/%E5%90%8D%E5%89%8D-thief/status",
        json={"status": "blocked"},
        headers=api.admin_headers,
    )
    assert decisions.get("thief").action == "block"
    assert decisions.get("名前-thief").action == "block"  # sent in UTF-8 and read back so
    assert decisions.counts["error"] == 0 and decisions.counts["refused"] == 2


def test_a_client_that_keeps_asking_is_refreshed_in_the_background(api: ApiServer) -> None:
    seed_client(api.sessions, "calm", 0.1)
    # refresh_ahead=1: every hit queues a refresh; ttl=30: nothing here waits for expiry
    decisions = DecisionClient(api.base_url, api.reader_key, ttl=30.0, timeout=10, refresh_ahead=1.0)
    assert decisions.get("calm").action == "allow"
    httpx.put(f"{api.base_url}/v1/clients/calm/status", json={"status": "blocked"}, headers=api.admin_headers)
    first = decisions.cached("calm")
    assert first is not None and first.action == "allow"  # served from the cache, no waiting
    deadline = time.monotonic() + 20
    while (found := decisions.cached("calm")) is None or found.action != "block":
        assert time.monotonic() < deadline, "the background refresh never brought the block"
        time.sleep(0.05)
    assert decisions.counts["miss"] == 1  # only the very first look-up made a request wait


def test_settings_that_cannot_work_are_refused_when_the_client_is_made() -> None:
    """An empty key made every look-up a 401 and every decision the fallback, silently."""
    for kwargs, said in (
        ({"api_key": ""}, "api_key is empty"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"ttl": -1}, "ttl and open_seconds >= 0"),
        ({"refresh_ahead": 1.5}, "in \\[0, 1\\]"),
    ):
        with pytest.raises(ValueError, match=said):
            DecisionClient(**{"base_url": "http://127.0.0.1:9", "api_key": "qw_x", **kwargs})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model_id is empty"):
        Extractor("")


def test_the_librarys_client_id_limit_is_the_events() -> None:
    """The library keeps its own copy (it imports no engine): the two must not drift apart."""
    from querywatch.detector.client.decisions import MAX_CLIENT_ID
    from querywatch.detector.engine.events import MAX_ID

    assert MAX_CLIENT_ID == MAX_ID
