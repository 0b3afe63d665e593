"""An alert is stored when it opens, and the last events when the consumer has caught up, not
at the next periodic checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.db.tables import AlertRow
from querywatch.detector.config import KafkaSettings, Settings
from tests.kafka.harness import (
    ThreadedConsumer,
    detection_settings,
    migrated_database,
    produce,
    trace_lines,
    wait_for,
    wait_until_stored,
)

pytestmark = pytest.mark.kafka


def test_an_opened_alert_is_checkpointed_at_once(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    # Periodic checkpoints an hour apart and none when idle: only the alert itself can make
    # its partition store.
    kafka = kafka_settings.model_copy(
        update={
            "checkpoint_every_seconds": 3600.0,
            "checkpoint_every_events": 10**9,
            "checkpoint_when_idle": False,
        }
    )
    settings = Settings(
        kafka=kafka, database=migrated_database(tmp_path), detection=detection_settings(tmp_path / "p")
    )
    produce(kafka, list(trace_lines()))
    consumer = ThreadedConsumer(settings).start()
    engine = make_engine(settings.database)

    def alerts() -> int:
        with engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(AlertRow)) or 0)

    try:
        wait_for(lambda: alerts() > 0, "an alert stored while the consumer runs")
    finally:
        consumer.close()
        engine.dispose()


def test_a_consumer_that_caught_up_stores_its_last_events_at_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    # Periodic checkpoints an hour apart: only an idle poll can store every partition's tail.
    kafka = kafka_settings.model_copy(
        update={"checkpoint_every_seconds": 3600.0, "checkpoint_every_events": 10**9}
    )
    settings = Settings(
        kafka=kafka, database=migrated_database(tmp_path), detection=detection_settings(tmp_path / "p")
    )
    produce(kafka, list(trace_lines()))
    consumer = ThreadedConsumer(settings).start()
    engine = make_engine(settings.database)
    try:
        wait_until_stored(engine, kafka)
    finally:
        consumer.close()
        engine.dispose()
