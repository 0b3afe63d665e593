"""One against two consumer processes on a pre-filled topic, with PostgreSQL.

    python benchmarks/bench_scaleout.py [--copies 30] [--partitions 4]

The test trace, widened to ``--copies`` times its clients, is produced to a topic of
``--partitions`` partitions first. Then ``querywatch consume`` drains it as one process, and
again (a fresh consumer group and database) as two processes in one group. For each run,
over its steady part (from the moment every process holds its partitions, and at least 10% of
the events are stored, to the last one):

* events/s, broker to stored risk;
* CPU-seconds per event of the consumer processes together, and each process's CPU (and
  what share of a core it used: near 1, the process is bound by its one scoring thread);
* the machine's busy share (``/proc/stat``), split into the consumers, the broker (Tansu),
  PostgreSQL (every ``postgres`` process, so also other databases of this server) and the
  rest, which on a shared machine is other people's work.

Target (issue 19): two processes add no CPU per event (within 10% of one), and either reach
1.6x one process's events/s or the machine is at least 90% busy, the breakdown naming the
limit. The broker and the database share the machine's cores with the consumers.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_consume import widened_trace

from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.adapters.kafka.client_config import producer_kwargs
from querywatch.detector.adapters.kafka.producer import client_key, produce_lines
from querywatch.detector.config import DatabaseSettings, KafkaSettings, Settings
from tests.kafka.harness import consumer_process, detection_settings, stored_offsets
from tests.storage.databases import temporary_database

TICK = os.sysconf("SC_CLK_TCK")
#: A consumer's log line on each assignment (``adapters.kafka.consumer``).
ASSIGNED = re.compile(r"partitions assigned: (\[.*\])")


def process_cpu(pid: int) -> float:
    """CPU-seconds (user + system) of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu() -> float:
    """CPU-seconds of every process named postgres (the server and its backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += process_cpu(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Snapshot:
    at: float
    stored: int
    consumers: list[float]
    broker: float
    postgres: float
    machine: tuple[int, int]


def snapshot(stored: int, pids: list[int], broker_pid: int) -> Snapshot:
    return Snapshot(
        time.perf_counter(),
        stored,
        [process_cpu(p) for p in pids],
        process_cpu(broker_pid),
        postgres_cpu(),
        machine_ticks(),
    )


def run(
    processes: int, kafka: KafkaSettings, tmp: Path, total: int, broker_pid: int
) -> tuple[Snapshot, Snapshot]:
    """Drain the topic with ``processes`` consumers; snapshots at 10% stored and at the end."""
    with temporary_database("postgres", tmp) as url:
        database = DatabaseSettings(url=url)
        settings = Settings(kafka=kafka, database=database, detection=detection_settings(tmp / "p"))
        upgrade(settings)
        engine = create_engine(url)
        logs = [tmp / f"consumer-{processes}-{i}.log" for i in range(processes)]
        children = [consumer_process(settings, log) for log in logs]
        pids = [c.pid for c in children]
        try:
            start = None
            deadline = time.monotonic() + 900
            while True:
                stored = sum(stored_offsets(engine, kafka).values())
                if start is None and stored >= total // 10 and settled(logs, kafka.partitions):
                    start = snapshot(stored, pids, broker_pid)
                if stored >= total:
                    end = snapshot(stored, pids, broker_pid)
                    break
                if time.monotonic() > deadline or any(c.poll() is not None for c in children):
                    raise SystemExit(f"consumers did not store {total} events (see {tmp}/consumer-*.log)")
                time.sleep(0.05)
        finally:
            for child in children:
                child.terminate()
            for child in children:
                child.wait(60)
            engine.dispose()
    if start is None:
        raise SystemExit(
            f"the topic was drained before all {processes} processes held partitions: raise --copies"
        )
    return start, end


def settled(logs: list[Path], partitions: int) -> bool:
    """Whether every process holds partitions and together they hold them all, as their
    logs last said: before that, one process may work alone while the others start, and a
    rebalance pauses every member (each hears of it at its next heartbeat)."""
    held = []
    for log in logs:
        assigned = ASSIGNED.findall(log.read_text(errors="replace")) if log.exists() else []
        held.append(assigned[-1].count("(") if assigned else 0)
    return all(held) and sum(held) == partitions


def report(name: str, start: Snapshot, end: Snapshot, cores: int) -> tuple[float, float]:
    events = end.stored - start.stored
    seconds = end.at - start.at
    each = [b - a for a, b in zip(start.consumers, end.consumers, strict=True)]
    busy = end.machine[0] - start.machine[0]
    total = end.machine[1] - start.machine[1]
    wall_cores = seconds * cores
    consumers, broker, postgres = sum(each), end.broker - start.broker, end.postgres - start.postgres
    other = max(0.0, busy / TICK - consumers - broker - postgres)
    per_event = consumers / events * 1e6
    print(
        f"{name:14} {events / seconds:9,.0f} events/s   {per_event:6.0f} us CPU/event "
        f"(each process: {', '.join(f'{c:.1f} s, {c / seconds:.2f} of a core' for c in each)})"
    )
    print(
        f"{'':14} machine {100 * busy / total:3.0f}% busy over {seconds:.1f} s: consumers "
        f"{100 * consumers / wall_cores:3.0f}%, broker {100 * broker / wall_cores:3.0f}%, "
        f"postgres {100 * postgres / wall_cores:3.0f}%, other {100 * other / wall_cores:3.0f}%"
    )
    return events / seconds, per_event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=30, help="copies of the test trace (2,719 events each)")
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    lines = widened_trace(args.copies)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            topic="bench-scaleout",
            dead_letter_topic="bench-scaleout-dead",
            alerts_topic="bench-scaleout-alerts",
            partitions=args.partitions,
        )
        ensure_topics(kafka)
        producer = KafkaProducer(**producer_kwargs(kafka))
        produce_lines(producer, kafka.topic, lines)
        producer.close()
        broker_pid = broker._process.pid if broker._process is not None else os.getpid()
        clients = len(set(map(client_key, lines)))
        print(
            f"scale-out: {len(lines):,} events, {clients} clients, {args.partitions} partitions, PostgreSQL, "
            f"default checkpointing; {cores} cores shared with the broker, the database and other "
            f"people's work (load average {os.getloadavg()[0]:.1f} at start)"
        )
        rates = []
        for processes in (1, 2):
            group = kafka.model_copy(update={"group_id": f"bench-scaleout-{processes}"})
            start, end = run(processes, group, Path(tmp), len(lines), broker_pid)
            rates.append(report(f"{processes} process{'es' if processes > 1 else ''}", start, end, cores))
        (one_rate, one_cpu), (two_rate, two_cpu) = rates
        print(
            f"two / one: {two_rate / one_rate:.2f}x events/s (target >= 1.6, or the machine >= 90% busy), "
            f"{two_cpu / one_cpu:.2f}x CPU per event (target <= 1.10); "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )


if __name__ == "__main__":
    main()
