"""Claims and leases of the outbox, without HTTP: who owns a delivery, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from querywatch.detector.adapters.db.outbox import ClaimedDelivery, claim_due_deliveries, settle_delivery
from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.metrics import REGISTRY
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver, Reply

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=10)


def claim(db: Db, now: datetime) -> list[ClaimedDelivery]:
    with db.sessions() as session, session.begin():
        return claim_due_deliveries(
            session=session,
            now=now,
            lease_until=now + LEASE,
            limit=10,
            max_attempts=3,
        )


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(db: Db) -> None:
    add_endpoint(db.sessions, "http://127.0.0.1:9/hook")
    add_alert(db.sessions, at=T0.timestamp())

    [first] = claim(db, T0)
    assert claim(db, T0 + LEASE - timedelta(seconds=1)) == []
    [second] = claim(db, T0 + LEASE)  # the first owner is presumed dead

    assert (first.attempts, second.attempts) == (1, 2)
    assert first.webhook_id == second.webhook_id and first.event == second.event
    with db.sessions() as session, session.begin():
        late = settle_delivery(
            session=session, claim=first, state="delivered", status=200, error=None, next_attempt_at=None
        )
        current = settle_delivery(
            session=session, claim=second, state="delivered", status=200, error=None, next_attempt_at=None
        )
    assert (late, current) == (False, True)


def test_claims_skip_deliveries_of_disabled_endpoints(db: Db) -> None:
    add_endpoint(db.sessions, "http://127.0.0.1:9/on")
    off = add_endpoint(db.sessions, "http://127.0.0.1:9/off")
    add_alert(db.sessions, at=T0.timestamp())
    with db.sessions() as session, session.begin():
        session.get_one(type(off), off.id).enabled = False

    [only] = claim(db, T0)
    assert only.url.endswith("/on")
    with db.sessions() as session:
        assert len(session.scalars(select(WebhookDeliveryRow)).all()) == 2


def test_outcomes_are_counted(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("querywatch_webhook_deliveries_total", {"outcome": outcome}) or 0.0

    before = {o: count(o) for o in ("delivered", "retry", "refused")}
    add_endpoint(db.sessions, receiver.url)
    add_endpoint(db.sessions, "http://10.255.0.1/hook")  # private, not allowed
    add_alert(db.sessions, at=clock.now)
    receiver.script(500)
    sender = Dispatcher(db.settings, db.sessions, clock=clock)
    sender.run_once()
    clock.advance(5)
    sender.run_once()

    assert count("retry") - before["retry"] == 1
    assert count("refused") - before["refused"] == 2
    assert count("delivered") - before["delivered"] == 1


def test_a_delivery_whose_dispatchers_keep_dying_ends_dead(db: Db) -> None:
    add_endpoint(db.sessions, "http://127.0.0.1:9/hook")
    add_alert(db.sessions, at=T0.timestamp())

    claims = [claim(db, T0 + n * LEASE) for n in range(4)]  # nobody ever records a result

    assert [len(c) for c in claims] == [1, 1, 1, 0]
    with db.sessions() as session:
        row = session.scalars(select(WebhookDeliveryRow)).one()
    assert (row.state, row.attempts, row.next_attempt_at) == ("dead", 3, None)
    assert row.last_error is not None and row.last_error.startswith("gave up")


def test_a_receiver_answer_with_nul_bytes_is_recorded(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(Reply(500, body=b"bad\x00news\x1b[31m"))

    Dispatcher(db.settings, db.sessions, clock=clock).run_once()

    with db.sessions() as session:
        row = session.scalars(select(WebhookDeliveryRow)).one()
    assert (row.state, row.last_error) == ("failed", "HTTP 500: bad news [31m")
