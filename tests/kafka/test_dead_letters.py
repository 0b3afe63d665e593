"""A stream salted with 5% malformed messages: each is dead-lettered, the rest scored as without them."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from querywatch.detector.adapters.kafka.client_config import connection_kwargs, producer_kwargs
from querywatch.detector.config import KafkaSettings
from tests.kafka.harness import (
    WAIT_S,
    consume_everything,
    consumer_settings,
    end_offsets,
    produce,
    replay_expectation,
    trace_lines,
)

pytestmark = pytest.mark.kafka
#: The malformed kinds that still name their client: a field wrong, the rest readable (an
#: oversized one is not parsed; its key, the client, names it).
CLIENT_NAMED = ("wrong_type", "non_finite", "wrong_dimension", "oversized")


def malformed(n: int, valid: bytes) -> list[tuple[str, bytes]]:
    """``n`` bad messages of every kind, with the reason each must be dead-lettered for."""
    event = json.loads(valid)
    kinds = [
        ("not_utf8", lambda i: b'{"request_id": "\xff\xfe' + str(i).encode() + b'"}'),
        ("not_json", lambda i: b'{"request_id": "bad-%d", "ts": ' % i),
        ("not_object", lambda i: b"[%d, 2, 3]" % i),
        (
            "missing_field",
            lambda i: json.dumps(
                {k: v for k, v in {**event, "request_id": f"bad-{i}"}.items() if k != "client_id"}
            ).encode(),
        ),
        ("wrong_type", lambda i: json.dumps({**event, "request_id": f"bad-{i}", "input": "zero"}).encode()),
        (
            "non_finite",
            lambda i: json.dumps({**event, "request_id": f"bad-{i}", "input": [float("inf")] * 64}).encode(),
        ),
        (
            "wrong_dimension",
            lambda i: json.dumps({**event, "request_id": f"bad-{i}", "input": [0.5] * 10}).encode(),
        ),
        (
            "oversized",
            lambda i: json.dumps({**event, "request_id": f"bad-{i}", "meta": {"pad": "x" * 5000}}).encode(),
        ),
    ]
    return [(kinds[i % len(kinds)][0], kinds[i % len(kinds)][1](i)) for i in range(n)]


def test_malformed_messages_are_dead_lettered_and_change_nothing_else(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    clean = list(trace_lines())
    bad = malformed(len(clean) // 20, clean[0])
    salted = list(clean)
    rng = random.Random(5)
    for _reason, raw in bad:
        salted.insert(rng.randrange(len(salted) + 1), raw)
    produce(kafka_settings, salted)
    # Not JSON at all, but keyed by its client as the serving tier keys every event.
    producer = KafkaProducer(**producer_kwargs(kafka_settings))
    producer.send(kafka_settings.topic, key=b"keyed-thief", value=b'{"client_id": "keyed-thief", ')
    producer.flush()
    producer.close()
    bad.append(("not_json", b'{"client_id": "keyed-thief", '))

    result = consume_everything(settings)

    expected = replay_expectation(clean, settings.detection, tmp_path)
    assert result.alerts == expected.alerts != []
    assert result.clients == expected.clients
    assert result.dead_letters == sorted((reason, raw.hex()) for reason, raw in bad)
    # Each refused event counts against the client it names (its field, else its key).
    named = Counter(json.loads(raw)["client_id"] for reason, raw in bad if reason in CLIENT_NAMED)
    assert result.refused_by == {**named, "keyed-thief": 1}
    letters = read_topic(kafka_settings, kafka_settings.dead_letter_topic)
    assert Counter(letters) == Counter(bad)


def test_events_with_missing_input_values_are_scored_as_replay_scores_them(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """A model that reads NaN as missing logs its gaps as null (or NaN): none is refused, and
    the consumer scores the stream exactly as a replay of it does."""
    settings = consumer_settings(kafka_settings, tmp_path)
    holed = []
    for number, line in enumerate(trace_lines()):
        if number % 4:
            holed.append(line)
            continue
        event = json.loads(line)
        event["input"][number % len(event["input"])] = None if number % 8 else float("nan")
        holed.append(json.dumps(event).encode())
    produce(kafka_settings, holed)
    result = consume_everything(settings)
    expected = replay_expectation(holed, settings.detection, tmp_path)
    assert result.dead_letters == [] and result.clients == expected.clients
    assert result.alerts == expected.alerts != []


def read_topic(kafka: KafkaSettings, topic: str) -> list[tuple[str, bytes]]:
    """(reason header, value) of every message of the dead-letter topic."""
    total = sum(end_offsets(kafka, topic).values())
    consumer = KafkaConsumer(
        topic, **connection_kwargs(kafka, role="test-reader"), auto_offset_reset="earliest"
    )
    found: list[tuple[str, bytes]] = []
    try:
        for _ in range(int(WAIT_S * 2)):
            for records in consumer.poll(500).values():
                for r in records:
                    headers = dict(r.headers)
                    assert headers["querywatch.source"].startswith(kafka.topic.encode() + b"/")
                    found.append((headers["querywatch.reason"].decode(), r.value))
            if len(found) >= total:
                break
    finally:
        consumer.close()
    return found
