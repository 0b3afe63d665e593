"""The dispatcher against a real HTTP receiver on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from querywatch.detector.adapters.db.outbox import ClaimedDelivery
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import WebhookDeliveryRow, WebhookEndpointRow
from querywatch.detector.adapters.db.webhooks import set_enabled
from querywatch.detector.adapters.delivery.dispatcher import AttemptResult, Dispatcher
from querywatch.detector.config import DatabaseSettings
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver, Reply


def deliveries(db: Db) -> list[WebhookDeliveryRow]:
    with db.sessions() as session:
        return list(session.scalars(select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id)))


def dispatcher(db: Db, clock: FakeClock, **changes: object) -> Dispatcher:
    settings = db.with_webhooks(**changes) if changes else db.settings
    return Dispatcher(settings, db.sessions, clock=clock)


def test_delivered_once_signed_and_verifiable(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    endpoint = add_endpoint(db.sessions, receiver.url)
    alert = add_alert(db.sessions, at=clock.now)
    sender = dispatcher(db, clock)

    assert sender.run_once() == 1
    assert sender.run_once() == 0

    assert len(receiver.received) == 1
    request = receiver.received[0]
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["type"] == "alert.opened"
    data = body["data"]
    assert data["alert_id"] == alert.alert_id
    assert (data["schema_version"], data["sequence"], data["kind"]) == (1, 1, "client")
    assert data["client_id"] == data["subject_id"] == "acct-1"
    assert data["links"]["client"] == "http://qw.test:8000/v1/clients/acct-1"
    assert (data["technique"], data["technique_name"]) == ("AML.T0024.002", "Extract AI Model")
    assert data["reasons"] == ["coverage grows like a grid sweep"]
    assert request.headers["webhook-timestamp"] == str(int(clock.now))
    [row] = deliveries(db)
    assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 200)
    assert row.delivered_at == datetime.fromtimestamp(clock.now, tz=UTC)
    assert request.headers["webhook-id"] == row.webhook_id


def test_wrong_secret_does_not_verify(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    dispatcher(db, clock).run_once()
    other = add_endpoint(db.sessions, "http://127.0.0.1:9/other")
    with pytest.raises(Exception, match="signature"):
        Webhook(other.secret).verify(receiver.received[0].body, receiver.received[0].headers)


def test_failures_then_success_keep_one_webhook_id(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(500, 503)
    sender = dispatcher(db, clock)

    assert sender.run_once() == 1
    [row] = deliveries(db)
    assert (row.state, row.attempts, row.last_status) == ("failed", 1, 500)
    assert row.last_error is not None and row.last_error.startswith("HTTP 500")
    assert row.next_attempt_at == datetime.fromtimestamp(clock.now + 5, tz=UTC)

    clock.advance(4.9)
    assert sender.run_once() == 0  # not due yet
    clock.advance(0.1)
    assert sender.run_once() == 1
    clock.advance(60)
    assert sender.run_once() == 1
    clock.advance(3600)
    assert sender.run_once() == 0

    assert receiver.statuses == [500, 503, 200]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1  # same bytes on every attempt
    [row] = deliveries(db)
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 3, 200, None)


def test_receiver_down_then_up_gets_each_alert_exactly_once(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, receiver.url)
    for n in range(3):
        add_alert(db.sessions, n, at=clock.now)
    receiver.stop()
    sender = dispatcher(db, clock)

    assert sender.run_once() == 3
    clock.advance(5)
    assert sender.run_once() == 3
    assert {(d.state, d.attempts) for d in deliveries(db)} == {("failed", 2)}
    assert all(d.last_status is None and "Connect" in (d.last_error or "") for d in deliveries(db))

    receiver.start()
    clock.advance(60)
    assert sender.run_once() == 3
    clock.advance(10_000)
    assert sender.run_once() == 0

    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(ids) == sorted(d.webhook_id for d in deliveries(db))  # each exactly once
    assert {(d.state, d.attempts) for d in deliveries(db)} == {("delivered", 3)}


def test_retry_after_is_honoured(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(Reply(429, {"Retry-After": "120"}))
    sender = dispatcher(db, clock)

    sender.run_once()
    [row] = deliveries(db)
    assert (row.state, row.last_status) == ("failed", 429)
    assert row.next_attempt_at == datetime.fromtimestamp(clock.now + 120, tz=UTC)
    clock.advance(60)  # the schedule alone would have retried after 5 s
    assert sender.run_once() == 0
    clock.advance(60)
    assert sender.run_once() == 1
    assert receiver.statuses == [429, 200]


def test_gone_pauses_the_endpoint_and_its_deliveries_wait_for_the_resume(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    """The README's promise: deliveries wait until the endpoint is resumed. The delivery that
    got the 410 used to be dead and later alerts never queued, so a resume sent nothing."""
    endpoint = add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, 1, at=clock.now)
    receiver.script(410)
    sender = dispatcher(db, clock)

    sender.run_once()
    add_alert(db.sessions, 2, at=clock.now)
    clock.advance(10_000)
    assert sender.run_once() == 0

    assert [(r.state, r.last_status) for r in deliveries(db)] == [("failed", 410), ("pending", None)]
    with db.sessions() as session:
        stored = session.get_one(WebhookEndpointRow, endpoint.id)
        assert not stored.enabled
        assert stored.disabled_reason is not None and "410" in stored.disabled_reason
    assert receiver.statuses == [410]

    with transaction(db.sessions) as session:
        set_enabled(session=session, endpoint_id=endpoint.id, enabled=True)
    assert sender.run_once() == 2
    assert [r.state for r in deliveries(db)] == ["delivered", "delivered"]
    got = sorted(json.loads(r.body)["data"]["alert_id"] for r in receiver.received[1:])
    assert got == ["al_test0001", "al_test0002"]


def test_alerts_raised_while_an_endpoint_is_paused_go_out_when_it_is_resumed(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    """Queued only for enabled endpoints, they were lost without a word."""
    endpoint = add_endpoint(db.sessions, receiver.url, enabled=False)
    add_alert(db.sessions, 1, at=clock.now)
    sender = dispatcher(db, clock)
    assert sender.run_once() == 0
    assert receiver.statuses == []
    with transaction(db.sessions) as session:
        set_enabled(session=session, endpoint_id=endpoint.id, enabled=True)
    assert sender.run_once() == 1
    assert [json.loads(r.body)["data"]["alert_id"] for r in receiver.received] == ["al_test0001"]


def test_dead_after_the_last_attempt(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(*[500] * 10)
    sender = dispatcher(db, clock, retry_schedule=(1.0, 2.0))

    for _ in range(5):
        sender.run_once()
        clock.advance(10)

    assert receiver.statuses == [500, 500, 500]
    [row] = deliveries(db)
    assert (row.state, row.attempts, row.next_attempt_at) == ("dead", 3, None)


def test_hanging_receiver_times_out_and_is_retried(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(Reply(hang=True))
    sender = dispatcher(db, clock, timeout_seconds=0.3)

    assert sender.run_once() == 1
    [row] = deliveries(db)
    assert (row.state, row.last_status) == ("failed", None)
    assert row.last_error == "timed out after 0.3s"
    receiver.release()
    clock.advance(5)
    assert sender.run_once() == 1
    assert deliveries(db)[0].state == "delivered"
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1


def test_filters_pick_the_endpoints(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url + "/all")
    add_endpoint(db.sessions, receiver.url + "/critical", min_severity="critical")
    add_endpoint(db.sessions, receiver.url + "/other-model", model_id="other-v2")
    add_endpoint(db.sessions, receiver.url + "/off", enabled=False)
    add_alert(db.sessions, 1, severity="high", at=clock.now)
    add_alert(db.sessions, 2, severity="critical", model_id="other-v2", at=clock.now)

    dispatcher(db, clock).run_once()

    got = sorted((json.loads(r.body)["data"]["alert_id"], r.path) for r in receiver.received)
    assert got == [
        ("al_test0001", "/hook/all"),
        ("al_test0002", "/hook/all"),
        ("al_test0002", "/hook/critical"),
        ("al_test0002", "/hook/other-model"),
    ]


class _Crash(Exception):
    pass


class CrashesBeforeRecording(Dispatcher):
    """Dies after the receiver's 2xx and before the commit that records it."""

    def _settle_all(self, attempts: list[tuple[ClaimedDelivery, AttemptResult]]) -> None:
        raise _Crash


