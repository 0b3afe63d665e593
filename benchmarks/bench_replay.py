"""Replay throughput next to the floor of merely ``json.loads``-ing the same lines, or next
to another commit's replay.

    python benchmarks/bench_replay.py TRACE.jsonl [--rounds 2] [--report r.json] [--profile DIR]
    python benchmarks/bench_replay.py TRACE.jsonl --against HEAD~1 [--rounds 3]

Both are measured in this run, on this machine, interleaved (floor, replay, floor, replay,
...), so their ratio is meaningful even where absolute speed is not: the machine may be
shared, and the load average is printed beside the figures. The CPU-time ratio counts only
this process (numpy's BLAS threads included) and is the steadier of the two on a loaded
machine. Also prints the peak memory (ru_maxrss), the size of the serialized per-client
state and what the replay found (``--report`` writes it, for the bench's ``score.py``).

``--against REV`` measures the speed target ("≥ 0.95× the previous commit in the same
run, median of 3"): the package as committed at REV (``git archive`` of its folders, put
first on ``PYTHONPATH``) and the working tree replay the trace in fresh processes, once
each untimed (a first run compiles numba kernels into the copy's cache; their reports are
compared: a change for speed must not move a decision), then ``--rounds`` times each in the
order A B B A A B ...: this machine's speed drifts by up to a third over minutes, which a
fixed order charges to the side that always runs second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
    report, wall seconds, CPU seconds), the warm-up profile fit included. A ``profile``
    directory is replayed from a copy: a trusted profile awaiting live answers is completed
    and replaced in its directory, and every later run would start from that one."""
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        store: ProfileStore = MemoryProfileStore()
        if profile:
            store = DirectoryProfileStore(Path(shutil.copytree(profile, Path(tmp, "profile"))))
        engine = Detector(settings.detection, store, settings.alerts)
        started, cpu_started = time.perf_counter(), cpu()
        with engine_process():
            report = replay(trace, engine)
        return engine, report, time.perf_counter() - started, cpu() - cpu_started


def client_states(engine: Detector) -> dict[str, bytes]:
    """Every client's stored state, as a checkpoint writes it (``Detector.export_client``)."""
    return {c: engine.export_client(c) for c in engine.client_ids()}


def describe_sizes(states: dict[str, bytes]) -> str:
    """The states' median and largest size, as both benchmarks print them."""
    sizes = sorted(len(s) for s in states.values())
    return f"median {sizes[len(sizes) // 2]:,} B, max {sizes[-1]:,} B over {len(sizes)} clients"


#: The folders that make up the installed package ``querywatch`` (pyproject's package-dir).
PACKAGE_FOLDERS = ("features", "models", "detector", "migrations")
REPOSITORY = Path(__file__).resolve().parent.parent


def one_run(trace: Path, profile: Path | None, report_to: Path | None) -> None:
    """One timed replay in this process, printed as JSON for ``--against``'s parent."""
    _, report, wall, cpu_s = timed_replay(trace, profile)
    if report_to:
        write_report(report, report_to)
    package = str(Path(str(sys.modules["querywatch.detector"].__file__)).resolve().parents[1])
    print(json.dumps({"events": report.events, "wall": wall, "cpu": cpu_s, "package": package}))


def package_at(rev: str | None, into: Path) -> Path:
    """A directory to put first on ``PYTHONPATH`` whose ``querywatch`` namespace wins over
    the installed one's: ``rev``'s package as committed, or (None) this working tree's."""
    target = into / "querywatch"
    target.mkdir(parents=True)
    if rev is None:
        for folder in PACKAGE_FOLDERS:
            (target / folder).symlink_to(REPOSITORY / folder)
        return into
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", rev, *PACKAGE_FOLDERS], capture_output=True
    )
    if archive.returncode:
        sys.exit(f"--against {rev}: git archive says: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return into


def timed_elsewhere(
    trace: Path, profile: Path | None, path: Path, report_to: Path | None = None
) -> dict[str, Any]:
    """``one_run`` in a fresh process, importing the package from ``path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, str(trace), "--one-run"]
    if profile:
        command += ["--profile", str(profile)]
    if report_to:
        command += ["--report", str(report_to)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:  # e.g. a commit whose replay API this script does not know
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        sys.exit(f"the replay importing {path} failed:\n{tail}")
    run: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return run


def compare_reports(mine: Path, theirs: Path) -> str:
    """Whether two replays found the same: a speed change must not move a decision."""
    if mine.read_bytes() == theirs.read_bytes():
        return "identical"
    first = [
        {c["client_id"]: c["first_alert_query"] for c in json.loads(p.read_text())["clients"]}
        for p in (mine, theirs)
    ]
    moved = sorted(c for c in first[0].keys() | first[1].keys() if first[0].get(c) != first[1].get(c))
    shown = ", ".join(f"{c} {first[0].get(c)} (was {first[1].get(c)})" for c in moved[:5])
    return f"differ; first alert moved for {len(moved)} clients" + (f": {shown}" if moved else "")


def against(trace: Path, profile: Path | None, rev: str, rounds: int) -> None:
    """The working tree's replay speed against ``rev``'s, alternated (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        sides = {"this tree": package_at(None, Path(tmp, "tree")), rev: package_at(rev, Path(tmp, "rev"))}
        load = os.getloadavg()[0]
        reports = {name: Path(tmp, f"report-{k}.json") for k, name in enumerate(sides)}
        for name, path in sides.items():  # untimed: a first run compiles the copy's kernels
            package = timed_elsewhere(trace, profile, path, reports[name])["package"]
            print(f"{name:>12}: the package in {package}")
        print(f"reports: {compare_reports(*reports.values())}")
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        names = list(sides)
        for k in range(rounds):
            for name in names if k % 2 == 0 else names[::-1]:
                run = timed_elsewhere(trace, profile, sides[name])
                runs[name].append(run)
                print(
                    f"{name:>12}: {run['events'] / run['wall']:9,.0f} events/s "
                    f"({run['wall']:5.2f} s, CPU {run['cpu']:5.2f} s)"
                )
    speed = {name: statistics.median(r["events"] / r["wall"] for r in rs) for name, rs in runs.items()}
    cpu_speed = {name: statistics.median(r["events"] / r["cpu"] for r in rs) for name, rs in runs.items()}
    mine, theirs = names
    print(
        f"median of {rounds}: this tree {speed[mine]:,.0f} events/s, {rev} {speed[theirs]:,.0f}: "
        f"{speed[mine] / speed[theirs]:.3f}x wall-clock, {cpu_speed[mine] / cpu_speed[theirs]:.3f}x CPU time"
    )
    print(
        f"machine: {os.cpu_count()} cores, load average {load:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at the end"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", type=Path)
    ap.add_argument("--profile", type=Path, help="profile directory (default: warm-up from the trace)")
    ap.add_argument("--rounds", type=int, default=2, help="floor and replay pairs, interleaved")
    ap.add_argument("--report", type=Path, help="write the last replay's report here (JSON)")
    ap.add_argument("--against", metavar="REV", help="time this tree's replay against commit REV's instead")
    ap.add_argument("--one-run", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if not args.trace.is_file():
        ap.error(f"{args.trace}: no such file")
    if args.one_run:
        one_run(args.trace, args.profile, args.report)
        return 0
    if args.against:
        against(args.trace, args.profile, args.against, args.rounds)
        return 0
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
    states = client_states(engine)
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
    if states:
        print(f"serialized client state: {describe_sizes(states)}")
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
