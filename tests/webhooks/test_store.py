"""Endpoint crud, redelivery, and the outbox rows ``store_outcomes`` writes with an alert."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from querywatch.detector.adapters.db import webhooks as store
from querywatch.detector.adapters.db.alerts import AlertNotFound
from querywatch.detector.adapters.db.tables import AlertRow, WebhookDeliveryRow
from querywatch.detector.adapters.delivery import endpoints
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.delivery.signing import InvalidWebhookSecret
from querywatch.detector.adapters.delivery.ssrf import UnsafeWebhookUrl
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.engine.outcomes import (
    Outcome,
    RiskUpdate,
    alert_id_for,
)
from tests.outcomes import first_alert, opening
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver

ALLOW = ("127.0.0.1",)


def opened(client_id: str, ts: float) -> Outcome:
    update = RiskUpdate(client_id, "digits-v1", ts, 200, 0.96, ("coverage",), {"coverage_ratio": 2.5})
    return opening(update, first_alert(update))


def test_private_url_is_refused_at_creation_without_allowlist(db: Db) -> None:
    with db.sessions() as session, pytest.raises(UnsafeWebhookUrl, match="loopback"):
        endpoints.create_endpoint(session=session, url="http://127.0.0.1:9000/hook", allow_hosts=())


def test_bad_severity_and_secret_are_refused(db: Db) -> None:
    with db.sessions() as session:
        with pytest.raises(store.InvalidWebhookEndpoint, match="min_severity"):
            endpoints.create_endpoint(
                session=session, url="http://127.0.0.1/", allow_hosts=ALLOW, min_severity="x"
            )
        with pytest.raises(InvalidWebhookSecret):
            endpoints.create_endpoint(
                session=session, url="http://127.0.0.1/", allow_hosts=ALLOW, secret="hunter2"
            )


def test_alert_saved_by_storage_commits_with_its_delivery(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    with db.sessions() as session, session.begin():
        endpoint = endpoints.create_endpoint(session=session, url=receiver.url, allow_hosts=ALLOW)
    with db.sessions() as session, session.begin():
        store_outcomes(session=session, outcomes=[opened("acct-9", clock.now)])
    with db.sessions() as session, session.begin():  # the same alert again: no second delivery
        store_outcomes(session=session, outcomes=[opened("acct-9", clock.now)])

    assert Dispatcher(db.settings, db.sessions).run_once() == 1

    [request] = receiver.received
    body = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert body["data"]["alert_id"] == alert_id_for("acct-9", "digits-v1", 1, clock.now)


def test_alert_and_delivery_roll_back_together(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    with db.sessions() as session, session.begin():
        endpoints.create_endpoint(session=session, url=receiver.url, allow_hosts=ALLOW)
    with pytest.raises(RuntimeError), db.sessions() as session, session.begin():
        store_outcomes(session=session, outcomes=[opened("acct-9", clock.now)])
        raise RuntimeError("the consumer died before its commit")
    with db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AlertRow)) == 0
        assert session.scalar(select(func.count()).select_from(WebhookDeliveryRow)) == 0


def _endpoint_with_an_alert(db: Db, receiver: Receiver, clock: FakeClock) -> tuple[int, str]:
    """An endpoint (its id and first secret) with one alert due for it."""
    with db.sessions() as session, session.begin():
        endpoint = endpoints.create_endpoint(session=session, url=receiver.url, allow_hosts=ALLOW)
        endpoint_id, secret = endpoint.id, endpoint.secret
    add_alert(db.sessions, at=clock.now)
    return endpoint_id, secret


def test_rotation_signs_later_attempts_with_the_new_secret(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    endpoint_id, old_secret = _endpoint_with_an_alert(db, receiver, clock)
    receiver.script(500)
    sender = Dispatcher(db.settings, db.sessions, clock=clock)
    sender.run_once()
    with db.sessions() as session, session.begin():
        new_secret = endpoints.rotate_secret(session=session, endpoint_id=endpoint_id).secret
    clock.advance(5)
    sender.run_once()

    assert new_secret != old_secret
    first, second = receiver.received
    Webhook(old_secret).verify(first.body, first.headers)
    Webhook(new_secret).verify(second.body, second.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(old_secret).verify(second.body, second.headers)


def test_redeliver_sends_again_with_the_same_id(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    with db.sessions() as session, session.begin():
        endpoints.create_endpoint(session=session, url=receiver.url, allow_hosts=ALLOW)
    alert = add_alert(db.sessions, at=clock.now)
    sender = Dispatcher(db.settings, db.sessions, clock=clock)
    sender.run_once()
    with db.sessions() as session, session.begin():  # an endpoint added after the alert
        endpoints.create_endpoint(session=session, url=receiver.url + "/late", allow_hosts=ALLOW)

    with db.sessions() as session, session.begin():
        now = datetime.fromtimestamp(clock.now, tz=UTC)
        rows = store.redeliver_alert(session=session, alert_id=alert.alert_id, now=now)
        assert [(r.state, r.attempts) for r in rows] == [("pending", 0), ("pending", 0)]
    assert sender.run_once() == 2

    first = receiver.received[0]
    again, late = sorted(receiver.received[1:], key=lambda r: r.path)  # sent together, any order
    assert first.headers["webhook-id"] == again.headers["webhook-id"] != late.headers["webhook-id"]
    assert late.path == "/hook/late"
    with db.sessions() as session:
        assert {d.state for d in store.list_deliveries(session=session, limit=10)} == {"delivered"}
        with pytest.raises(AlertNotFound):
            store.redeliver_alert(session=session, alert_id="al_nope")


def test_delete_removes_endpoint_and_its_deliveries(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    with db.sessions() as session, session.begin():
        endpoint = endpoints.create_endpoint(session=session, url=receiver.url, allow_hosts=ALLOW)
    add_alert(db.sessions, at=clock.now)
    with db.sessions() as session, session.begin():
        store.delete_endpoint(session=session, endpoint_id=endpoint.id)
    with db.sessions() as session:
        assert store.list_endpoints(session=session) == []
        assert store.list_deliveries(session=session, limit=10) == []
        with pytest.raises(store.WebhookEndpointNotFound):
            store.delete_endpoint(session=session, endpoint_id=endpoint.id)
    assert Dispatcher(db.settings, db.sessions, clock=clock).run_once() == 0


def test_deliveries_listed_per_alert_and_per_endpoint(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    with db.sessions() as session, session.begin():
        a = endpoints.create_endpoint(session=session, url=receiver.url + "/a", allow_hosts=ALLOW)
        b = endpoints.create_endpoint(session=session, url=receiver.url + "/b", allow_hosts=ALLOW)
    first = add_alert(db.sessions, 1, at=clock.now)
    add_alert(db.sessions, 2, at=clock.now)
    with db.sessions() as session:
        assert len(store.list_deliveries(session=session, limit=10)) == 4
        per_alert = store.list_deliveries(session=session, limit=10, alert_id=first.alert_id)
        assert {d.endpoint_id for d in per_alert} == {a.id, b.id}
        per_endpoint = store.list_deliveries(session=session, limit=10, endpoint_id=b.id)
        assert {d.alert_id for d in per_endpoint} == {"al_test0001", "al_test0002"}
        page = store.list_deliveries(session=session, limit=3)
        rest = store.list_deliveries(session=session, limit=3, before_id=page[-1].id)
        assert len(page) == 3 and len(rest) == 1


def test_a_rotation_with_an_overlap_signs_with_both_secrets_until_it_ends(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    endpoint_id, old_secret = _endpoint_with_an_alert(db, receiver, clock)
    receiver.script(500, 500)
    sender = Dispatcher(db.settings, db.sessions, clock=clock)
    with db.sessions() as session, session.begin():
        now = datetime.fromtimestamp(clock.now, tz=UTC)
        rotated = endpoints.rotate_secret(
            session=session, endpoint_id=endpoint_id, overlap_seconds=60, now=now
        )
        new_secret = rotated.secret
    sender.run_once()  # within the overlap
    clock.advance(120)
    sender.run_once()  # after it

    during, after = receiver.received
    for secret in (old_secret, new_secret):  # a receiver on either secret accepts it
        Webhook(secret).verify(during.body, during.headers)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(after.body, after.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(old_secret).verify(after.body, after.headers)


def test_an_earlier_demo_receivers_endpoint_goes_when_the_next_one_comes(db: Db) -> None:
    """`up --demo` on a kept database registered its receiver's new port beside the last
    run's, which stayed enabled and failed every delivery against a closed port."""
    add_endpoint(db.sessions, "http://127.0.0.1:40001/querywatch")
    add_endpoint(db.sessions, "http://127.0.0.1:40002/other")
    add_endpoint(db.sessions, "https://hooks.example.com/querywatch")
    with db.sessions() as session, session.begin():
        gone = store.delete_endpoints_on_other_ports(session=session, url="http://127.0.0.1:40003/querywatch")
        left = [e.url for e in store.list_endpoints(session=session)]
    assert [(g["host"], g["undelivered"]) for _, g in gone] == [("127.0.0.1", 0)]
    assert left == ["http://127.0.0.1:40002/other", "https://hooks.example.com/querywatch"]
