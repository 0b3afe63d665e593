"""Several dispatchers on one database share the outbox without sending anything twice."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from tests.webhooks.conftest import Db, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver

ALERTS = 60
DISPATCHERS = 4


def test_concurrent_dispatchers_deliver_each_alert_once(db: Db, receiver: Receiver) -> None:
    add_endpoint(db.sessions, receiver.url)
    for n in range(ALERTS):
        add_alert(db.sessions, n)
    settings = db.with_webhooks(batch_size=5, timeout_seconds=5.0)
    engines = [make_engine(settings.database) for _ in range(DISPATCHERS)]  # one pool each, as processes
    stop = threading.Event()
    threads = [
        threading.Thread(target=Dispatcher(settings, make_sessionmaker(e)).run_forever, args=(stop,))
        for e in engines
    ]
    for thread in threads:
        thread.start()
    try:
        receiver.wait_for_requests(ALERTS, timeout=60)
        time.sleep(0.3)  # room for a wrongful second send to show up
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for engine in engines:
            engine.dispose()

    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids)) == ALERTS
    with db.sessions() as session:
        rows = session.scalars(select(WebhookDeliveryRow)).all()
    retried = [(r.attempts, r.last_error) for r in rows if r.attempts != 1]
    assert {r.state for r in rows} == {"delivered"} and retried == []
