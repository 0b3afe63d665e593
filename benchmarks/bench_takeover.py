"""Where the time goes when the active ``querywatch aggregate`` dies and its standby takes over.

    python benchmarks/bench_takeover.py [--rounds 3] [--database URL] [--session-timeout-ms 6000]

Starts an embedded broker, two ``querywatch aggregate`` child processes (one active, one
standby) and two consumers that publish the simulated campaign's summaries (the trace of
``tests/kafka/test_aggregate.py``), then kills the active aggregator with SIGKILL once it
has checkpointed, and reads the standby's log and the database for the timeline, in
seconds after the kill:

* ``heard``: the standby rejoins the group (its listener's "partitions revoked" line): the
  group coordinator gave up on the dead member (session timeout after its last heartbeat)
  and the standby heard it at its next heartbeat;
* ``assigned``: the rebalance gave the standby the partition (JoinGroup and SyncGroup);
* ``loaded``: it loaded the stored state and queued the seek (the line "aggregating ...");
* ``committed``: its first checkpoint (the stored offset moved past the one it resumed at).

Each round starts the two aggregators again, so that the killed one is the active one; the
database is a fresh SQLite file unless ``--database`` names an empty one (PostgreSQL). The
broker, the consumers and this script share the machine, as in the tests.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.db import migrate
from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.adapters.kafka.aggregator import HEARTBEATS_PER_SESSION
from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.adapters.kafka.client_config import consumer_kwargs
from querywatch.detector.config import (
    CampaignSettings,
    DatabaseSettings,
    DetectionSettings,
    KafkaSettings,
    Settings,
)
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.profiles import profile_from_warmup
from querywatch.detector.simulate import generate_trace
from tests.kafka.harness import (
    ThreadedConsumer,
    consumer_process,
    produce,
    stop_all,
    stored_offsets,
    wait_for,
)

STEPS = ("heard", "assigned", "loaded", "committed")
LOADED = r"aggregating \S+ from offset"


def trace(folder: Path) -> tuple[list[bytes], Path]:
    """The campaign trace and a profile directory holding the profile of its other traffic."""
    events, truth = generate_trace(3, benign=12, attackers=0, campaign_accounts=12, org_accounts=6, scale=0.5)
    trusted = [parse_event(json.dumps(e)) for e in events if truth[e["client_id"]]["family"] != "campaign"]
    profiles = folder / "profiles"
    DirectoryProfileStore(profiles).put(profile_from_warmup(trusted[:3000], DetectionSettings()))
    return [json.dumps(e, separators=(",", ":")).encode() for e in events], profiles


def logged_at(log: Path, pattern: str, after: float) -> float | None:
    """Epoch time of the first line of ``log`` matching ``pattern`` logged after ``after``."""
    for line in log.read_text(errors="replace").splitlines():
        if re.search(pattern, line):
            ts = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if ts >= after:
                return ts
    return None


def assignments(log: Path) -> list[str]:
    return re.findall(r"partitions assigned: (\[.*?\])", log.read_text(errors="replace"))


def one_round(settings: Settings, lines: list[bytes], folder: Path, n: int) -> dict[str, float]:
    kafka = settings.kafka.model_copy(update={"topic": f"events-{n}", "group_id": f"group-{n}"})
    settings = settings.model_copy(
        update={"kafka": kafka, "campaigns": CampaignSettings(aggregator_group_id=f"group-{n}-aggregator")}
    )
    aggregating = settings.model_copy(
        update={"kafka": kafka.model_copy(update={"max_poll_records": 10, "checkpoint_every_seconds": 0.5})}
    )
    database = make_engine(settings.database)
    summaries = settings.kafka.model_copy(
        update={"group_id": settings.campaigns.aggregator_group_id, "topic": f"events-{n}.summaries"}
    )
    logs = [folder / f"round{n}-a.log", folder / f"round{n}-b.log"]
    children = [consumer_process(aggregating, logs[0], command="aggregate")]
    consumers: list[ThreadedConsumer] = []
    try:
        wait_for(lambda: any(a != "[]" for a in assignments(logs[0])), "the first aggregator assigned")
        children.append(consumer_process(aggregating, logs[1], command="aggregate"))
        wait_for(
            lambda: (
                sorted(bool(assignments(g)) and assignments(g)[-1] != "[]" for g in logs) == [False, True]
                and bool(assignments(logs[1]))
            ),
            "one active aggregator and one standby",
        )
        active = 0 if assignments(logs[0])[-1] != "[]" else 1
        consumers = [ThreadedConsumer(settings).start(), ThreadedConsumer(settings).start()]
        produce(settings.kafka, lines)
        wait_for(
            lambda: stored_offsets(database, summaries).get(0, 0) > 0, "the active aggregator's checkpoint"
        )
        killed = time.time()
        children[active].kill()
        children[active].wait()
        standby = logs[1 - active]
        wait_for(lambda: assignments(standby)[-1] != "[]", "the standby taking over")
        wait_for(lambda: logged_at(standby, LOADED, killed) is not None, "the standby's load")
        offset = int(re.findall(r"from offset (\d+)", standby.read_text())[-1])
        wait_for(
            lambda: stored_offsets(database, summaries).get(0, 0) > offset, "the standby's first checkpoint"
        )
        committed = time.time()
        timeline = {
            "heard": logged_at(standby, r"partitions revoked \(a rebalance", killed),
            "assigned": logged_at(standby, r"partitions assigned: \[\(", killed),
            "loaded": logged_at(standby, LOADED, killed),
            "committed": committed,
        }
        read = re.findall(r"(\d+) read from the database", standby.read_text())
        print(
            f"round {n}: "
            + ", ".join(f"{k} {'-' if t is None else f'{t - killed:.2f}'}" for k, t in timeline.items())
            + f" s after the kill; models read at takeover: {read[-1] if read else '?'}",
            flush=True,
        )
        return {k: t - killed for k, t in timeline.items() if t is not None}
    finally:
        stop_all(consumers, children)
        database.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database", help="URL of an empty database (default: a fresh SQLite file)")
    ap.add_argument("--session-timeout-ms", type=int, default=6000)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-takeover-"))
    lines, profiles = trace(folder)
    database = DatabaseSettings(url=args.database or f"sqlite:///{folder}/takeover.db")
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap_servers,
            partitions=4,
            max_poll_records=200,
            max_poll_interval_ms=args.session_timeout_ms,
            session_timeout_ms=args.session_timeout_ms,
            checkpoint_every_events=20,
            checkpoint_every_seconds=1.0,
        )
        settings = Settings(
            kafka=kafka, database=database, detection=DetectionSettings(profile_dir=str(profiles))
        )
        migrate.upgrade(settings)
        heartbeat = consumer_kwargs(kafka, heartbeats_per_session=HEARTBEATS_PER_SESSION)[
            "heartbeat_interval_ms"
        ]
        print(
            f"session timeout {args.session_timeout_ms} ms; aggregators' heartbeat every {heartbeat} ms; "
            f"database {database.url.split(':')[0]}; "
            f"logs in {folder}",
            flush=True,
        )
        rounds = [one_round(settings, lines, folder, n) for n in range(args.rounds)]
    for step in STEPS:
        values = [r[step] for r in rounds if step in r]
        if values:
            low, high = min(values), max(values)
            print(f"{step:>9}: median {statistics.median(values):.2f} s, range {low:.2f}-{high:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
