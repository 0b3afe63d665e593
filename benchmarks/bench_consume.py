"""Consumer throughput and latency against a real (embedded Tansu) broker.

1. Throughput: events/s from broker to stored risk (``querywatch consume``'s code, SQLite,
   a checkpoint every second) next to a bare kafka-python loop that only json-decodes the
   same messages, in the same run; the ratio is printed (goal >= 0.5). Beside them, the
   engine's own cost: ``querywatch replay``'s pipeline over the same events (decode, dedup,
   score; summaries on, as in the consumer), the floor of the consumer's CPU. ``--rounds N``
   repeats the three in turn (a fresh consumer group and database each) and prints medians.
2. Latency: the consumer runs as its own process (``querywatch consume``) while events are
   produced at a steady rate (default 2,000 events/s); for every event the time from its
   send to the commit of the checkpoint that stores it is measured, and separately for the
   events that opened an alert (the alert is stored in that same transaction). p50/p99 are
   printed.

   Default settings, as deployed: an alert's partition is checkpointed as soon as it opens,
   the rest every ``kafka.checkpoint_every_seconds``.

    python benchmarks/bench_consume.py [--copies 15] [--rounds 3] [--throughput-only]
                                       [--rate 2000] [--seconds 15] [--latency-only]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.adapters.db.tables import AlertRow
from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.app import ConsumerApp, default_detector
from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.adapters.kafka.client_config import connection_kwargs, producer_kwargs
from querywatch.detector.adapters.kafka.producer import client_key, produce_lines
from querywatch.detector.config import KafkaSettings, Settings
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.summaries import SummaryRule
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.runtime import engine_process
from tests.kafka.harness import (
    consumer_process,
    detection_settings,
    migrated_database,
    stored_offsets,
    trace_lines,
    wait_for,
)


def widened_trace(copies: int) -> list[bytes]:
    """The test trace repeated ``copies`` times with distinct clients and request ids."""
    lines = []
    for copy in range(copies):
        for line in trace_lines():
            event = json.loads(line)
            event["client_id"] = f"{event['client_id']}-{copy}"
            event["request_id"] = f"{event['request_id']}-{copy}"
            lines.append(json.dumps(event, separators=(",", ":")).encode())
    return lines


def kafka_settings(bootstrap: str, name: str, **changes: object) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        topic=f"bench-{name}",
        dead_letter_topic=f"bench-{name}-dead",
        alerts_topic=f"bench-{name}-alerts",
        group_id=f"bench-{name}",
        partitions=6,
        **changes,  # type: ignore[arg-type]
    )


def cpu() -> float:
    """CPU-seconds of this process so far (the broker runs in its own)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bare_decode_rate(kafka: KafkaSettings, total: int) -> tuple[float, float]:
    """(events/s, CPU-seconds) of a kafka-python loop that only json-decodes every message."""
    consumer = KafkaConsumer(
        **connection_kwargs(kafka, role="bench-bare"), max_poll_records=kafka.max_poll_records
    )
    partitions = [
        TopicPartition(kafka.topic, p) for p in sorted(consumer.partitions_for_topic(kafka.topic) or ())
    ]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen, began, cpu_began = 0, time.perf_counter(), cpu()
    while seen < total:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                json.loads(record.value)
            seen += len(records)
    elapsed, used = time.perf_counter() - began, cpu() - cpu_began
    consumer.close()
    return total / elapsed, used


def querywatch_rate(settings: Settings, total: int) -> tuple[float, float]:
    """(events/s, CPU-seconds) from the first assignment to the checkpoint that stores the
    last event. Progress is looked up ten times a second: more often, the look-up itself
    would take the consumer thread's share of the interpreter."""
    app = ConsumerApp(settings)
    stop = threading.Event()
    thread = threading.Thread(target=app.run, args=(stop,), daemon=True)
    thread.start()
    database = make_engine(settings.database)
    try:
        wait_for(lambda: bool(app.owned_partitions()), "assignment", timeout_s=120)
        began, cpu_began = time.perf_counter(), cpu()
        while sum(stored_offsets(database, settings.kafka).values()) < total:
            time.sleep(0.1)
        elapsed, used = time.perf_counter() - began, cpu() - cpu_began
    finally:
        stop.set()
        thread.join(60)
        app.close()
        database.dispose()
    return total / elapsed, used


def replay_rate(lines: list[bytes], settings: Settings, tmp: Path) -> tuple[float, float]:
    """(events/s, CPU-seconds) of replay's pipeline over ``lines`` with the consumer's engine
    (the fixed profile, summaries on): the engine's and the decoding's own cost."""
    path = tmp / "replay.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    database = make_engine(settings.database)
    try:
        engine = default_detector(settings, make_sessionmaker(database))
        engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
        began, cpu_began = time.perf_counter(), cpu()
        replay(path, engine, inputs=settings.inputs, stream=settings.stream)
        elapsed, used = time.perf_counter() - began, cpu() - cpu_began
    finally:
        database.dispose()
    return len(lines) / elapsed, used


