"""Replay throughput next to the floor of merely ``json.loads``-ing the same lines.

    python benchmarks/bench_replay.py TRACE.jsonl [--profile DIR]

Both are measured in this run, on this machine, so their ratio is meaningful even where
absolute speed is not. (The CPU-time ratio counts numpy's BLAS threads too.) Also prints
the peak memory (ru_maxrss) and the size of the serialized per-client state.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.config import Settings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore, ProfileStore
from querywatch.detector.pipeline.replay import replay
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--profile", type=Path, help="profile directory (default: warm-up from the trace)")
    args = ap.parse_args()
    settings = Settings()
    n, floor_s, floor_cpu = json_floor(args.trace)
    store: ProfileStore = DirectoryProfileStore(args.profile) if args.profile else MemoryProfileStore()
    engine = Detector(settings.detection, store, settings.alerts)
    started, cpu_started = time.perf_counter(), cpu()
    with engine_process():  # as `querywatch replay` runs it
        report = replay(args.trace, engine)
    replay_s, replay_cpu = time.perf_counter() - started, cpu() - cpu_started
    sizes = sorted(len(engine.export_client(c)) for c in engine.client_ids())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"trace: {n} lines, {args.trace.stat().st_size / 1e6:.1f} MB")
    print(f"json.loads floor: {n / floor_s:,.0f} lines/s ({floor_s:.2f} s)")
    print(
        f"replay:           {report.events / replay_s:,.0f} events/s ({replay_s:.2f} s, profile fit included)"
    )
    print(f"ratio replay / floor: {floor_s / replay_s:.2f} wall-clock, {floor_cpu / replay_cpu:.2f} CPU time")
    print(f"peak memory (maxrss): {rss_mb:.0f} MB")
    if sizes:
        print(
            f"serialized client state: median {sizes[len(sizes) // 2]} B, max {sizes[-1]} B "
            f"over {len(sizes)} clients"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
