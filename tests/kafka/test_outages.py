"""Faults under a running consumer: the database away for 30 s, a recreated topic, a restarted broker.

No consumer exits, and nothing is lost without a metric and an error line saying so. The
database is a private PostgreSQL cluster started by the test on its own port; the broker of
the restart test is a Tansu of its own (memory only: a restart empties it).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient
from sqlalchemy import Engine

from querywatch.detector.adapters.db import migrate
from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.adapters.kafka.client_config import connection_kwargs
from querywatch.detector.config import DatabaseSettings, KafkaSettings, OutageSettings, Settings
from querywatch.detector.metrics import CONSUMER_LAG, LOG_REWOUND, OUTAGE
from tests.kafka.harness import (
    Stored,
    ThreadedConsumer,
    consumer_settings,
    detection_settings,
    end_offsets,
    migrated_database,
    produce,
    replay_expectation,
    stored,
    stored_offsets,
    trace_lines,
    wait_for,
    wait_until_stored,
)
from tests.kafka.pgcluster import PrivateCluster

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

#: How long the database stays down.
DOWN_S = 30.0


def _lines(caplog: pytest.LogCaptureFixture, text: str, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level and text in r.getMessage()]


def test_the_database_down_for_30_s_loses_and_doubles_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cluster = PrivateCluster()
    cluster.start()
    try:
        database = DatabaseSettings(url=cluster.url)
        migrate.upgrade(Settings(database=database))
        detection = detection_settings(tmp_path / "profiles")
        settings = Settings(kafka=kafka_settings, database=database, detection=detection)
        lines = list(trace_lines())
        half = len(lines) // 2
        produce(kafka_settings, lines[:half])
        consumer = ThreadedConsumer(settings).start()
        engine = make_engine(database)
        wait_until_stored(engine, kafka_settings)
        engine.dispose()

        cluster.stop()
        produce(kafka_settings, lines[half:])
        wait_for(lambda: OUTAGE.labels(dependency="database")._value.get() == 1, "the outage to be seen")
        time.sleep(DOWN_S)
        assert consumer.error is None and consumer._thread.is_alive()
        cluster.start()

        engine = make_engine(database)
        wait_until_stored(engine, kafka_settings)
        consumer.close()
        result = stored(engine)
        engine.dispose()
    finally:
        cluster.remove()
    expected = replay_expectation(lines, detection, tmp_path)
    assert result.clients == expected.clients and result.alerts == expected.alerts != []
    assert len(_lines(caplog, "database unavailable", logging.ERROR)) == 1
    assert len(_lines(caplog, "database is back")) == 1
    assert OUTAGE.labels(dependency="database")._value.get() == 0


def _recreate(kafka: KafkaSettings) -> None:
    admin = KafkaAdminClient(**connection_kwargs(kafka, role="test-admin"))
    try:
        admin.delete_topics([kafka.topic])
    finally:
        admin.close()
    wait_for(lambda: kafka.topic not in _topics(kafka), "the topic to be deleted")
    ensure_topics(kafka)


def _topics(kafka: KafkaSettings) -> set[str]:
    admin = KafkaAdminClient(**connection_kwargs(kafka, role="test-admin"))
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def _rewinds(kafka: KafkaSettings) -> float:
    return sum(
        LOG_REWOUND.labels(topic=kafka.topic, partition=str(p))._value.get() for p in range(kafka.partitions)
    )


def _stored_then_recreated(
    kafka: KafkaSettings, settings: Settings, first: list[bytes], second: list[bytes]
) -> tuple[Engine, Stored, dict[int, int]]:
    """``first`` consumed and checkpointed, then the topic recreated holding ``second``: the
    database's engine, what it stored and its offsets before the recreation."""
    produce(kafka, first)
    consumer = ThreadedConsumer(settings).start()
    engine = make_engine(settings.database)
    wait_until_stored(engine, kafka)
    consumer.close()
    before, offsets = stored(engine), stored_offsets(engine, kafka)
    _recreate(kafka)
    produce(kafka, second)
    return engine, before, offsets


