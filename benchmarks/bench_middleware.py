"""What querywatch's middleware costs a model server: in-process timers under a steady load.

Starts the real pieces: Tansu (the emitter's Kafka), ``querywatch serve`` on a migrated
SQLite file (decisions), and the example digits model server in a child process, once
with the middleware (emitter + cached decisions) and once without. This process sends
``--requests`` single-row requests at ``--rate`` per second over loopback from 100 clients
and prints:

* the middleware's own time per request (its wall time minus the wrapped app's), p50/p99;
* the cached decision look-up, p50/p99;
* end-to-end latency seen by the caller, with and without the middleware.

Targets: middleware + emitter p99 <= 1 ms, a cached decision <= 0.2 ms.

    python benchmarks/bench_middleware.py --requests 15000 --rate 500
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "n/a"

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {at(0.5):.3f} ms  p99 {at(0.99):.3f} ms  max {ordered[-1] * 1000:.3f} ms"


# ----------------------------------------------------------------------------- server side
class Timed:
    """ASGI wrapper recording each call's wall time and the event-loop thread's CPU time
    (until the app has sent its answer). CPU time leaves out the moments the process waits
    for a core: on a shared machine those dominate the wall-clock tail."""

    def __init__(self, app: Any, into: list[float], cpu: list[float]) -> None:
        self.app, self.into, self.cpu = app, into, cpu

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/predict":
            await self.app(scope, receive, send)
            return
        started, cpu = time.perf_counter(), time.thread_time()
        await self.app(scope, receive, send)
        self.cpu.append(time.thread_time() - cpu)
        self.into.append(time.perf_counter() - started)


def serve(args: argparse.Namespace) -> None:
    """Child process: the example model server, timed, on ``args.port``."""
    import uvicorn

    from examples.model_server.server import EXTRACTOR, model_app
    from querywatch.detector.client import DecisionClient, Emitter, JsonlSink, KafkaSink, QuerywatchASGI

    outer: list[float] = []
    inner: list[float] = []
    outer_cpu: list[float] = []
    inner_cpu: list[float] = []
    cached: list[float] = []

    class TimedDecisions(DecisionClient):
        def cached(self, client_id: str) -> Any:
            started = time.perf_counter()
            found = super().cached(client_id)
            cached.append(time.perf_counter() - started)
            return found

    sink = JsonlSink(os.devnull) if args.sink == "null" else KafkaSink(args.bootstrap, "bench-serving")
    emitter = Emitter(sink) if args.with_middleware else None
    app: Any = Timed(model_app(emitter=emitter), inner, inner_cpu)
    if args.with_middleware:
        decisions = TimedDecisions(args.querywatch, args.key, ttl=3600.0, timeout=2.0)
        app = Timed(QuerywatchASGI(app, EXTRACTOR, emitter=emitter, decisions=decisions), outer, outer_cpu)

    async def stats_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/stats":
            found = {"outer": outer, "inner": inner, "cached": cached, "outer_cpu": outer_cpu}
            found["inner_cpu"] = inner_cpu
            body = json.dumps({**found, "emitter": emitter.stats() if emitter else None}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    uvicorn.run(stats_app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# ----------------------------------------------------------------------------- load side
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.1)


@contextlib.contextmanager
def model_server(args: argparse.Namespace, *, middleware: bool, querywatch: str, key: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", "--port", str(port), "--bootstrap", args.bootstrap]
    command += ["--querywatch", querywatch, "--key", key, "--sink", args.sink]
    command += ["--with-middleware"] if middleware else []
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def load(base: str, requests: int, rate: float) -> list[float]:
    """Paced single-row requests from 100 clients; the caller's latency of each."""
    from sklearn.datasets import load_digits

    rows = (load_digits().data / 16.0).round(3).tolist()
    rng = random.Random(0)
    latencies = []
    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(200):  # warm-up: fills the decision cache, connects the producer
            http.post("/v1/predict", json={"instances": [rows[0]]}, headers={"X-API-Key": "sk-warm"})
        for i in range(100):
            http.post("/v1/predict", json={"instances": [rows[i]]}, headers={"X-API-Key": f"sk-{i}"})
        http.get("/stats")
        start = time.perf_counter()
        for i in range(requests):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            body = {"instances": [rows[rng.randrange(len(rows))]]}
            sent = time.perf_counter()
            answer = http.post("/v1/predict", json=body, headers={"X-API-Key": f"sk-{i % 100}"})
            latencies.append(time.perf_counter() - sent)
            assert answer.status_code == 200, answer.text
    return latencies


def stats(base: str, skip: int) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{base}/stats", timeout=30).json()
    for name in ("outer", "inner", "cached", "outer_cpu", "inner_cpu"):
        found[name] = found[name][skip:]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=15_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument(
        "--sink", choices=("kafka", "null"), default="kafka", help="null: /dev/null, no broker"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--with-middleware", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", default="", help=argparse.SUPPRESS)
    parser.add_argument("--querywatch", default="", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return

    from benchmarks.bench_decision import served
    from querywatch.detector.adapters.db.migrate import upgrade
    from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
    from querywatch.detector.config import Settings
    from tests.storage.databases import settings_for

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        args.bootstrap = broker.bootstrap_servers
        url = f"sqlite:///{tmp}/bench.db"
        settings: Settings = settings_for(url)
        upgrade(settings)
        with served(settings, url) as (querywatch, headers):
            key = headers["X-API-Key"]
            results = {}
            for middleware in (False, True):
                with model_server(args, middleware=middleware, querywatch=querywatch, key=key) as base:
                    latencies = load(base, args.requests, args.rate)
                    results[middleware] = (latencies, stats(base, skip=300))
    (with_mw, server), (without_mw, _plain) = results[True], results[False]
    added = [o - i for o, i in zip(server["outer"], server["inner"], strict=True)]
    added_cpu = [o - i for o, i in zip(server["outer_cpu"], server["inner_cpu"], strict=True)]
    print(f"{args.requests} requests at {args.rate:.0f}/s, 100 clients, one row each (loopback)")
    print(f"  middleware + emitter, wall clock : {percentiles(added)}   (target p99 <= 1 ms)")
    print(f"  middleware + emitter, CPU time   : {percentiles(added_cpu)}")
    print(f"  cached decision look-up          : {percentiles(server['cached'])}   (target p99 <= 0.2 ms)")
    print(f"  end to end with the middleware   : {percentiles(with_mw)}")
    print(f"  end to end without it            : {percentiles(without_mw)}")
    emitted = server["emitter"]
    print(f"  emitter: {emitted['sent']} sent, dropped {emitted['dropped']}")


if __name__ == "__main__":
    os.environ.setdefault("QUERYWATCH_LOG_LEVEL", "WARNING")
    main()
