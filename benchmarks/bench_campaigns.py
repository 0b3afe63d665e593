"""What client summaries and the campaign stage cost a replay, and what the stage holds.

    python benchmarks/bench_campaigns.py TRACE.jsonl [--rounds 2]

Replays the trace once each way untimed (numba compiles the kernels a fresh cache lacks on
a first run: 5 s of a credit replay on a new machine), then with the stage off and on
``--rounds`` times each, in the order off-on, on-off, off-on, ...: a machine whose speed
drifts during the run (stage-off replays of one credit trace at 11.7, 12.5 and 13.7 s in
one run, level in the next) charged the stage that drift when it always ran second. It
prints the CPU time of each run and the extra share the summaries and the stage add. On a
loaded machine two replays of one trace differ by more than that share, so it also times
``summarize`` and the stage inside each run with the stage on: their share of the rest of
that run does not depend on how loaded the machine was between runs. Then feeds every
summary of the last run to a fresh stage under ``tracemalloc`` and prints the memory it
holds per client with a summary, and the summaries' sizes.
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time
import tracemalloc
from pathlib import Path
from typing import Any

from querywatch.detector.config import Settings
from querywatch.detector.engine import detector, summaries
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.engine.summaries import ClientSummary, SummaryRule
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.runtime import engine_process


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RecordingStage(CampaignStage):
    """The stage, also keeping every summary it was given for the memory run, and its CPU time."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[ClientSummary] = []
        self.seconds = 0.0

    def take(self, summary: ClientSummary):  # type: ignore[no-untyped-def]
        self.seen.append(summary)
        started = time.process_time()
        try:
            return super().take(summary)
        finally:
            self.seconds += time.process_time() - started


class TimedSummaries:
    """``summarize`` as the engine calls it, adding up its CPU time."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> ClientSummary:
        started = time.process_time()
        try:
            return summaries.summarize(*args, **kwargs)
        finally:
            self.seconds += time.process_time() - started


def run(
    trace: Path, settings: Settings, campaigns: bool
) -> tuple[float, float, MemoryProfileStore, RecordingStage | None]:
    """CPU seconds of the replay, of which summaries and the stage, the profiles, the stage."""
    store = MemoryProfileStore()
    timed = TimedSummaries()
    detector.summarize = timed  # type: ignore[assignment]
    engine = Detector(settings.detection, store, settings.alerts)
    stage = None
    if campaigns:
        engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
        stage = RecordingStage(settings.detection, store, settings.campaigns, settings.alerts)
    gc.collect()
    started = cpu()
    with engine_process():
        replay(trace, engine, campaigns=stage)
    detector.summarize = summaries.summarize
    inside = timed.seconds + (stage.seconds if stage is not None else 0.0)
    return cpu() - started, inside, store, stage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    settings = Settings()
    off: list[float] = []
    on: list[float] = []
    within: list[float] = []
    for campaigns in (False, True):  # untimed: compiles what the numba cache lacks
        run(args.trace, settings, campaigns=campaigns)
    store: MemoryProfileStore | None = None
    stage: RecordingStage | None = None
    for round_ in range(args.rounds):
        store = stage = None  # the last run's, freed before the next is timed
        for campaigns in (False, True) if round_ % 2 == 0 else (True, False):
            seconds, inside, kept_store, kept_stage = run(args.trace, settings, campaigns=campaigns)
            if not campaigns:
                off.append(seconds)
                continue
            on.append(seconds)
            within.append(inside / (seconds - inside))
            store, stage, stage_seconds = kept_store, kept_stage, inside
        print(
            f"replay CPU: stage off {off[-1]:.1f} s, on {on[-1]:.1f} s "
            f"(of which summaries and stage {stage_seconds:.1f} s: {100 * within[-1]:.1f}% of the rest)",
            flush=True,
        )
    extra = statistics.median(on) / statistics.median(off) - 1.0
    print(f"summaries + campaign stage add {100 * extra:.1f}% CPU to replay (median of {args.rounds} pairs)")
    print(
        f"timed inside the runs with the stage on: {100 * statistics.median(within):.1f}% "
        f"(median of {args.rounds})"
    )
    assert stage is not None and store is not None
    sizes = [len(s.to_bytes()) for s in stage.seen]
    print(
        f"summaries: {len(sizes)}, bytes max {max(sizes)}, mean {statistics.mean(sizes):.0f}; "
        f"campaigns found {len(stage.campaigns())}"
    )
    fresh = CampaignStage(settings.detection, store, settings.campaigns, settings.alerts)
    decoded = [ClientSummary.from_bytes(s.to_bytes()) for s in stage.seen]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for summary in decoded:
        fresh.take(summary)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    clients = sum(len(m.summaries) for m in fresh.models.values())
    per_client = held / max(clients, 1)
    print(f"campaign stage holds {per_client:,.0f} bytes per client with a summary ({clients} clients)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