def test_a_recreated_topic_is_reported_and_paused_then_read_again_when_told(
    kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = consumer_settings(kafka_settings, tmp_path)
    lines = list(trace_lines())
    first, second = lines[: len(lines) // 2], lines[len(lines) // 2 :][:200]
    engine, before, _ = _stored_then_recreated(kafka_settings, settings, first, second)  # ends below
    rewinds = _rewinds(kafka_settings)
    consumer = ThreadedConsumer(settings).start()
    wait_for(lambda: _rewinds(kafka_settings) > rewinds, "the rewind to be counted")
    wait_for(lambda: _lines(caplog, "went backwards", logging.ERROR) != [], "the error line")
    assert consumer.error is None
    consumer.close()
    assert stored(engine).clients == before.clients  # paused: nothing of the new log stored

    told = settings.model_copy(update={"outages": OutageSettings(on_log_rewind="restart")})
    consumer = ThreadedConsumer(told).start()
    old = stored_offsets(engine, kafka_settings)
    ends = {p: o for p, o in end_offsets(kafka_settings).items() if o > 0}  # Tansu: at most the end

    def reread() -> bool:
        now = stored_offsets(engine, kafka_settings)
        return all(old[p] > now.get(p, 0) >= o for p, o in ends.items())

    wait_for(reread, "the new log to be read from its start")
    consumer.close()
    result = stored(engine)
    engine.dispose()
    expected = replay_expectation(first + second, settings.detection, tmp_path)
    assert result.clients == expected.clients and result.alerts == expected.alerts


def test_a_recreated_topic_refilled_past_the_stored_offsets_is_reported_as_well(
    kafka_settings: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the new log already ended past the stored offset, offsets alone saw nothing: the
    restarted consumer resumed there and its first events were skipped without a word. Each
    partition's checkpoint keeps its last record's digest, read again and compared."""
    caplog.set_level(logging.INFO)
    settings = consumer_settings(kafka_settings, tmp_path)
    lines = list(trace_lines())
    first, second = lines[: len(lines) // 4], lines[len(lines) // 4 :]
    engine, before, old = _stored_then_recreated(kafka_settings, settings, first, second)
    ends = end_offsets(kafka_settings)
    assert any(ends[p] >= offset for p, offset in old.items())  # the case offsets cannot see
    rewinds = _rewinds(kafka_settings)
    consumer = ThreadedConsumer(settings).start()
    wait_for(lambda: _rewinds(kafka_settings) - rewinds >= len(old), "every stored partition's rewind")

    # A paused partition is not fetched, so its lag used to stay where the pause left it.
    def lag() -> float:
        return sum(
            CONSUMER_LAG.labels(topic=kafka_settings.topic, partition=str(p))._value.get() for p in old
        )

    paused_lag = lag()
    produce(kafka_settings, second[:200])
    wait_for(lambda: lag() > paused_lag, "the paused partitions' lag to grow", timeout_s=60)
    assert consumer.error is None
    consumer.close()
    engine_result = stored(engine)
    engine.dispose()
    assert engine_result.clients == before.clients  # paused: nothing of the new log stored


def test_a_restarted_broker_keeps_the_consumer_running_and_its_emptied_log_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    broker = EmbeddedBroker().start()
    try:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            topic="restart-events",
            dead_letter_topic="restart-dead",
            alerts_topic="restart-alerts",
            group_id="restart-group",
            partitions=2,
            session_timeout_ms=6000,
            max_poll_interval_ms=6000,
            checkpoint_every_seconds=1.0,
        )
        detection = detection_settings(tmp_path / "profiles")
        settings = Settings(kafka=kafka, database=migrated_database(tmp_path), detection=detection)
        lines = list(trace_lines())
        produce(kafka, lines[: len(lines) // 2])
        consumer = ThreadedConsumer(settings).start()
        engine = make_engine(settings.database)
        wait_until_stored(engine, kafka)
        before = stored(engine)

        broker.stop()
        time.sleep(5)
        broker.start()  # Tansu keeps its log in memory: the topics come back empty
        produce(kafka, lines[len(lines) // 2 :][:100])
        rewinds = _rewinds(kafka)
        wait_for(lambda: _rewinds(kafka) > rewinds, "the emptied log to be counted")
        assert _lines(caplog, "went backwards", logging.ERROR)
        assert consumer.error is None and consumer._thread.is_alive()
        consumer.close()
        assert stored(engine).clients == before.clients  # paused, and said so: nothing stored silently
        engine.dispose()
    finally:
        broker.stop()
