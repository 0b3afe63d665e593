"""``querywatch replay`` and ``querywatch profile``.

The engine (scikit-learn, river, numba) is imported when a command runs, not when the
parser is built, so that ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from querywatch.detector.config import Settings
from querywatch.detector.errors import QuerywatchError

if TYPE_CHECKING:
    from querywatch.detector.pipeline.replay import ReplayReport


def register(sub: Any) -> None:
    p = sub.add_parser("replay", help="Replay a JSONL trace offline and write a per-client report.")
    p.add_argument("trace", type=Path, help="JSON Lines file of inference-log events")
    p.add_argument("--report", type=Path, required=True, help="where to write the JSON report")
    p.add_argument(
        "--profile",
        type=Path,
        help="profile directory (default: QUERYWATCH_DETECTION__PROFILE_DIR; else built from warm-up)",
    )
    p.add_argument("--top", type=int, default=15, help="clients shown in the summary table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(run=run_replay)

    q = sub.add_parser("profile", help="Build a model's reference profile from trusted inputs.")
    q.add_argument("--input", type=Path, required=True, help="reference inputs: .npy, .csv or .jsonl")
    q.add_argument("--model-id", required=True)
    q.add_argument("--out", type=Path, required=True, help="profile directory")
    q.set_defaults(run=run_profile)


class ProgressBar:
    """A one-line progress bar on stderr, by bytes of the file read."""

    def __init__(self, total_bytes: int, stream: TextIO = sys.stderr) -> None:
        self.total = max(total_bytes, 1)
        self.done = 0
        self.stream = stream
        self.started = time.monotonic()
        self._last = 0.0

    def advance_lines(self, lines: int, avg_line: float) -> None:
        self.done += int(lines * avg_line)
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(30 * frac)
        self.stream.write(f"\rreplay [{bar:<30}] {100 * frac:5.1f}%  {now - self.started:6.1f}s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    from querywatch.detector.adapters.files import DirectoryProfileStore
    from querywatch.detector.engine.detector import Detector
    from querywatch.detector.engine.profiles import MemoryProfileStore, ProfileStore
    from querywatch.detector.pipeline.replay import replay, write_report
    from querywatch.detector.runtime import engine_process

    trace: Path = args.trace
    if not trace.is_file():
        raise QuerywatchError(f"{trace}: no such trace file")
    store: ProfileStore
    profile_dir = args.profile or settings.detection.profile_dir
    if profile_dir is not None:
        if not Path(profile_dir).is_dir():
            raise QuerywatchError(f"{profile_dir}: no such profile directory")
        store = DirectoryProfileStore(profile_dir)
    else:
        store = MemoryProfileStore()
    engine = Detector(settings.detection, store)
    size = trace.stat().st_size
    bar = None
    if not args.no_progress and size > 5_000_000:
        bar = ProgressBar(size)
    started = time.monotonic()
    with trace.open("rb") as f:
        head = f.read(1 << 16)
    avg_line = len(head) / max(head.count(b"\n"), 1)
    with engine_process():
        report = replay(trace, engine, progress=(lambda n: bar.advance_lines(n, avg_line)) if bar else None)
    if bar:
        bar.close()
    write_report(report, args.report)
    print_summary(report, time.monotonic() - started, args.top)
    return 0


def print_summary(report: ReplayReport, seconds: float, top: int) -> None:
    clients = sorted(report.clients.values(), key=lambda c: (-c.risk, c.client_id))
    alerted = sum(1 for c in clients if c.first_alert_query is not None)
    print(
        f"{report.events} events from {len(clients)} clients in {seconds:.1f}s "
        f"({report.events / max(seconds, 1e-9):,.0f} events/s); {alerted} clients alerted; "
        f"{report.duplicates} duplicates dropped; {sum(report.rejected.values())} invalid"
    )
    if report.rejected:
        print(
            "invalid events by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(report.rejected.items()))
        )
    print(f"{'client':<24} {'queries':>8} {'risk':>6} {'alert@':>7}  reason")
    for c in clients[:top]:
        first = "-" if c.first_alert_query is None else str(c.first_alert_query)
        reason = c.reasons[0] if c.reasons else ""
        print(f"{c.client_id[:24]:<24} {c.queries:>8} {c.risk:>6.3f} {first:>7}  {reason[:90]}")


def run_profile(args: argparse.Namespace, settings: Settings) -> int:
    from querywatch.detector.adapters.files import DirectoryProfileStore, read_reference_file
    from querywatch.detector.engine.profiles import build_profile

    X, labels, scores = read_reference_file(args.input)
    profile = build_profile(
        X, model_id=args.model_id, settings=settings.detection, labels=labels, scores=scores
    )
    DirectoryProfileStore(args.out).put(profile)
    print(
        f"profile of {args.model_id!r} version {profile.version}: {profile.reference_size} inputs, "
        f"dim {profile.dim}, {profile.cells} cells, out-of-profile threshold {profile.ood_threshold:.3f} "
        f"-> {args.out}"
    )
    return 0
