"""How fast ``querywatch aggregate`` takes summaries, and what its state costs per client.

    python benchmarks/bench_aggregate.py TRACE.jsonl [--every 5000] [--database URL]

Replays the trace once with summaries on, keeping every summary (serialized, as on the
summaries topic) and the profiles the replay built. Then drives the aggregator
(``adapters.kafka.aggregator.Aggregator``) with them as records of the topic's one
partition, in polls of ``kafka.max_poll_records``, checkpointing as the consumer loop does
(``--every`` summaries, or at once when a campaign alert event waits) into a migrated
database (a fresh SQLite file unless ``--database``), and prints:

* summaries/s, CPU and wall, and the share of it spent in checkpoints;
* the stored state (``aggregator_states``) in bytes per client with a summary (the "active
  clients" the stage holds), and the memory the aggregator holds per such client
  (``tracemalloc`` over a second run, after a short warm-up run has paid the one-off costs:
  compiled kernels, SQL statement caches).

The broker is left out: reading a 1.5 KB message costs a consumer microseconds, the stage
milliseconds.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import func, select

from querywatch.detector.adapters.db import migrate
from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.session import SessionFactory, make_engine, make_sessionmaker
from querywatch.detector.adapters.db.tables import AggregatorStateRow
from querywatch.detector.adapters.kafka.aggregator import Aggregator
from querywatch.detector.adapters.kafka.processor import Record
from querywatch.detector.adapters.sinks import stored_sinks
from querywatch.detector.config import DatabaseSettings, Settings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.outcomes import AlertEvent
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.engine.summaries import ClientSummary, SummaryRule
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.pipeline.sinks import Sinks
from querywatch.detector.runtime import engine_process

TOPIC = "bench.summaries"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Recorder:
    """Keeps every summary a replay emits, as the summaries topic would carry it."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    def take(self, summary: ClientSummary) -> list[AlertEvent]:
        self.values.append(summary.to_bytes())
        return []

    def campaigns(self) -> list[object]:
        return []


def summaries_of(trace: Path, settings: Settings) -> tuple[MemoryProfileStore, list[bytes]]:
    store = MemoryProfileStore()
    engine = Detector(settings.detection, store, settings.alerts)
    engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
    recorder = Recorder()
    with engine_process():
        replay(trace, engine, campaigns=recorder)  # type: ignore[arg-type]
    return store, recorder.values


def aggregator(
    settings: Settings, sessions: SessionFactory, store: MemoryProfileStore, every: int, group: str
) -> Aggregator:
    return Aggregator(
        new_stage=lambda: CampaignStage(settings.detection, store, settings.campaigns, settings.alerts),
        sessions=sessions,
        group_id=group,
        campaigns=lambda stage: InProcessCampaigns(stage),
        sinks=Sinks(stored_sinks()),
        checkpoint_every_summaries=every,
        checkpoint_every_seconds=float("inf"),
    )


def drive(agg: Aggregator, values: list[bytes], batch: int) -> float:
    """Feed every summary in polls of ``batch``, checkpointing when due; the CPU seconds spent
    in checkpoints."""
    agg.assign([(TOPIC, 0)])
    agg.load_unloaded()
    in_checkpoints = 0.0
    for start in range(0, len(values), batch):
        end = min(start + batch, len(values))
        agg.process(Record(TOPIC, 0, o, None, values[o]) for o in range(start, end))
        due = agg.due()
        if due:
            before = cpu()
            agg.checkpoint(due)
            in_checkpoints += cpu() - before
    before = cpu()
    agg.checkpoint()
    return in_checkpoints + cpu() - before


def clients_held(agg: Aggregator) -> int:
    return sum(len(m.summaries) for m in agg.stage.models.values())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--every", type=int, default=5000, help="checkpoint every this many summaries")
    ap.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-aggregate-")
    url = args.database or f"sqlite:///{folder}/aggregate.db"
    settings = Settings(database=DatabaseSettings(url=url))
    migrate.upgrade(settings)
    store, values = summaries_of(args.trace, settings)
    sizes = [len(v) for v in values]
    print(
        f"{len(values)} summaries from the replay, bytes mean {statistics.mean(sizes):.0f}, max {max(sizes)}"
    )

    agg = aggregator(settings, make_sessionmaker(make_engine(settings.database)), store, args.every, "bench")
    started, wall = cpu(), time.perf_counter()
    with engine_process():
        in_checkpoints = drive(agg, values, settings.kafka.max_poll_records)
    seconds, wall = cpu() - started, time.perf_counter() - wall
    clients = clients_held(agg)
    print(
        f"aggregator: {len(values) / seconds:,.0f} summaries/s CPU ({len(values) / wall:,.0f} wall), "
        f"{100 * in_checkpoints / seconds:.0f}% of it in checkpoints (every {args.every} summaries); "
        f"{len(agg.stage.campaigns())} campaigns"
    )
    database = make_engine(settings.database)
    with database.connect() as c:
        stored = c.scalar(select(func.sum(func.length(AggregatorStateRow.state)))) or 0
    database.dispose()
    print(
        f"stored state: {stored:,} bytes, {stored / max(clients, 1):,.0f} bytes per client "
        f"with a summary ({clients})"
    )

    quiet = settings.model_copy(update={"database": DatabaseSettings(url=f"sqlite:///{folder}/memory.db")})
    migrate.upgrade(quiet)
    sessions = make_sessionmaker(make_engine(quiet.database))  # one engine: its statement cache warms up
    drive(
        aggregator(quiet, sessions, store, args.every, "warm-up"),
        values[:1000],
        settings.kafka.max_poll_records,
    )
    fresh = aggregator(quiet, sessions, store, args.every, "traced")
    tracemalloc.start()
    drive(fresh, values, settings.kafka.max_poll_records)
    gc.collect()  # what is still held, not cycles waiting for the collector
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"in memory: {held / max(clients, 1):,.0f} bytes per client with a summary (all the aggregator "
        f"allocated and still holds after a warm-up run, over {clients} clients)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
