"""Where a new client's bytes go: tracemalloc of the engine's client state, by source line.

    python benchmarks/bench_client_bytes.py [--clients 20000] [--per-client 1] [--lines 25]

Feeds ``--clients`` distinct clients of ``--per-client`` events each (the digits events of
``bench_million.py``, with the fixed digits profile) straight into the engine, in process,
and prints the bytes still allocated per client once they are all in (their ids included),
by the line that allocated them and by module. ``bench_million.py`` gives the whole process's figure (peak
RSS, the replay report included); this one says which part of a client costs what.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_million import write_trace

from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.simulate.victim import MODEL_ID
from tests.kafka.harness import detection_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--per-client", type=int, default=1)
    parser.add_argument("--lines", type=int, default=25, help="source lines to print")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        detection = detection_settings(tmp / "profile")
        store = DirectoryProfileStore(detection.profile_dir or "")
        trace, warm = tmp / "clients.jsonl", tmp / "warm.jsonl"
        write_trace(trace, args.clients, args.per_client)
        write_trace(warm, 100, 1, seed=1)
        warm_events = [parse_event(line) for line in warm.read_bytes().splitlines()]
        Detector(detection, store).process_batch(warm_events)  # compiled loops, caches
        engine = Detector(detection, store)
        engine.process_batch(warm_events[:1])  # the model's shared tables, before the count
        batches = _batches(trace)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for lines in batches:
            engine.process_batch([parse_event(line) for line in lines])
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    n = args.clients
    diff = [d for d in after.compare_to(before, "lineno") if d.size_diff > 0]
    root = str(Path(__file__).resolve().parents[1]) + "/"
    print(
        f"{n:,} clients x {args.per_client} event(s), model {MODEL_ID}: "
        f"{sum(d.size_diff for d in diff) / n:,.0f} B a client still allocated (tracemalloc)"
    )
    for d in diff[: args.lines]:
        frame = d.traceback[0]
        where = f"{frame.filename.replace(root, '')}:{frame.lineno}"
        print(f"  {d.size_diff / n:7.1f} B {d.count_diff / n:5.2f} blocks  {where}")
    modules: Counter[str] = Counter()
    for d in diff:
        modules[d.traceback[0].filename.replace(root, "")] += d.size_diff
    print("by module:")
    for module, size in modules.most_common(12):
        print(f"  {size / n:7.1f} B  {module}")


def _batches(trace: Path, size: int = 2048) -> list[list[bytes]]:
    lines = trace.read_bytes().splitlines()
    return [lines[i : i + size] for i in range(0, len(lines), size)]


if __name__ == "__main__":
    main()
