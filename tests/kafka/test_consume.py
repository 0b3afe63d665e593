"""The consumer against a real broker: same results as replay, across crashes and rebalances."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import KafkaSettings, Settings
from detector.storage.db import make_engine
from tests.kafka.harness import (
    ThreadedConsumer,
    detection_settings,
    migrated_database,
    produce,
    replay_expectation,
    stored,
    trace_lines,
    wait_until_stored,
)

pytestmark = pytest.mark.kafka


def test_consumed_alerts_equal_the_replay_of_the_same_trace(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    detection = detection_settings(tmp_path / "profiles")
    settings = Settings(kafka=kafka_settings, database=migrated_database(tmp_path), detection=detection)
    lines = trace_lines()
    expected = replay_expectation(lines, detection, tmp_path)
    assert expected.alerts, "the trace must contain thieves the replay catches"
    produce(kafka_settings, lines)

    consumer = ThreadedConsumer(settings).start()
    database = make_engine(settings.database)
    try:
        wait_until_stored(database, kafka_settings)
    finally:
        consumer.close()
    result = stored(database)
    database.dispose()
    assert result.alerts == expected.alerts
    assert result.clients == expected.clients
    assert result.dead_letters == []
