"""A real million distinct clients through ``querywatch replay`` (and ``consume``): memory and speed.

    python benchmarks/bench_million.py [--clients 1000000] [--per-client 1] [--cap N] [--consume]

Writes a trace of ``--clients`` distinct clients, ``--per-client`` events each (digits
inputs near the victim's own, with the fixed digits profile, so no warm-up), then runs
``querywatch replay`` on it as a child process, and on a 1,000-client trace for the
baseline. Prints events/s, the child's peak RSS (``wait4``), (peak - baseline) / clients
and the serialized state size. With ``--consume`` the same events go through a real broker
(Tansu) into ``querywatch consume`` with SQLite, which evicts idle clients at its
checkpoints: events/s, peak RSS, its RSS as each quarter of the events is stored (flat when
memory is bounded) and the size of the checkpoint table are printed. ``--cap`` is
``residency.max_resident_clients`` for both (default: the setting's; 0: no cap, no spilling).
Nothing is extrapolated: every figure is of the run itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.db.tables import ClientStateRow
from querywatch.detector.config import ResidencySettings
from querywatch.detector.simulate.victim import MODEL_ID, load_victim
from tests.kafka.harness import detection_settings

BASELINE_CLIENTS = 1_000


def write_trace(path: Path, clients: int, per_client: int, seed: int = 0) -> int:
    """Events of ``clients`` distinct clients, interleaved, one second of event time apart
    per round; returns the number of events written."""
    victim = load_victim()
    rng = np.random.default_rng(seed)
    rows = victim.train
    with path.open("w") as f:
        n = 0
        for round_ in range(per_client):
            for start in range(0, clients, 10_000):
                count = min(10_000, clients - start)
                picks = rows[rng.integers(0, len(rows), count)]
                served = victim.serve(picks + rng.normal(0, 0.02, picks.shape))
                noisy, labels = served.inputs, served.labels
                for i in range(count):
                    client = start + i
                    event = {
                        "request_id": f"r{client}-{round_}",
                        "ts": 1_800_000_000.0 + round_ * 3600.0 + client * 1e-3,
                        "client_id": f"acct-{client}",
                        "model_id": MODEL_ID,
                        "input": noisy[i].tolist(),
                        "prediction": {"label": int(labels[i])},
                    }
                    f.write(json.dumps(event, separators=(",", ":")) + "\n")
                    n += 1
    return n


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in bytes, stdout) of a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    out = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out[-2000:]}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024.0, out


def child_env(cap: int) -> dict[str, str]:
    """This process's environment without QUERYWATCH_ settings, but with the resident cap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUERYWATCH_")}
    env["QUERYWATCH_RESIDENCY__MAX_RESIDENT_CLIENTS"] = str(cap)
    return env


