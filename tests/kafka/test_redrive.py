"""Dead letters re-driven to the topic once their cause is fixed, and purged after the retention."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2
from sqlalchemy import func, select

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import AuditEntryRow, DeadLetterRow, utcnow
from querywatch.detector.adapters.kafka.producer import client_key
from querywatch.detector.cli.dead_letters import run_purge, run_redrive
from querywatch.detector.config import InputSettings, KafkaSettings, Settings
from tests.kafka.harness import (
    ThreadedConsumer,
    consume_everything,
    detection_settings,
    migrated_database,
    produce,
    stored,
    trace_lines,
    wait_until_stored,
)

pytestmark = pytest.mark.kafka


def test_redrive_sends_the_original_bytes_back_and_deletes_the_rows(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    clean = list(trace_lines())[:200]
    event = json.loads(clean[0])
    wide = [json.dumps({**event, "request_id": f"wide-{i}", "input": [0.5] * 65}).encode() for i in range(3)]
    produce(kafka_settings, clean + wide)
    settings = Settings(
        kafka=kafka_settings,
        database=migrated_database(tmp_path),
        detection=detection_settings(tmp_path / "profiles"),
        inputs=InputSettings(max_input_dim=64, oversized_inputs="reject"),
    )
    first = consume_everything(settings)
    assert [r for r, _ in first.dead_letters] == ["too_many_inputs"] * 3

    run_redrive(argparse.Namespace(reason=["too_many_inputs"], limit=None, json=False), settings)

    database = make_engine(settings.database)
    with database.connect() as c:
        assert c.scalar(select(func.count()).select_from(DeadLetterRow)) == 0
        audited = c.execute(select(AuditEntryRow.action, AuditEntryRow.target, AuditEntryRow.detail)).all()
    database.dispose()
    assert [(a, t, d["count"]) for a, t, d in audited] == [
        ("dead_letters.redrive", f"topic:{settings.kafka.topic}", 3)
    ]
    topic = read_topic_values(settings.kafka)
    assert sorted(topic[-3:]) == sorted(wide) and topic.count(wide[0]) == 2


def test_a_re_driven_future_event_is_scored_once_its_stream_caught_up(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The README's workflow: events of one client stamped two days ahead of their partition
    are dead-lettered (``future_timestamp``); once the stream has caught up, re-driven, every
    one is scored (their request ids were forgotten with the refusal, so they are no
    redeliveries) and none is dead-lettered again."""
    clean = list(trace_lines())[:1200]
    later = datetime(2026, 1, 7, 6, tzinfo=UTC)

    def restamped(line: bytes, i: int, prefix: str) -> bytes:
        event = json.loads(line)
        ts = (later + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        return json.dumps({**event, "request_id": f"{prefix}-{i}", "ts": ts}).encode()

    # One client ahead never moves a stream of three clients or more: take one of the
    # partition with most clients.
    clients: dict[int, set[str]] = {}
    for line in clean:
        clients.setdefault((murmur2(client_key(line)) & 0x7FFFFFFF) % 4, set()).add(
            json.loads(line)["client_id"]
        )
    one = sorted(max(clients.values(), key=len))[0]
    ahead = [
        restamped(line, i, "ahead") for i, line in enumerate(clean) if json.loads(line)["client_id"] == one
    ][:5]
    settings = Settings(
        kafka=kafka_settings,
        database=migrated_database(tmp_path),
        detection=detection_settings(tmp_path / "profiles"),
    )
    database = make_engine(settings.database)
    consumer = ThreadedConsumer(settings).start()  # one consumer throughout: its memory of ids too
    try:
        produce(kafka_settings, clean + ahead)
        wait_until_stored(database, kafka_settings)
        first = stored(database)
        assert [r for r, _ in first.dead_letters] == ["future_timestamp"] * len(ahead)
        # The stream catches up with them: each partition refuses the events that show it
        # (until three of its clients are ahead) and follows.
        caught_up = [restamped(line, i, "later") for i, line in enumerate(clean[1::3])]
        produce(kafka_settings, caught_up)
        wait_until_stored(database, kafka_settings)
        moved = stored(database)
        refused = len(moved.dead_letters)
        assert refused > len(ahead) and {r for r, _ in moved.dead_letters} == {"future_timestamp"}

        run_redrive(argparse.Namespace(reason=["future_timestamp"], limit=None, json=False), settings)
        wait_until_stored(database, kafka_settings)
    finally:
        consumer.close()
    final = stored(database)
    database.dispose()
    assert final.dead_letters == []
    assert sum(moved.clients.values()) == len(clean) + len(caught_up) - (refused - len(ahead))
    assert sum(final.clients.values()) == len(clean) + len(caught_up) + len(ahead)
    assert final.clients[one] == moved.clients[one] + len(ahead)


def read_topic_values(kafka: KafkaSettings) -> list[bytes]:
    """Every value of the inference-log topic, partition by partition."""
    from kafka import KafkaConsumer

    from querywatch.detector.adapters.kafka.client_config import connection_kwargs
    from tests.kafka.harness import end_offsets

    total = sum(end_offsets(kafka).values())
    consumer = KafkaConsumer(
        kafka.topic, **connection_kwargs(kafka, role="test-reader"), auto_offset_reset="earliest"
    )
    found: list[tuple[int, int, bytes]] = []
    try:
        for _ in range(200):
            for records in consumer.poll(500).values():
                found += [(r.timestamp, r.offset, r.value) for r in records]
            if len(found) >= total:
                break
    finally:
        consumer.close()
    return [v for _t, _o, v in sorted(found)]


def test_purge_deletes_only_letters_older_than_the_retention(tmp_path: Path) -> None:
    settings = Settings(
        database=migrated_database(tmp_path), inputs=InputSettings(dead_letter_retention_days=7)
    )
    sessions = make_sessionmaker(make_engine(settings.database))
    with transaction(sessions) as session:
        for age in (1, 6, 8, 30):
            session.add(
                DeadLetterRow(
                    received_at=utcnow() - timedelta(days=age), source="t/0/1", reason="not_json", raw=b"{"
                )
            )
    run_purge(argparse.Namespace(older_than_days=None, json=False), settings)
    with transaction(sessions) as session:
        left = sorted((utcnow() - r.received_at).days for r in session.scalars(select(DeadLetterRow)))
    assert left == [1, 6]
