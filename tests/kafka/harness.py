"""Helpers of the consumer integration tests: a trace, its replay, a database, consumers to run.

Everything is real: the broker is Tansu (see conftest), the database a SQLite file, the
consumer the one ``querywatch consume`` runs. A fixed reference profile makes ``replay``
and ``consume`` use the same reference, so their outcomes can be compared exactly.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy import Engine as SqlEngine
from sqlalchemy import func, select

from querywatch.detector.adapters.db import migrate
from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.db.tables import (
    AlertRow,
    ClientRow,
    DeadLetterRow,
    PartitionOffsetRow,
    RiskPointRow,
)
from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.app import ConsumerApp
from querywatch.detector.adapters.kafka.client_config import connection_kwargs, producer_kwargs
from querywatch.detector.adapters.kafka.producer import client_key, produce_lines
from querywatch.detector.config import DatabaseSettings, DetectionSettings, KafkaSettings, Settings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.simulate import generate_trace
from querywatch.detector.simulate.victim import MODEL_ID, load_victim

#: Seconds any wait of these tests may take before it fails (generous: a rebalance takes ~3-6 s).
WAIT_S = 90.0


@functools.cache
def trace_lines() -> tuple[bytes, ...]:
    """A small simulated trace (benign clients and thieves), one JSON event per line."""
    return tuple(json.dumps(e, separators=(",", ":")).encode() for e in _trace()[0])


def trace_truth() -> dict[str, dict[str, str]]:
    """Each client of ``trace_lines()``: its role and family."""
    return _trace()[1]


@functools.cache
def _trace() -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    return generate_trace(3, benign=12, attackers=4, scale=0.3, hours=6)


@functools.cache
def _profile_bytes() -> bytes:
    victim = load_victim()
    return build_profile(victim.train, model_id=MODEL_ID, settings=DetectionSettings()).to_bytes()


def detection_settings(profile_dir: Path) -> DetectionSettings:
    """Detection settings whose profile directory holds the fixed digits profile."""
    from querywatch.models.profile import ReferenceProfile

    DirectoryProfileStore(profile_dir).put(ReferenceProfile.from_bytes(_profile_bytes()))
    return DetectionSettings(profile_dir=str(profile_dir), max_event_bytes=4096)


@dataclass(frozen=True)
class Expected:
    """What the stored outcome of a trace must be."""

    alerts: list[tuple[str, str, int]]  # (alert_id, client_id, queries)
    clients: dict[str, int]  # client_id -> queries


def replay_expectation(lines: Sequence[bytes], detection: DetectionSettings, tmp: Path) -> Expected:
    """What ``querywatch replay`` finds on ``lines``."""
    path = tmp / "trace.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    profile = DirectoryProfileStore(detection.profile_dir or "").get(MODEL_ID)
    assert profile is not None
    report = replay(path, Detector(detection, MemoryProfileStore([profile])))
    return Expected(
        sorted((a.alert_id, a.client_id, a.queries) for a in report.alerts.values()),
        {c.client_id: c.queries for c in report.clients.values()},
    )


def migrated_database(tmp: Path, name: str = "qw.db") -> DatabaseSettings:
    database = DatabaseSettings(url=f"sqlite:///{tmp / name}")
    migrate.upgrade(Settings(database=database))
    return database


def consumer_settings(kafka: KafkaSettings, tmp: Path) -> Settings:
    """A consumer's settings for ``kafka``: a fresh migrated SQLite database and the fixed
    digits profile, both under ``tmp``."""
    return Settings(
        kafka=kafka, database=migrated_database(tmp), detection=detection_settings(tmp / "profiles")
    )


def produce(kafka: KafkaSettings, lines: Sequence[bytes], *, one_per_batch: bool = False) -> None:
    """Send ``lines`` keyed by client. ``one_per_batch``: a record batch per message, for tests
    of end offsets (Tansu reports a partition's end as if every batch held one record)."""
    ensure_topics(kafka)
    producer = KafkaProducer(**producer_kwargs(kafka))
    try:
        if one_per_batch:
            for line in lines:
                producer.send(kafka.topic, key=client_key(line), value=line)
                producer.flush()
        else:
            produce_lines(producer, kafka.topic, lines)
    finally:
        producer.close()


def read_topic(bootstrap_servers: str, topic: str) -> list[ConsumerRecord]:
    """Every message of ``topic`` from its start (done once none comes for 5 s)."""
    reader = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    try:
        return list(reader)
    finally:
        reader.close()


def end_offsets(kafka: KafkaSettings, topic: str | None = None) -> dict[int, int]:
    """Partition -> end offset of ``topic`` (default: the inference-log topic), as a Kafka
    broker reports it: one past the last record. Tansu reports one past the *first* record of
    a partition's last batch, so that batch is read for its last offset. With Tansu's figure,
    ``wait_until_stored`` returned once a consumer had checkpointed the first record of the
    last batch, before the rest (a test of five events produced last found none stored)."""
    consumer = KafkaConsumer(**connection_kwargs(kafka, role="test-offsets"))
    try:
        topic = topic or kafka.topic
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {
            tp.partition: _last_batch_end(consumer, tp, end) if end > 0 else 0
            for tp, end in consumer.end_offsets(partitions).items()
        }
    finally:
        consumer.close()


def _last_batch_end(consumer: KafkaConsumer, tp: TopicPartition, reported: int) -> int:
    """One past the last record of ``tp``, reading on from the record before ``reported``."""
    consumer.assign([tp])
    consumer.seek(tp, reported - 1)
    last = reported - 1
    deadline = time.monotonic() + WAIT_S
    got_any = False
    while time.monotonic() < deadline:
        records = consumer.poll(timeout_ms=500).get(tp, [])
        if not records and got_any:
            break
        if records:
            got_any = True
            last = max(last, max(r.offset for r in records))
    return last + 1


def stored_offsets(database: SqlEngine, kafka: KafkaSettings) -> dict[int, int]:
    with database.connect() as c:
        rows = c.execute(
            select(PartitionOffsetRow.partition, PartitionOffsetRow.next_offset).where(
                PartitionOffsetRow.group_id == kafka.group_id, PartitionOffsetRow.topic == kafka.topic
            )
        )
        return {p: o for p, o in rows}


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def wait_until_stored(database: SqlEngine, kafka: KafkaSettings) -> None:
    """Until the database has checkpointed every message of the topic."""
    ends = {p: o for p, o in end_offsets(kafka).items() if o > 0}
    wait_for(
        lambda: all(stored_offsets(database, kafka).get(p, 0) >= o for p, o in ends.items()), "checkpoints"
    )


@dataclass(frozen=True)
class Stored:
    alerts: list[tuple[str, str, int]]
    clients: dict[str, int]
    risks: dict[str, float]
    history: list[tuple[str, int, float]]  # (client_id, queries, risk) of every stored history point
    dead_letters: list[tuple[str, str]]  # (reason, raw)
    refused_by: dict[str, int]  # dead letters by the client they name


def stored(database: SqlEngine) -> Stored:
    with database.connect() as c:
        alerts = sorted(
            (a, cl, q)
            for a, cl, q in c.execute(select(AlertRow.alert_id, AlertRow.client_id, AlertRow.queries))
        )
        clients = {
            cl: (q, r)
            for cl, q, r in c.execute(select(ClientRow.client_id, ClientRow.queries, ClientRow.risk))
        }
        rows = c.execute(select(DeadLetterRow.reason, DeadLetterRow.raw, DeadLetterRow.client_id)).all()
        letters = sorted((r, bytes(raw or b"").hex()) for r, raw, _ in rows)
        refused_by = dict(Counter(client for _, _, client in rows if client is not None))
        history = sorted(
            c.execute(select(RiskPointRow.client_id, RiskPointRow.queries, RiskPointRow.risk)).tuples()
        )
        assert c.scalar(select(func.count()).select_from(AlertRow)) == len(alerts)
    queries = {k: v[0] for k, v in clients.items()}
    return Stored(alerts, queries, {k: v[1] for k, v in clients.items()}, list(history), letters, refused_by)


class ThreadedConsumer:
    """``consume()`` in a thread of this process, stopped like SIGTERM stops the command."""

    def __init__(self, settings: Settings) -> None:
        self.app = ConsumerApp(settings)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.app.run(self.stop)
        except BaseException as exc:  # surfaced by close()
            self.error = exc
        finally:
            self.app.close()

    def start(self) -> ThreadedConsumer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "consumer did not stop"
        if self.error is not None:
            raise self.error


def wait_for_split(first: ThreadedConsumer, second: ThreadedConsumer) -> None:
    """Until the group's four partitions are split two and two between ``first`` and ``second``.
    Each member hears of its new assignment in its own poll: the split is done once both have."""
    wait_for(
        lambda: (
            len(second.app.owned_partitions()) == 2
            and sorted(first.app.owned_partitions() + second.app.owned_partitions()) == [0, 1, 2, 3]
        ),
        "the partitions split between two consumers",
    )


def consume_everything(settings: Settings) -> Stored:
    """Run one consumer until every produced message is checkpointed; what it stored."""
    consumer = ThreadedConsumer(settings).start()
    database = make_engine(settings.database)
    try:
        wait_until_stored(database, settings.kafka)
    finally:
        consumer.close()
    result = stored(database)
    database.dispose()
    return result


def consumer_process(
    settings: Settings, log: Path, *, command: str = "consume", **extra_env: str
) -> subprocess.Popen[bytes]:
    """``querywatch consume`` (or another ``command``, e.g. ``aggregate``) as a child process
    configured through the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYWATCH_")}
    env.update(_environment(settings), **extra_env)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "querywatch.detector.cli", command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_all(consumers: Sequence[ThreadedConsumer], children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Close in-process consumers, then terminate child processes and wait for them."""
    for consumer in consumers:
        consumer.close()
    for child in children:
        child.terminate()
        child.wait(60)


def _environment(settings: Settings) -> dict[str, str]:
    env = {"QUERYWATCH_LOG_JSON": "false", "QUERYWATCH_LOG_LEVEL": "INFO"}
    for section in ("kafka", "database", "detection", "campaigns"):
        values: dict[str, Any] = getattr(settings, section).model_dump(exclude_defaults=True)
        for name, value in values.items():
            env[f"QUERYWATCH_{section.upper()}__{name.upper()}"] = str(value)
    return env