def test_crash_between_2xx_and_commit_resends_with_the_same_id(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    with pytest.raises(_Crash):
        CrashesBeforeRecording(db.settings, db.sessions, clock=clock).run_once()
    sender = dispatcher(db, clock)
    assert sender.run_once() == 0  # leased by the dead dispatcher

    lease = db.settings.webhooks.timeout_seconds + db.settings.webhooks.lease_margin_seconds
    clock.advance(lease)
    assert sender.run_once() == 1

    first, second = receiver.received
    assert receiver.statuses == [200, 200]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the receiver drops the repeat
    [row] = deliveries(db)
    assert (row.state, row.attempts) == ("delivered", 2)


def test_a_database_away_is_said_when_it_goes_each_minute_and_when_it_is_back(
    db: Db, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """It was a traceback a second for as long as the database was away."""
    sender = dispatcher(db, clock)
    working = sender.sessions
    sender.sessions = make_sessionmaker(
        make_engine(DatabaseSettings(url="postgresql+psycopg://qw@127.0.0.1:1/qw"))
    )
    with caplog.at_level(logging.INFO, logger="querywatch.detector.adapters"):
        for _ in range(3):
            asyncio.run(sender._guarded(sender._claim, 10, {}))
            clock.advance(35)
        sender.sessions = working
        asyncio.run(sender._guarded(sender._claim, 10, {}))
    said = [(r.levelno, r.getMessage().split(":")[0], r.exc_info is None) for r in caplog.records]
    assert said == [
        (
            logging.ERROR,
            "database unavailable, deliveries wait, retrying with backoff (nothing is lost)",
            True,
        ),
        (logging.ERROR, "database still unavailable after 70 s (3 attempts), deliveries wait", True),
        (logging.WARNING, "database is back after 105 s", True),
    ]
