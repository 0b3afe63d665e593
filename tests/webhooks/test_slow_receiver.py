"""One slow receiver never holds up the others: a receiver that hangs keeps at most
``per_endpoint`` deliveries in flight, while a fast receiver next to it gets every alert and
each of its deliveries is recorded as soon as it is answered."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from tests.webhooks.conftest import Db, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver, Reply

ALERTS = 12
PER_ENDPOINT = 2
#: Far longer than the fast receiver needs, even on a loaded machine: if the slow receiver's
#: hanging requests held up the others, the fast receiver would wait this long per batch.
TIMEOUT = 30.0


def states(db: Db, endpoint_id: int) -> list[str]:
    with db.sessions() as session:
        query = select(WebhookDeliveryRow.state).where(WebhookDeliveryRow.endpoint_id == endpoint_id)
        return list(session.scalars(query))


def test_a_hanging_receiver_does_not_delay_a_fast_one(db: Db, receiver: Receiver) -> None:
    slow = Receiver().start()
    slow.script(*[Reply(hang=True)] * ALERTS)
    try:
        slow_endpoint = add_endpoint(db.sessions, slow.url)  # first: its rows are claimed first
        fast_endpoint = add_endpoint(db.sessions, receiver.url)
        for n in range(ALERTS):
            add_alert(db.sessions, n)
        settings = db.with_webhooks(batch_size=4, per_endpoint=PER_ENDPOINT, timeout_seconds=TIMEOUT)
        stop = threading.Event()
        thread = threading.Thread(target=Dispatcher(settings, db.sessions).run_forever, args=(stop,))
        started = time.monotonic()
        thread.start()
        try:
            receiver.wait_for_requests(ALERTS, timeout=TIMEOUT / 2)
            fast_seconds = time.monotonic() - started
            deadline = time.monotonic() + 10
            while states(db, fast_endpoint.id) != ["delivered"] * ALERTS and time.monotonic() < deadline:
                time.sleep(0.05)
            assert states(db, fast_endpoint.id) == ["delivered"] * ALERTS
            assert len(slow.received) == PER_ENDPOINT  # still hanging; no more were sent to it
            assert sorted(states(db, slow_endpoint.id)) == ["pending"] * ALERTS
            slow.release()
            slow.wait_for_requests(ALERTS, timeout=TIMEOUT)
        finally:
            stop.set()
            slow.release()
            thread.join(timeout=TIMEOUT + 5)
        assert not thread.is_alive()
        assert fast_seconds < TIMEOUT / 2
        assert sorted(states(db, slow_endpoint.id)) == ["delivered"] * ALERTS
    finally:
        slow.stop()
