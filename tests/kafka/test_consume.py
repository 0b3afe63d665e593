"""The consumer against a real broker: same results as replay, across crashes and rebalances."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.config import KafkaSettings, Settings
from tests.kafka.harness import (
    ThreadedConsumer,
    consume_everything,
    consumer_process,
    consumer_settings,
    detection_settings,
    migrated_database,
    produce,
    replay_expectation,
    stored,
    stored_offsets,
    trace_lines,
    wait_for,
    wait_for_split,
    wait_until_stored,
)
from tests.ports import free_port

pytestmark = pytest.mark.kafka


def test_consumed_alerts_equal_the_replay_of_the_same_trace(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    lines = trace_lines()
    expected = replay_expectation(lines, settings.detection, tmp_path)
    assert expected.alerts, "the trace must contain thieves the replay catches"
    produce(kafka_settings, lines)

    result = consume_everything(settings)
    assert result.alerts == expected.alerts
    assert result.clients == expected.clients
    assert result.dead_letters == []


def _settings(kafka: KafkaSettings, tmp_path: Path, name: str, **kafka_changes: object) -> Settings:
    return Settings(
        kafka=kafka.model_copy(update={"group_id": f"{kafka.group_id}-{name}", **kafka_changes}),
        database=migrated_database(tmp_path, f"{name}.db"),
        detection=detection_settings(tmp_path / "profiles"),
    )


def test_a_consumer_killed_mid_stream_resumes_without_losing_or_doubling(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    lines = trace_lines()
    first, rest = lines[: len(lines) // 2], lines[len(lines) // 2 :]
    produce(kafka_settings, first)
    killed = _settings(kafka_settings, tmp_path, "killed", checkpoint_every_events=100, max_poll_records=20)
    database = make_engine(killed.database)
    log = tmp_path / "consumer.log"

    child = consumer_process(killed, log)
    try:
        wait_for(lambda: sum(stored_offsets(database, killed.kafka).values()) >= len(first) // 3, "progress")
    finally:
        child.kill()  # SIGKILL: no checkpoint, no leaving the group
        child.wait()
    assert sum(stored_offsets(database, killed.kafka).values()) < len(lines), (
        "killed after the end of the stream"
    )
    produce(kafka_settings, rest)
    port = free_port()
    restarted = consumer_process(killed, log, QUERYWATCH_METRICS_PORT=str(port))
    try:
        wait_until_stored(database, killed.kafka)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        processed = re.search(r"^querywatch_events_processed_total ([0-9.e+]+)$", metrics, re.M)
        assert processed is not None and float(processed.group(1)) > 0  # the worker serves its own metrics
        timed = re.search(r"^querywatch_event_processing_seconds_count ([0-9.e+]+)$", metrics, re.M)
        assert timed is not None and float(timed.group(1)) > 0
        unscored = re.search(r"^querywatch_events_unscored_total ([0-9.e+]+)$", metrics, re.M)
        assert unscored is not None and float(unscored.group(1)) == 0  # every simulated answer is scored
    finally:
        restarted.terminate()
        assert restarted.wait(60) == 0, log.read_text()[-3000:]

    uninterrupted = _settings(kafka_settings, tmp_path, "uninterrupted")
    reference = make_engine(uninterrupted.database)
    consumer = ThreadedConsumer(uninterrupted).start()
    try:
        wait_until_stored(reference, uninterrupted.kafka)
    finally:
        consumer.close()
    after_kill, expected = stored(database), stored(reference)
    assert after_kill.alerts == expected.alerts != []
    assert after_kill.clients == expected.clients
    assert after_kill.risks == expected.risks
    assert after_kill.history == expected.history
    database.dispose()
    reference.dispose()


def test_two_consumers_split_the_partitions_and_one_takes_over_from_the_other(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    lines = trace_lines()
    thirds = [
        lines[: len(lines) // 3],
        lines[len(lines) // 3 : 2 * len(lines) // 3],
        lines[2 * len(lines) // 3 :],
    ]
    database = make_engine(settings.database)
    produce(kafka_settings, thirds[0])

    first = ThreadedConsumer(settings).start()
    second: ThreadedConsumer | None = None
    try:
        wait_for(lambda: first.app.owned_partitions() == [0, 1, 2, 3], "the first consumer owning everything")
        wait_until_stored(database, kafka_settings)
        second = ThreadedConsumer(settings).start()
        wait_for_split(first, second)
        produce(kafka_settings, thirds[1])
        wait_until_stored(database, kafka_settings)
        second.close()
        wait_for(lambda: first.app.owned_partitions() == [0, 1, 2, 3], "the first consumer taking over")
        produce(kafka_settings, thirds[2])
        wait_until_stored(database, kafka_settings)
    finally:
        first.close()
        if second is not None and second.app.owned_partitions():
            second.close()
    expected = replay_expectation(lines, settings.detection, tmp_path)
    result = stored(database)
    assert result.alerts == expected.alerts != []
    assert result.clients == expected.clients  # each client's count continued where the other left it
    database.dispose()


def test_a_group_told_to_start_from_latest_skips_the_retained_history(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    lines = trace_lines()
    history, fresh = lines[:400], lines[400:700]
    produce(kafka_settings, history, one_per_batch=True)
    settings = _settings(kafka_settings, tmp_path, "latest", start_from="latest")
    consumer = ThreadedConsumer(settings).start()
    try:
        wait_for(lambda: len(consumer.app.owned_partitions()) == kafka_settings.partitions, "assignment")
        # The end offsets are looked up in the poll that made the assignment; leave it time.
        time.sleep(2.0)
        produce(kafka_settings, fresh)
        database = make_engine(settings.database)
        wait_for(lambda: sum(stored(database).clients.values()) >= len(fresh), "the fresh events")
    finally:
        consumer.close()
    assert sum(stored(database).clients.values()) == len(fresh)  # and none of the history
    database.dispose()
