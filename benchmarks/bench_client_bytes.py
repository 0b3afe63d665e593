"""Where a new client's bytes go: tracemalloc of a replay's client state, by source line.

    python benchmarks/bench_client_bytes.py [--clients 20000] [--per-client 1] [--lines 25] [--frames 1]

Feeds ``--clients`` distinct clients of ``--per-client`` events each (the digits events of
``bench_million.py``, with the fixed digits profile) through ``replay`` in process, with the
campaign stage as ``querywatch replay`` runs it, and prints the bytes still allocated per
client once they are all in (the engine's state, the campaign stage's summaries, the
report's entry and request ids), by the line that allocated them (with ``--frames`` > 1,
by the chain of calls that led there) and by module. ``bench_million.py`` gives the whole
process's figure (peak RSS); this one says which part of a client costs what. Running it
with ``--per-client 1`` and ``2`` shows what a client's second event adds.
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
from querywatch.detector.config import ResidencySettings, Settings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.summaries import SummaryRule
from querywatch.detector.pipeline.replay import ReplayReport, replay
from querywatch.detector.simulate.victim import MODEL_ID
from tests.kafka.harness import detection_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--per-client", type=int, default=1)
    parser.add_argument("--lines", type=int, default=25, help="source lines to print")
    parser.add_argument("--frames", type=int, default=1, help="calls of each allocation to group by")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        settings = Settings(detection=detection_settings(tmp / "profile"))
        store = DirectoryProfileStore(settings.detection.profile_dir or "")
        trace, warm = tmp / "clients.jsonl", tmp / "warm.jsonl"
        write_trace(trace, args.clients, args.per_client)
        write_trace(warm, 100, 2, seed=1)

        def replayed(path: Path, engine: Detector, stage: CampaignStage) -> ReplayReport:
            return replay(path, engine, campaigns=stage, inputs=settings.inputs, stream=settings.stream)

        replayed(warm, *_engine_and_stage(settings, store))  # compiled loops, caches
        engine, stage = _engine_and_stage(settings, store)
        replayed(warm, engine, stage)  # the model's shared tables, before the count
        gc.collect()
        tracemalloc.start(args.frames)
        before = tracemalloc.take_snapshot()
        report = replayed(trace, engine, stage)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    n = args.clients
    assert len(report.clients) == n
    ignored = [tracemalloc.Filter(False, tracemalloc.__file__)]
    after, before = after.filter_traces(ignored), before.filter_traces(ignored)
    diff = [d for d in after.compare_to(before, "traceback") if d.size_diff > 0]
    root = str(Path(__file__).resolve().parents[1]) + "/"
    print(
        f"{n:,} clients x {args.per_client} event(s), model {MODEL_ID}, {report.summaries:,} campaign "
        f"summaries: {sum(d.size_diff for d in diff) / n:,.0f} B a client still allocated (tracemalloc)"
    )
    for d in diff[: args.lines]:
        # The allocating line first, then the calls that led to it.
        where = " < ".join(f"{f.filename.replace(root, '')}:{f.lineno}" for f in reversed(d.traceback))
        print(f"  {d.size_diff / n:7.1f} B {d.count_diff / n:5.2f} blocks  {where}")
    modules: Counter[str] = Counter()
    for d in diff:
        modules[d.traceback[-1].filename.replace(root, "")] += d.size_diff
    print("by module:")
    for module, size in modules.most_common(12):
        print(f"  {size / n:7.1f} B  {module}")


def _engine_and_stage(settings: Settings, store: DirectoryProfileStore) -> tuple[Detector, CampaignStage]:
    """An engine with no resident cap and the campaign stage, as ``querywatch replay`` builds them."""
    engine = Detector(settings.detection, store, settings.alerts, ResidencySettings(max_resident_clients=0))
    engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
    engine.key_salt = settings.campaigns.key_salt
    return engine, CampaignStage(settings.detection, store, settings.campaigns, settings.alerts)


if __name__ == "__main__":
    main()
