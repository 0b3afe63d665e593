"""The emitter: schema-valid events, one per row, a bounded buffer, drops counted, never a raise."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaConsumer

from querywatch.detector.adapters.kafka.broker import EmbeddedBroker, free_port
from querywatch.detector.client import Emitter, JsonlSink, KafkaSink, build_events, client_id_for_key
from querywatch.detector.client.sinks import Encoded
from querywatch.detector.engine.events import parse_event


def _rows(n: int) -> list[tuple[list[float], dict[str, object]]]:
    return [([i / 10, 1 - i / 10], {"label": i % 2, "scores": [0.5, 0.5]}) for i in range(n)]


def _wait(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_request_of_n_rows_becomes_n_schema_valid_events_in_the_jsonl_file(tmp_path: Path) -> None:
    emitter = Emitter(JsonlSink(tmp_path / "trace.jsonl"))
    events = build_events(
        request_id="req-1",
        ts=1_800_000_000.5,
        client_id=client_id_for_key("sk-raw"),
        model_id="m1",
        rows=_rows(3),
        meta={"ip": "203.0.113.7", "user_agent": "curl/8", "org": "acme", "unused": None},
    )
    assert emitter.emit(events) == 3
    emitter.close()
    lines = (tmp_path / "trace.jsonl").read_bytes().splitlines()
    parsed = [parse_event(line) for line in lines]  # the consumer's own validation
    assert [p.request_id for p in parsed] == ["req-1:0", "req-1:1", "req-1:2"]
    assert {p.client_id for p in parsed} == {client_id_for_key("sk-raw")}
    assert "sk-raw" not in (tmp_path / "trace.jsonl").read_text()
    assert json.loads(lines[0])["meta"] == {"ip": "203.0.113.7", "user_agent": "curl/8", "org": "acme"}
    assert emitter.stats()["sent"] == 3


def test_an_event_that_is_not_json_is_dropped_and_counted_not_raised(tmp_path: Path) -> None:
    emitter = Emitter(JsonlSink(tmp_path / "trace.jsonl"))
    bad = build_events(request_id="r", ts=1.0, client_id="c", model_id="m", rows=[([float("inf")], None)])
    good = build_events(request_id="g", ts=1.0, client_id="c", model_id="m", rows=[([0.5], None)])
    emitter.emit(bad + good)
    emitter.close()
    assert emitter.stats()["dropped"]["invalid"] == 1
    assert len((tmp_path / "trace.jsonl").read_text().splitlines()) == 1


def test_a_missing_input_value_is_sent_as_null_and_read_as_missing(tmp_path: Path) -> None:
    # A model that reads NaN as missing is served NaN: the event goes out with null there (a
    # JSON writer refuses NaN), from a list or an array alike, and the consumer reads it.
    emitter = Emitter(JsonlSink(tmp_path / "trace.jsonl"))
    rows = [([0.5, float("nan")], {"label": 1}), (np.array([np.nan, 2.0]), {"label": 0})]
    emitter.emit(build_events(request_id="r", ts=1.0, client_id="c", model_id="m", rows=rows))
    emitter.close()
    lines = (tmp_path / "trace.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["input"] for line in lines] == [[0.5, None], [None, 2.0]]
    first, second = (parse_event(line).input for line in lines)
    assert first[0] == 0.5 and np.isnan(first[1]) and np.isnan(second[0]) and second[1] == 2.0
    assert emitter.stats()["sent"] == 2 and emitter.stats()["dropped"]["invalid"] == 0


class _Unreachable:
    """A sink whose broker never answers."""

    def __init__(self) -> None:
        self.attempts = 0

    def open(self) -> None:
        self.attempts += 1
        raise ConnectionError("no broker")

    def write(self, batch: Sequence[Encoded], failed: Callable[[int], None]) -> int:
        raise AssertionError("never opened")

    def close(self, timeout: float) -> None:
        pass


def test_a_full_buffer_drops_and_counts_and_emit_still_returns() -> None:
    sink = _Unreachable()
    emitter = Emitter(sink, capacity=10, retry_seconds=(0.01,))
    events = build_events(request_id="r", ts=1.0, client_id="c", model_id="m", rows=_rows(25))
    assert emitter.emit(events) == 10
    _wait(lambda: sink.attempts >= 3)  # it keeps trying in the background
    emitter.close()
    stats = emitter.stats()
    assert stats["accepted"] == 10
    assert stats["dropped"]["buffer_full"] == 15
    assert stats["dropped"]["unsent_at_close"] == 10
    assert stats["connected"] is False


@pytest.mark.kafka
def test_events_reach_kafka_keyed_by_client_even_when_the_broker_starts_after_the_emitter() -> None:
    port = free_port()
    emitter = Emitter(
        KafkaSink(f"127.0.0.1:{port}", "serving-events", max_block_ms=1000), retry_seconds=(0.2,)
    )
    first = build_events(request_id="early", ts=1.0, client_id="acct-1", model_id="m", rows=_rows(2))
    emitter.emit(first)  # the broker is down: KafkaProducer() fails on the emitter's thread
    time.sleep(0.5)
    assert emitter.stats()["connected"] is False
    with EmbeddedBroker(port=port) as broker:
        second = build_events(request_id="late", ts=2.0, client_id="acct-2", model_id="m", rows=_rows(3))
        emitter.emit(second)
        _wait(lambda: emitter.stats()["sent"] == 5)
        emitter.close()
        consumer = KafkaConsumer(
            "serving-events",
            bootstrap_servers=broker.bootstrap_servers,
            auto_offset_reset="earliest",
            consumer_timeout_ms=5000,
        )
        received = {(m.key, json.loads(m.value)["request_id"]) for m in consumer}
        consumer.close()
    assert received == {
        (b"acct-1", "early:0"),
        (b"acct-1", "early:1"),
        (b"acct-2", "late:0"),
        (b"acct-2", "late:1"),
        (b"acct-2", "late:2"),
    }
    assert sum(emitter.stats()["dropped"].values()) == 0


@pytest.mark.parametrize("servers", ["http://kafka:9092", "kafka:9092 kafka2:9092", "kafka:99999", " , "])
def test_a_broker_list_that_names_no_broker_is_refused_when_the_sink_is_made(servers: str) -> None:
    """Not on the emitter's thread, where the events would be dropped one by one as
    ``send_failed`` behind a server that started as if all was well."""
    with pytest.raises(ValueError, match=r"host:port|no broker named"):
        KafkaSink(servers)
    assert KafkaSink("kafka-0:9092, kafka-1:9092").options["bootstrap_servers"] == [
        "kafka-0:9092",
        "kafka-1:9092",
    ]
