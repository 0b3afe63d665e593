"""Webhook dispatcher throughput to loopback receivers: prints figures, asserts nothing.

Per round, interleaved: deliveries/s of one ``run_forever`` dispatcher (SQLite) to one fast
receiver with ``per_endpoint`` = the default and = ``batch_size`` (no cap), and to the fast
receiver while a receiver that never answers (until the timeout) sits next to it.

    python benchmarks/bench_dispatch.py --deliveries 400 --rounds 2
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.alert_schema import alert_fields, event_body
from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.db.outbox import enqueue_deliveries
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.adapters.db.tables import (
    AlertEventRow,
    AlertRow,
    Base,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.delivery.signing import generate_secret
from querywatch.detector.config import DatabaseSettings, Settings, WebhookSettings


@contextmanager
def receiver(*, hang: float) -> Iterator[str]:
    """An HTTP receiver on a free loopback port answering 204, after ``hang`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(hang)
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the default 5 makes a burst of connections wait for SYN retries

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def fill(sessions: sessionmaker[Session], urls: list[str], n: int) -> int:
    """Empty the database, add the endpoints and ``n`` alerts; return the first endpoint's id."""
    with sessions() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
        endpoints = [WebhookEndpointRow(url=u, secret=generate_secret()) for u in urls]
        session.add_all(endpoints)
        now = datetime.now(UTC)
        for i in range(n):
            alert = AlertRow(
                alert_id=f"al_bench{i:06d}",
                client_id=f"acct-{i}",
                model_id="digits-v1",
                opened_at=now,
                queries=100,
                risk=0.97,
                severity="high",
                technique="AML.T0024.002",
                reasons=["bench"],
                features={},
            )
            session.add(alert)
            session.flush()
            event = AlertEventRow(alert_id=alert.alert_id, sequence=1, type="alert.opened", event_at=now)
            session.add(event)
            session.flush()
            alert.last_event_id = event.id
            event.body = event_body(event, alert_fields(alert))
            enqueue_deliveries(session=session, alert=alert, event=event, now=now)
        return endpoints[-1].id  # the fast receiver is added last


def rate(settings: Settings, sessions: sessionmaker[Session], fast_id: int, n: int) -> float:
    """Deliveries/s to the fast endpoint until all ``n`` are recorded delivered."""
    stop = threading.Event()
    thread = threading.Thread(target=Dispatcher(settings, sessions).run_forever, args=(stop,))
    started = time.perf_counter()
    thread.start()
    query = select(func.count()).where(
        WebhookDeliveryRow.endpoint_id == fast_id, WebhookDeliveryRow.state == "delivered"
    )
    while True:
        with sessions() as session:
            if (session.scalar(query) or 0) >= n:
                break
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    stop.set()
    thread.join()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    default = WebhookSettings()
    timeout = 5.0
    with tempfile.TemporaryDirectory() as tmp, receiver(hang=0) as fast, receiver(hang=timeout + 1) as slow:
        base = Settings(
            database=DatabaseSettings(url=f"sqlite:///{Path(tmp) / 'bench.db'}"),
            webhooks=WebhookSettings(allow_hosts=("127.0.0.1",), timeout_seconds=timeout, jitter=0.0),
        )
        upgrade(base)
        engine = make_engine(base.database)
        sessions = make_sessionmaker(engine)
        cases = {
            f"one fast receiver, per_endpoint={default.per_endpoint}": ([fast], default.per_endpoint),
            f"one fast receiver, per_endpoint={default.batch_size} (no cap)": ([fast], default.batch_size),
            f"fast receiver next to one that hangs {timeout:g}s, per_endpoint={default.per_endpoint}": (
                [slow, fast],
                default.per_endpoint,
            ),
        }
        for round_ in range(args.rounds):
            for name, (urls, per_endpoint) in cases.items():
                webhooks = base.webhooks.model_copy(update={"per_endpoint": per_endpoint})
                settings = base.model_copy(update={"webhooks": webhooks})
                fast_id = fill(sessions, urls, args.deliveries)
                per_second = rate(settings, sessions, fast_id, args.deliveries)
                print(f"round {round_}: {name}: {per_second:.0f} deliveries/s")
        engine.dispose()


if __name__ == "__main__":
    main()
