"""Latency of ``GET /v1/clients/{client_id}/decision`` over real HTTP, as the serving tier sees it.

Starts uvicorn on a free loopback port against a fresh, migrated SQLite file (or the
database given with ``--database-url``), fills it with ``--clients`` clients, then sends
``--requests`` sequential keep-alive requests for random known and unknown clients and
prints the latency percentiles. Target: p99 <= 5 ms locally.

    python benchmarks/bench_decision.py --clients 100000 --requests 5000
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.outcomes import RiskUpdate
from detector.storage.db import make_engine, make_sessionmaker, transaction
from detector.storage.migrate import upgrade
from detector.storage.outcomes import save_outcomes
from tests.api.seed import Outcome
from tests.api.server import running_api
from tests.storage.databases import settings_for


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
            save_outcomes(session=session, outcomes=outcomes)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument(
        "--database-url", help="A migrated-or-empty database (default: a temporary SQLite file)."
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = settings_for(url)
        upgrade(settings)
        started = time.perf_counter()
        fill(url, args.clients)
        print(f"filled {args.clients} clients in {time.perf_counter() - started:.1f} s")
        with (
            running_api(settings) as api,
            httpx.Client(base_url=api.base_url, headers=api.reader_headers) as http,
        ):
            rng = random.Random(1)
            for _ in range(200):  # warm-up: connections, caches, code paths
                http.get(f"/v1/clients/acct-{rng.randrange(args.clients)}/decision").raise_for_status()
            latencies = []
            for _ in range(args.requests):
                known = rng.random() < 0.9
                client_id = f"acct-{rng.randrange(args.clients)}" if known else f"new-{rng.randrange(10**9)}"
                t0 = time.perf_counter()
                http.get(f"/v1/clients/{client_id}/decision").raise_for_status()
                latencies.append((time.perf_counter() - t0) * 1000)
    cuts = statistics.quantiles(latencies, n=1000)
    print(
        f"decision endpoint, {args.requests} sequential requests over HTTP keep-alive ({url.split(':')[0]}):"
    )
    print(
        f"  p50 {cuts[499]:.2f} ms   p90 {cuts[899]:.2f} ms   p99 {cuts[989]:.2f} ms"
        f"   max {max(latencies):.2f} ms"
    )
    print(f"  throughput {1000 / statistics.fmean(latencies):.0f} requests/s on one connection")


if __name__ == "__main__":
    main()
