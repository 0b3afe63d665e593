"""Replay throughput next to the floor of merely ``json.loads``-ing the same lines.

    python benchmarks/bench_replay.py TRACE.jsonl [--rounds 2] [--report r.json] [--profile DIR]

Both are measured in this run, on this machine, interleaved (floor, replay, floor, replay,
...), so their ratio is meaningful even where absolute speed is not: the machine may be
shared, and the load average is printed beside the figures. The CPU-time ratio counts only
this process (numpy's BLAS threads included) and is the steadier of the two on a loaded
machine. Also prints the peak memory (ru_maxrss), the size of the serialized per-client
state and what the replay found (``--report`` writes it, for the bench's ``score.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.config import Settings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore, ProfileStore
from querywatch.detector.pipeline.replay import ReplayReport, replay, write_report
from querywatch.detector.runtime import engine_process


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def json_floor(path: Path) -> tuple[int, float, float]:
    started, cpu_started = time.perf_counter(), cpu()
    n = 0
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                json.loads(line)
                n += 1
    return n, time.perf_counter() - started, cpu() - cpu_started


def timed_replay(trace: Path, profile: Path | None) -> tuple[Detector, ReplayReport, float, float]:
    """A fresh engine's replay of ``trace``, as ``querywatch replay`` runs it: (engine,
    report, wall seconds, CPU seconds), the warm-up profile fit included."""
    settings = Settings()
    store: ProfileStore = DirectoryProfileStore(profile) if profile else MemoryProfileStore()
    engine = Detector(settings.detection, store, settings.alerts)
    started, cpu_started = time.perf_counter(), cpu()
    with engine_process():
        report = replay(trace, engine)
    return engine, report, time.perf_counter() - started, cpu() - cpu_started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--profile", type=Path, help="profile directory (default: warm-up from the trace)")
    ap.add_argument("--rounds", type=int, default=2, help="floor and replay pairs, interleaved")
    ap.add_argument("--report", type=Path, help="write the last replay's report here (JSON)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    walls, cpus = [], []
    for _ in range(args.rounds):
        n, floor_s, floor_cpu = json_floor(args.trace)
        engine, report, replay_s, replay_cpu = timed_replay(args.trace, args.profile)
        walls.append(floor_s / replay_s)
        cpus.append(floor_cpu / replay_cpu)
        print(
            f"json.loads floor {n / floor_s:9,.0f} lines/s ({floor_s:5.2f} s, CPU {floor_cpu:5.2f} s); "
            f"replay {report.events / replay_s:9,.0f} events/s ({replay_s:5.2f} s, CPU {replay_cpu:5.2f} s)"
        )
    sizes = sorted(len(engine.export_client(c)) for c in engine.client_ids())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"trace: {n} lines, {args.trace.stat().st_size / 1e6:.1f} MB; profile fit included in replay")
    print(
        f"ratio replay / floor, median of {args.rounds}: {statistics.median(walls):.2f} wall-clock "
        f"({', '.join(f'{r:.2f}' for r in walls)}), {statistics.median(cpus):.2f} CPU time "
        f"({', '.join(f'{r:.2f}' for r in cpus)})"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end (shared: wall-clock figures move with it)"
    )
    print(f"peak memory (maxrss): {rss_mb:.0f} MB")
    if sizes:
        print(
            f"serialized client state: median {sizes[len(sizes) // 2]:,} B, max {sizes[-1]:,} B "
            f"over {len(sizes)} clients"
        )
    alerted = sum(1 for c in report.clients.values() if c.first_alert_query is not None)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report.alert_events.items()))
    print(
        f"found: {report.events:,} events, {len(report.clients)} clients, {alerted} alerted, "
        f"{len(report.alerts)} alerts ({kinds}), "
        f"{sum(report.rejected.values())} rejected, {report.duplicates} duplicates"
    )
    if args.report:
        write_report(report, args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
