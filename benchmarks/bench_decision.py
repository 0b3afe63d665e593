"""Latency of ``GET /v1/clients/{client_id}/decision`` over real HTTP, as the serving tier sees it.

Starts ``querywatch serve`` as its own process (as in production: the client's work and
the server's do not share one interpreter lock) on a free loopback port against a fresh,
migrated SQLite file (or the database given with ``--database-url``), fills it with
``--clients`` clients, then sends ``--requests`` sequential keep-alive requests for random
known and unknown clients and prints the latency percentiles, and the CPU time the server
process spent per request (steadier than latency on a busy machine). Target: p99 <= 5 ms
locally. ``--in-process`` runs uvicorn in a thread of this process instead;
``--endpoint authz`` measures the gateway form, ``GET /v1/authz``. ``--hot N`` asks about
N known clients only (a gateway asks about the same active clients again and again, so
their decisions are in the API's decision cache); by default every request picks one of
all the clients, mostly not cached.

    python benchmarks/bench_decision.py --clients 100000 --requests 5000
    python benchmarks/bench_decision.py --clients 100000 --requests 5000 --endpoint authz
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.db.apikeys import create_api_key
from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.config import Settings
from querywatch.detector.engine.outcomes import RiskUpdate
from tests.api.seed import Outcome
from tests.api.server import running_api


def settings_for(url: str) -> Settings:
    """Default settings (the API's decision cache on, as deployed) on the database at ``url``."""
    return Settings.model_validate({"database": {"url": url}})


def fill(settings_url: str, clients: int) -> None:
    settings = settings_for(settings_url)
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    rng = random.Random(0)
    batch = 5000
    for start in range(0, clients, batch):
        outcomes = [
            Outcome(
                RiskUpdate(
                    f"acct-{i}", "digits-v1", 1.8e9, 100, rng.random(), ("coverage",), {"coverage": 0.5}
                )
            )
            for i in range(start, min(clients, start + batch))
        ]
        with transaction(sessions) as session:
            store_outcomes(session=session, outcomes=outcomes)
    engine.dispose()


@contextlib.contextmanager
def served(settings: Settings, url: str) -> Iterator[tuple[str, dict[str, str], int | None]]:
    """``querywatch serve`` in a child process; yields its base URL and reader headers."""
    engine = make_engine(settings.database)
    with transaction(make_sessionmaker(engine)) as session:
        key = create_api_key(session=session, role="reader", name="bench").secret
    engine.dispose()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "QUERYWATCH_DATABASE__URL": url,
        "QUERYWATCH_API__PORT": str(port),
        "QUERYWATCH_LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "-m", "querywatch.detector.cli", "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("querywatch serve did not start")
            time.sleep(0.2)
        yield base, {"X-API-Key": key}, server.pid
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextlib.contextmanager
def in_process(settings: Settings) -> Iterator[tuple[str, dict[str, str], int | None]]:
    with running_api(settings) as api:
        yield api.base_url, api.reader_headers, None


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process used so far; 0 when not measured (in-process)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument(
        "--database-url", help="A migrated-or-empty database (default: a temporary SQLite file)."
    )
    parser.add_argument("--in-process", action="store_true", help="uvicorn in a thread of this process")
    parser.add_argument(
        "--endpoint",
        choices=("decision", "authz"),
        default="decision",
        help="authz: the gateway form, GET /v1/authz with X-Querywatch-Client (200 or 403)",
    )
    parser.add_argument("--hot", type=int, help="ask about this many known clients only (cached decisions)")
    args = parser.parse_args()
    known_ids = args.hot or args.clients

    def ask(http: httpx.Client, client_id: str) -> None:
        if args.endpoint == "decision":
            http.get(f"/v1/clients/{client_id}/decision").raise_for_status()
            return
        answer = http.get("/v1/authz", headers={"X-Querywatch-Client": client_id})
        if answer.status_code not in (200, 403):
            answer.raise_for_status()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = settings_for(url)
        upgrade(settings)
        started = time.perf_counter()
        fill(url, args.clients)
        print(f"filled {args.clients} clients in {time.perf_counter() - started:.1f} s")
        server = in_process(settings) if args.in_process else served(settings, url)
        with server as (base_url, headers, pid), httpx.Client(base_url=base_url, headers=headers) as http:
            rng = random.Random(1)
            for _ in range(200):  # warm-up: connections, caches, code paths
                ask(http, f"acct-{rng.randrange(known_ids)}")
            latencies = []
            cpu_started = cpu_seconds(pid)
            for _ in range(args.requests):
                known = args.hot or rng.random() < 0.9
                client_id = f"acct-{rng.randrange(known_ids)}" if known else f"new-{rng.randrange(10**9)}"
                t0 = time.perf_counter()
                ask(http, client_id)
                latencies.append((time.perf_counter() - t0) * 1000)
            server_cpu = cpu_seconds(pid) - cpu_started
    cuts = statistics.quantiles(latencies, n=1000)
    print(
        f"{args.endpoint} endpoint, {args.requests} sequential requests over HTTP keep-alive, "
        f"{f'{args.hot} hot clients' if args.hot else f'any of {args.clients} clients'} "
        f"({url.split(':')[0]}, "
        f"{'in-process' if args.in_process else 'querywatch serve in its own process'}):"
    )
    print(
        f"  p50 {cuts[499]:.2f} ms   p90 {cuts[899]:.2f} ms   p99 {cuts[989]:.2f} ms"
        f"   max {max(latencies):.2f} ms"
    )
    print(f"  throughput {1000 / statistics.fmean(latencies):.0f} requests/s on one connection")
    if server_cpu:  # steadier than latency on a busy machine: what the server itself spent
        print(f"  server CPU {server_cpu * 1000 / args.requests:.3f} ms per request")


if __name__ == "__main__":
    main()
