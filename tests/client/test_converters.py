"""KServe logger CloudEvents and Triton traces (recorded samples in ``samples/``) become events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from querywatch.detector.client import (
    Emitter,
    JsonlSink,
    KServeJoiner,
    KServeReceiver,
    client_id_for_key,
    triton_events,
)
from querywatch.detector.engine.events import parse_event
from tests.client.servers import serve_asgi

SAMPLES = Path(__file__).parent / "samples"


def _sample(name: str) -> list[dict[str, Any]]:
    return json.loads((SAMPLES / name).read_text())


def _valid(events: list[dict[str, Any]]) -> None:
    for event in events:
        parse_event(json.dumps(event))  # the consumer accepts it


def test_kserve_v1_pairs_are_joined_by_id_whichever_half_comes_first() -> None:
    joiner = KServeJoiner()
    response, request = _sample("kserve_v1.json")
    assert joiner.add(response["headers"], json.dumps(response["body"]).encode()) == []
    events = joiner.add(request["headers"], json.dumps(request["body"]).encode())
    _valid(events)
    assert [e["request_id"] for e in events] == [
        "5d0b9bd0-5fc1-4a2e-9a49-3b0b1f1a8c01:0",
        "5d0b9bd0-5fc1-4a2e-9a49-3b0b1f1a8c01:1",
    ]
    assert {e["client_id"] for e in events} == {client_id_for_key("sk-live-4f1c")}
    assert [e["prediction"] for e in events] == [{"label": 1}, {"label": 2}]
    assert events[1]["input"] == [6.0, 3.4, 4.5, 1.6]
    assert events[0]["model_id"] == "sklearn-iris" and events[0]["ts"] == "2026-11-29T10:15:02.1131287Z"
    assert events[0]["meta"] == {"namespace": "default", "component": "predictor"}


def test_kserve_v2_tensors_give_labels_and_scores() -> None:
    joiner = KServeJoiner()
    events: list[dict[str, Any]] = []
    for half in _sample("kserve_v2.json"):
        events += joiner.add(half["headers"], json.dumps(half["body"]).encode())
    _valid(events)
    assert [e["input"] for e in events] == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    assert [e["prediction"] for e in events] == [
        {"label": 2, "scores": [0.1, 0.2, 0.7]},
        {"label": 0, "scores": [0.8, 0.15, 0.05]},
    ]
    assert events[0]["model_id"] == "digits-v2"


def test_the_receiver_takes_the_logger_posts_and_rejects_what_is_not_a_log_event(tmp_path: Path) -> None:
    emitter = Emitter(JsonlSink(tmp_path / "events.jsonl"))
    receiver = KServeReceiver(KServeJoiner(), emitter)
    with serve_asgi(receiver) as base:
        statuses = [
            httpx.post(base, content=json.dumps(half["body"]), headers=half["headers"]).status_code
            for half in _sample("kserve_v1.json") + _sample("kserve_v2.json")
        ]
        junk = httpx.post(base, content=b"{}", headers={"ce-type": "dev.example.other", "ce-id": "1"})
    emitter.close()
    assert statuses == [202] * 4
    assert junk.status_code == 400 and "not a KServe" in junk.json()["detail"]
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 4


def test_triton_traces_give_one_event_per_row_of_the_top_level_request() -> None:
    trace = _sample("triton_trace.json")
    clients = {"acct-7:4411": "acct-7"}
    events = triton_events(trace, clients.get, steady_to_epoch_ns=1_700_000_000_000_000_000)
    _valid(events)
    assert [e["request_id"] for e in events] == ["acct-7:4411:0", "acct-7:4411:1"]  # not the ensemble's step
    assert {e["model_id"] for e in events} == {"digits_ensemble"}
    assert events[1]["input"] == [0.4, 0.5, 0.6]
    assert events[1]["prediction"] == {"scores": [0.8, 0.15, 0.05]}
    assert events[0]["ts"] == (2356425054587444 + 1_700_000_000_000_000_000) / 1e9  # first stamp: receipt
