"""The middlewares in front of real model servers, with real decisions: log, allow, degrade, block,
and never fail a request because querywatch, the sink or the hook did."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from querywatch.detector.client import (
    DecisionClient,
    Emitter,
    Extractor,
    JsonlSink,
    KafkaSink,
    QuerywatchASGI,
    QuerywatchWSGI,
    client_id_for_key,
)
from querywatch.detector.client.degrade import top_index
from querywatch.detector.engine.events import parse_event
from tests.api.seed import seed_client
from tests.api.server import ApiServer
from tests.client.servers import model_app, serve_asgi, serve_wsgi, wsgi_model
from tests.ports import refusing_port

Serve = Callable[..., AbstractContextManager[str]]
ROWS = [[0.74, 0.1], [0.3, 0.2], [0.55, 0.9]]


def asgi(**options: Any) -> AbstractContextManager[str]:
    return serve_asgi(QuerywatchASGI(model_app(), Extractor("two-v1", org_header="x-org"), **options))


def wsgi(**options: Any) -> AbstractContextManager[str]:
    return serve_wsgi(QuerywatchWSGI(wsgi_model, Extractor("two-v1", org_header="x-org"), **options))


def _predict(base: str, key: str, rows: list[list[float]] = ROWS, **headers: str) -> httpx.Response:
    return httpx.post(f"{base}/predict", json={"instances": rows}, headers={"X-API-Key": key, **headers})


@pytest.mark.parametrize("serve", [asgi, wsgi], ids=["asgi", "wsgi"])
def test_allow_degrade_block_and_every_row_logged(serve: Serve, api: ApiServer, tmp_path: Path) -> None:
    seed_client(api.sessions, client_id_for_key("sk-odd"), 0.7)
    seed_client(api.sessions, client_id_for_key("sk-thief"), 0.95)
    emitter = Emitter(JsonlSink(tmp_path / "events.jsonl"))
    decisions = DecisionClient(api.base_url, api.reader_key, timeout=10)
    with serve(emitter=emitter, decisions=decisions, trusted_proxy_header="X-Forwarded-For") as base:
        calm = _predict(base, "sk-calm", **{"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Org": "acme"})
        odd = _predict(base, "sk-odd")
        thief = _predict(base, "sk-thief")
    emitter.close()
    assert calm.status_code == 200
    assert calm.json()["predictions"][0] == {"label": 1, "scores": [0.26, 0.74]}
    assert odd.status_code == 200
    degraded = odd.json()["predictions"]
    assert [p["scores"] for p in degraded] == [[0.3, 0.7], [0.7, 0.3], [0.5, 0.6]]  # 1 decimal
    assert [p["label"] for p in degraded] == [1, 0, 1]
    assert thief.status_code == 403
    assert thief.headers["content-type"] == "application/problem+json"
    assert thief.json()["status"] == 403
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    for line in lines:
        parse_event(line)  # valid for the consumer
    assert [e["client_id"] for e in events] == [client_id_for_key("sk-calm")] * 3 + [
        client_id_for_key("sk-odd")
    ] * 3
    assert events[0]["meta"]["ip"] == "203.0.113.9" and events[0]["meta"]["org"] == "acme"
    assert events[3]["prediction"] == {
        "label": 1,
        "scores": [0.26, 0.74],
    }  # what the model said, not the degraded form
    assert len({e["request_id"] for e in events}) == 6


@pytest.mark.parametrize("mode", ["top1", "noise"])
def test_the_other_degrade_modes_keep_the_top_label(mode: str, api: ApiServer) -> None:
    seed_client(api.sessions, client_id_for_key("sk-odd"), 0.7)
    with asgi(
        decisions=DecisionClient(api.base_url, api.reader_key, timeout=10), degrade_mode=mode, noise=0.3
    ) as base:
        answers = _predict(base, "sk-odd").json()["predictions"]
    assert [a["label"] for a in answers] == [1, 0, 1]
    if mode == "top1":
        assert all("scores" not in a for a in answers)
    else:
        assert [top_index(a["scores"]) for a in answers] == [1, 0, 1]
        assert [a["scores"] for a in answers] != [[0.26, 0.74], [0.7, 0.3], [0.45, 0.55]]


@pytest.mark.parametrize("serve", [asgi, wsgi], ids=["asgi", "wsgi"])
def test_no_request_fails_while_querywatch_and_the_broker_are_down(serve: Serve, tmp_path: Path) -> None:
    with refusing_port() as broker, refusing_port() as api:  # both down
        emitter = Emitter(KafkaSink(f"127.0.0.1:{broker}"), capacity=4)
        decisions = DecisionClient(f"http://127.0.0.1:{api}", "qw_x")
        with serve(emitter=emitter, decisions=decisions) as base:
            answers = [_predict(base, f"sk-{i}") for i in range(5)]
            other = httpx.get(f"{base}/health") if serve is asgi else None
        emitter.close(timeout=10)  # the thread gives up connecting and ends
    assert [a.status_code for a in answers] == [200] * 5
    assert answers[0].json()["predictions"][0]["scores"] == [0.26, 0.74]
    assert emitter.stats()["dropped"]["buffer_full"] == 5 * 3 - 4
    assert other is None or other.json() == {"status": "ok"}


class _Broken(Extractor):
    def rows(self, request: Any, response: Any) -> list[Any]:
        raise RuntimeError("a hook bug")


def test_a_failing_hook_leaves_the_answer_alone(tmp_path: Path) -> None:
    middleware = QuerywatchASGI(
        model_app(), _Broken("two-v1"), emitter=Emitter(JsonlSink(tmp_path / "e.jsonl"))
    )
    with serve_asgi(middleware) as base:
        answer = _predict(base, "sk-1")
        no_key = httpx.post(f"{base}/predict", json={"instances": ROWS})
    assert answer.status_code == 200 and answer.json()["predictions"][0]["scores"] == [0.26, 0.74]
    assert no_key.status_code == 200
    assert middleware.guard.counts["errors"] == 1
    assert middleware.guard.counts["unidentified"] == 1


@pytest.mark.parametrize("serve", [asgi, wsgi], ids=["asgi", "wsgi"])
def test_a_request_naming_two_clients_is_refused_not_judged_as_either(
    serve: Serve, api: ApiServer, tmp_path: Path
) -> None:
    """A blocked caller added another key beside its own: the guard judged the added one
    (ASGI: a header's last copy; a key before a Bearer token) while the app authenticated
    the caller by its own (Starlette reads a header's first copy), and served it."""
    seed_client(api.sessions, client_id_for_key("sk-thief"), 0.95)
    emitter = Emitter(JsonlSink(tmp_path / "events.jsonl"))
    decisions = DecisionClient(api.base_url, api.reader_key, timeout=10)
    with serve(emitter=emitter, decisions=decisions) as base:
        url = f"{base}/predict"
        disguised = httpx.post(
            url,
            json={"instances": ROWS},
            headers={"X-API-Key": "sk-fresh", "Authorization": "Bearer sk-thief"},
        )
        same_key = httpx.post(
            url,
            json={"instances": ROWS},
            headers={"X-API-Key": "sk-thief", "Authorization": "Bearer sk-thief"},
        )
        twice = None
        if serve is asgi:  # a WSGI server joins a repeated header's copies into one value
            twice = httpx.post(
                url, json={"instances": ROWS}, headers=[("X-API-Key", "sk-thief"), ("X-API-Key", "x")]
            )
    emitter.close()
    assert disguised.status_code == 400 and "name different keys" in disguised.json()["detail"]
    assert same_key.status_code == 403
    if twice is not None:
        assert twice.status_code == 400 and "more than once" in twice.json()["detail"]
    assert not (tmp_path / "events.jsonl").exists() or not (tmp_path / "events.jsonl").read_text()


@pytest.mark.parametrize("serve", [asgi, wsgi], ids=["asgi", "wsgi"])
def test_numbers_sent_as_strings_are_logged_as_the_numbers_the_model_read(
    serve: Serve, tmp_path: Path
) -> None:
    """A lenient server answers ``"0.74"`` as 0.74; logged as a string, the consumer refused
    every such event, and a thief that quoted its numbers was never scored."""
    emitter = Emitter(JsonlSink(tmp_path / "events.jsonl"))
    with serve(emitter=emitter) as base:
        answer = _predict(base, "sk-quoted", [["0.74", "0.1"]])
    emitter.close()
    (line,) = (tmp_path / "events.jsonl").read_bytes().splitlines()
    event = parse_event(line)
    assert answer.status_code == 200 and list(event.input) == [0.74, 0.1]