def replay_run(
    trace: Path, profile_dir: Path, report: Path, cap: int
) -> tuple[float, float, float, dict[str, object]]:
    wall, cpu, rss, out = run_child(
        [
            sys.executable,
            "-m",
            "querywatch.detector.cli",
            "replay",
            str(trace),
            "--profile",
            str(profile_dir),
            "--report",
            str(report),
            "--quiet",
            "--json",
        ],
        child_env(cap),
    )
    return wall, cpu, rss, json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--per-client", type=int, default=1)
    parser.add_argument(
        "--cap",
        type=int,
        default=ResidencySettings().max_resident_clients or 0,
        help="residency.max_resident_clients (0: no cap)",
    )
    parser.add_argument("--consume", action="store_true", help="also run the events through consume")
    parser.add_argument("--no-replay", action="store_true", help="only consume (with --consume)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        detection = detection_settings(tmp / "profile")
        small, big = tmp / "baseline.jsonl", tmp / "clients.jsonl"
        write_trace(small, BASELINE_CLIENTS, args.per_client)
        began = time.perf_counter()
        events = write_trace(big, args.clients, args.per_client)
        print(
            f"trace: {args.clients:,} clients x {args.per_client} events = {events:,} events, "
            f"{big.stat().st_size / 1e9:.2f} GB (written in {time.perf_counter() - began:.0f} s); "
            f"{os.cpu_count()} cores shared with other work, load average {os.getloadavg()[0]:.1f}; "
            f"resident cap {args.cap:,}" + (" (none)" if args.cap == 0 else "")
        )
        profile_dir = Path(detection.profile_dir or "")
        if not args.no_replay:
            replay_figures(small, big, profile_dir, tmp, args.clients, events, args.cap)
        if args.consume:
            consume(big, events, detection, tmp, args.cap)
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def replay_figures(
    small: Path, big: Path, profile_dir: Path, tmp: Path, clients: int, events: int, cap: int
) -> None:
    _, _, base_rss, _ = replay_run(small, profile_dir, tmp / "baseline.json", cap)
    wall, cpu, rss, summary = replay_run(big, profile_dir, tmp / "report.json", cap)
    print(
        f"replay: {events / wall:,.0f} events/s wall, {events / cpu:,.0f} events/CPU-s; peak RSS "
        f"{rss / 2**30:.2f} GiB (baseline {base_rss / 2**20:.0f} MiB at {BASELINE_CLIENTS:,} clients); "
        f"(peak - baseline) / clients = {(rss - base_rss) / clients:,.0f} B "
        f"(clients in the report: {summary['clients']:,})"
    )


def rss_of(pid: int) -> float:
    """Resident set size of a running process, in bytes (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
    return float(line.split()[1]) * 1024.0


def consume(trace: Path, events: int, detection: object, tmp: Path, cap: int) -> None:
    """The trace through a real broker and ``querywatch consume`` (SQLite)."""
    from kafka import KafkaProducer

    from querywatch.detector.adapters.db.migrate import upgrade
    from querywatch.detector.adapters.kafka.admin import ensure_topics
    from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
    from querywatch.detector.adapters.kafka.client_config import producer_kwargs
    from querywatch.detector.adapters.kafka.producer import client_key
    from querywatch.detector.config import DatabaseSettings, KafkaSettings, Settings
    from tests.kafka.harness import _environment, stored_offsets

    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic="bench-million", partitions=4)
        ensure_topics(kafka)
        producer = KafkaProducer(**producer_kwargs(kafka))
        with trace.open("rb") as f:
            for line in f:
                line = line.rstrip(b"\n")
                producer.send(kafka.topic, key=client_key(line), value=line)
        producer.flush()
        producer.close()
        database = DatabaseSettings(url=f"sqlite:///{tmp / 'million.db'}")
        settings = Settings(kafka=kafka, database=database, detection=detection)  # type: ignore[arg-type]
        upgrade(settings)
        env = child_env(cap)
        env.update(_environment(settings))
        engine = create_engine(database.url)
        began = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "querywatch.detector.cli", "consume"],
            env=env,
            stdout=(tmp / "consume.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        quarters: list[float] = []  # RSS as each quarter of the events is stored
        try:
            while (done := sum(stored_offsets(engine, kafka).values())) < events:
                if child.poll() is not None:
                    raise SystemExit(f"consume stopped: {(tmp / 'consume.log').read_text()[-2000:]}")
                while len(quarters) < 3 and done >= (len(quarters) + 1) * events / 4:
                    quarters.append(rss_of(child.pid))
                time.sleep(0.5)
            wall = time.perf_counter() - began
            quarters.append(rss_of(child.pid))
        finally:
            child.terminate()
        _, _, usage = os.wait4(child.pid, 0)
        with engine.connect() as c:
            rows = c.scalar(select(func.count()).select_from(ClientStateRow))
            size = c.scalar(select(func.sum(func.length(ClientStateRow.state))))
        engine.dispose()
        print(
            f"consume (SQLite, 4 partitions): {events / wall:,.0f} events/s wall including start-up, "
            f"{events / (usage.ru_utime + usage.ru_stime):,.0f} events/CPU-s; peak RSS "
            f"{usage.ru_maxrss / 2**20:.2f} GiB (RSS as each quarter is stored: "
            f"{', '.join(f'{q / 2**30:.2f}' for q in quarters)} GiB); checkpoint: {rows:,} client states, "
            f"{(size or 0) / 2**20:,.0f} MiB ({(size or 0) / max(rows or 1, 1):,.0f} B each), "
            f"database file {(tmp / 'million.db').stat().st_size / 2**20:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
