"""A collector reading the alerts topic sees every stored alert event, in schema v1, with a
``type`` header, in sequence per alert (the recipe 'Kafka-based pipelines' in the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.db.tables import AlertEventRow
from querywatch.detector.config import KafkaSettings
from querywatch.detector.engine.outcomes import ALERT_OPENED, ALERT_SCHEMA_VERSION, EVENT_TYPES
from tests.kafka.harness import (
    consume_everything,
    consumer_settings,
    produce,
    read_topic,
    trace_lines,
)

pytestmark = pytest.mark.kafka


def test_the_alerts_topic_carries_every_stored_alert_event(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    produce(kafka_settings, trace_lines())
    result = consume_everything(settings)
    assert result.alerts, "the trace must contain thieves"

    messages = read_topic(kafka_settings.bootstrap_servers, kafka_settings.alerts_topic)
    events = [json.loads(m.value) for m in messages if dict(m.headers)["type"] != b"risk"]
    assert {dict(m.headers)["type"].decode() for m in messages} <= {*EVENT_TYPES, "risk"}
    assert all(e["schema_version"] == ALERT_SCHEMA_VERSION and e["type"] in EVENT_TYPES for e in events)
    engine = make_engine(settings.database)
    try:
        with engine.connect() as connection:
            stored_events = set(
                connection.execute(select(AlertEventRow.alert_id, AlertEventRow.sequence)).all()
            )
    finally:
        engine.dispose()
    assert {(e["alert_id"], e["sequence"]) for e in events} == stored_events  # doubles allowed, none missing
    for alert_id in {e["alert_id"] for e in events}:
        mine = [e for e in events if e["alert_id"] == alert_id]
        assert mine[0]["type"] == ALERT_OPENED and [e["sequence"] for e in mine] == sorted(
            e["sequence"] for e in mine
        )