def throughput(bootstrap: str, tmp: Path, copies: int, rounds: int) -> None:
    lines = widened_trace(copies)
    kafka = kafka_settings(bootstrap, "throughput", checkpoint_every_seconds=1.0)
    ensure_topics(kafka)
    producer = KafkaProducer(**producer_kwargs(kafka))
    produce_lines(producer, kafka.topic, lines)
    producer.close()
    clients = len(set(map(client_key, lines)))
    print(f"throughput: {len(lines)} events, {clients} clients, 6 partitions, SQLite, checkpoint every 1 s")
    detection = detection_settings(tmp / "p")
    ratios: dict[str, list[float]] = {"wall": [], "cpu": [], "floor": []}
    for r in range(rounds):
        ours_kafka = kafka.model_copy(update={"group_id": f"{kafka.group_id}-{r}"})
        settings = Settings(
            kafka=ours_kafka, database=migrated_database(tmp, f"throughput-{r}.db"), detection=detection
        )
        (bare, bare_cpu), (ours, ours_cpu), (floor, floor_cpu) = (
            bare_decode_rate(kafka, len(lines)),
            querywatch_rate(settings, len(lines)),
            replay_rate(lines, settings, tmp),
        )
        ratios["wall"].append(ours / bare)
        ratios["cpu"].append(bare_cpu / ours_cpu)
        ratios["floor"].append(bare_cpu / floor_cpu)
        load = os.getloadavg()[0]
        print(f" round {r + 1} (load average {load:.1f}, the machine is shared)")
        print(f"  bare kafka-python poll + json.loads : {bare:10,.0f} events/s, {bare_cpu:6.2f} CPU-s")
        print(f"  querywatch broker -> stored risk     : {ours:10,.0f} events/s, {ours_cpu:6.2f} CPU-s")
        print(f"  replay's pipeline, same events       : {floor:10,.0f} events/s, {floor_cpu:6.2f} CPU-s")
        print(
            f"  ratio                                : {ours / bare:10.2f} wall-clock, "
            f"{bare_cpu / ours_cpu:.2f} CPU time (goal >= 0.5); "
            f"replay's {bare_cpu / floor_cpu:.2f} CPU time"
        )
    if rounds > 1:
        print(
            f" median of {rounds}: {statistics.median(ratios['wall']):.2f} wall-clock, "
            f"{statistics.median(ratios['cpu']):.2f} CPU time; "
            f"replay's {statistics.median(ratios['floor']):.2f} CPU time"
        )


def latency(bootstrap: str, tmp: Path, rate: float, seconds: float, checkpoint_s: float) -> None:
    kafka = kafka_settings(bootstrap, "latency", checkpoint_every_seconds=checkpoint_s)
    ensure_topics(kafka)
    settings = Settings(
        kafka=kafka, database=migrated_database(tmp, "latency.db"), detection=detection_settings(tmp / "p")
    )
    database = make_engine(settings.database)
    child = consumer_process(settings, tmp / "latency-consumer.log")
    lines = widened_trace(int(rate * seconds / len(trace_lines())) + 1)[: int(rate * seconds)]
    sent_at: dict[tuple[int, int], float] = {}
    stored_at: dict[tuple[int, int], float] = {}
    done = threading.Event()

    def watch() -> None:
        known: dict[int, int] = {}
        while not done.is_set():
            now = time.perf_counter()
            for partition, offset in stored_offsets(database, kafka).items():
                for o in range(known.get(partition, 0), offset):
                    stored_at[(partition, o)] = now
                known[partition] = offset
            time.sleep(0.005)

    try:
        time.sleep(8)  # let the consumer join the group before the clock starts
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        producer = KafkaProducer(**producer_kwargs(kafka, role="bench-paced"))
        began = time.perf_counter()
        futures = []
        for i, line in enumerate(lines):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(
                (time.perf_counter(), line, producer.send(kafka.topic, key=client_key(line), value=line))
            )
        producer.flush()
        by_event: dict[tuple[str, float], tuple[int, int]] = {}
        for t, line, future in futures:
            meta = future.get(timeout=30)
            sent_at[(meta.partition, meta.offset)] = t
            event = parse_event(line)
            by_event[(event.client_id, round(event.ts, 6))] = (meta.partition, meta.offset)
        producer.close()
        wait_for(lambda: len(stored_at) >= len(sent_at), "every event stored", timeout_s=120)
    finally:
        done.set()
        child.terminate()
        child.wait(60)
    delays = np.array([stored_at[k] - t for k, t in sent_at.items()]) * 1000
    with database.connect() as c:
        alerts = [
            (cl, round(ts.timestamp(), 6))
            for cl, ts in c.execute(select(AlertRow.client_id, AlertRow.opened_at))
        ]
    database.dispose()
    alert_delays = (
        np.array([stored_at[by_event[a]] - sent_at[by_event[a]] for a in alerts if a in by_event]) * 1000
    )
    print(f"latency: {len(lines)} events at a steady {rate:,.0f} events/s, checkpoint every {checkpoint_s}s")
    p50, p99 = np.percentile(delays, 50), np.percentile(delays, 99)
    print(f"  produce -> risk stored : p50 {p50:7.0f} ms   p99 {p99:7.0f} ms")
    if len(alert_delays):
        print(
            f"  produce -> alert stored: p50 {np.percentile(alert_delays, 50):7.0f} ms   "
            f"p99 {np.percentile(alert_delays, 99):7.0f} ms   ({len(alert_delays)} alerts)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--copies", type=int, default=15, help="copies of the test trace for the throughput run"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the latency run")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the latency run")
    parser.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=KafkaSettings().checkpoint_every_seconds,
        help="checkpoint interval of the latency run (default: the setting's default)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="throughput rounds (medians printed)")
    parser.add_argument("--latency-only", action="store_true", help="skip the throughput run")
    parser.add_argument("--throughput-only", action="store_true", help="skip the latency run")
    args = parser.parse_args()
    # As `querywatch consume` runs (one BLAS thread, calmer GC); the bare loop runs likewise.
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker, engine_process():
        if not args.latency_only:
            throughput(broker.bootstrap_servers, Path(tmp), args.copies, args.rounds)
        if not args.throughput_only:
            latency(broker.bootstrap_servers, Path(tmp), args.rate, args.seconds, args.checkpoint_seconds)


if __name__ == "__main__":
    main()
