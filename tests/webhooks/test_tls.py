"""HTTPS deliveries: pinned to the checked address, yet TLS still checks the URL's host name.

tls/ holds a test-only CA and a certificate for ``hooks.example`` (valid until 2126).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint, dns
from tests.webhooks.receiver import Receiver

TLS = Path(__file__).parent / "tls"
RESOLVER = dns({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})


@pytest.fixture
def https_receiver() -> Iterator[Receiver]:
    running = Receiver(tls=(TLS / "hooks.example.pem", TLS / "hooks.example.key")).start()
    yield running
    running.stop()


def send(db: Db, clock: FakeClock) -> WebhookDeliveryRow:
    trust = ssl.create_default_context(cafile=str(TLS / "ca.pem"))
    sender = Dispatcher(
        db.settings,
        db.sessions,
        clock=clock,
        resolver=RESOLVER,
        make_transport=lambda: httpx.AsyncHTTPTransport(verify=trust),
    )
    sender.run_once()
    clock.advance(5)
    sender.run_once()  # a second cycle gets a fresh transport
    with db.sessions() as session:
        return session.scalars(select(WebhookDeliveryRow)).one()


def test_https_to_the_pinned_address_verifies_the_original_name(
    db: Db, https_receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, f"https://hooks.example:{https_receiver.port}/hook")
    add_alert(db.sessions, at=clock.now)

    row = send(db, clock)

    assert (row.state, row.last_status) == ("delivered", 200)
    [request] = https_receiver.received
    assert request.headers["host"] == f"hooks.example:{https_receiver.port}"


def test_https_certificate_for_another_name_is_refused(
    db: Db, https_receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, f"https://other.example:{https_receiver.port}/hook")
    add_alert(db.sessions, at=clock.now)

    row = send(db, clock)

    assert (row.state, row.attempts) == ("failed", 2)
    assert row.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in row.last_error
    assert https_receiver.received == []
