"""The SSRF guard, alone and inside the dispatcher (checked again at send time)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.delivery.ssrf import UnsafeWebhookUrl, parse_webhook_url, pin_webhook_url
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint, dns
from tests.webhooks.receiver import Receiver


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.7", "172.16.3.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "224.0.0.1",
     # IPv6 forms that embed an internal IPv4 address: NAT64, local NAT64, 6to4, IPv4-compatible
     "64:ff9b::a00:1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808",
     "2002:a00:1::1", "2002:7f00:1::", "2002:a9fe:a9fe::1", "::a00:1", "::7f00:1", "::808:808"],
)  # fmt: skip
def test_private_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="loopback, private or link-local"):
        pin_webhook_url("https://hooks.example/x", allow_hosts=(), resolver=dns({"hooks.example": [address]}))


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700::1111"])
def test_ipv6_forms_of_public_addresses_pass(address: str) -> None:
    resolver = dns({"hooks.example": [address]})
    assert pin_webhook_url("https://hooks.example/x", allow_hosts=(), resolver=resolver).pinned_url


def test_one_private_answer_among_public_ones_is_refused() -> None:
    resolver = dns({"hooks.example": ["93.184.215.14", "10.1.1.1"]})
    with pytest.raises(UnsafeWebhookUrl, match=r"10\.1\.1\.1"):
        pin_webhook_url("https://hooks.example/x", allow_hosts=(), resolver=resolver)


def test_public_address_is_pinned_with_the_original_host() -> None:
    target = pin_webhook_url(
        "https://hooks.example/qw?x=1", allow_hosts=(), resolver=dns({"hooks.example": ["93.184.215.14"]})
    )
    assert target.pinned_url == "https://93.184.215.14:443/qw?x=1"
    assert (target.host_header, target.host) == ("hooks.example", "hooks.example")


@pytest.mark.parametrize("allow", [("127.0.0.1",), ("127.0.0.0/8",), ("localhost",), ("LOCALHOST",)])
def test_allowlist_by_address_network_or_name(allow: tuple[str, ...]) -> None:
    target = pin_webhook_url(
        "http://localhost:8080/", allow_hosts=allow, resolver=dns({"localhost": ["127.0.0.1"]})
    )
    assert target.address == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example/", "http:// or https://"),
        ("https:///nohost", "no host"),
        ("https://user:pw@hooks.example/", "credentials"),
        ("https://hooks.example/#frag", "fragment"),
        ("https://hooks.example:99999/", "malformed"),
        ("https://" + "a" * 2050, "longer than 2048"),
        ("https://hooks.example/\x00", "control characters"),
        ("https://hooks.example/ x", "spaces"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match=message):
        parse_webhook_url(url)


@given(st.text(max_size=300))
def test_any_text_is_either_a_url_or_a_clear_refusal(text: str) -> None:
    try:
        parse_webhook_url(text)
    except UnsafeWebhookUrl as exc:
        assert str(exc)


def test_loopback_refused_at_send_time_without_allowlist(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    sender = Dispatcher(db.with_webhooks(allow_hosts=()), db.sessions, clock=clock)

    assert sender.run_once() == 1

    assert receiver.received == []
    with db.sessions() as session:
        row = session.scalars(select(WebhookDeliveryRow)).one()
    assert row.state == "failed"
    assert row.last_error is not None and row.last_error.startswith("refused: ")


def test_dns_rebinding_to_a_private_address_is_refused_at_send_time(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    """The name looked public when the endpoint was created; now it resolves to loopback."""
    add_endpoint(db.sessions, f"http://hooks.example:{receiver.port}/hook")
    add_alert(db.sessions, at=clock.now)
    resolver = dns({"hooks.example": ["127.0.0.1"]})
    sender = Dispatcher(db.with_webhooks(allow_hosts=()), db.sessions, clock=clock, resolver=resolver)

    sender.run_once()

    assert receiver.received == []


def test_request_goes_to_the_checked_address_with_the_original_host(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, f"http://hooks.example:{receiver.port}/hook")
    add_alert(db.sessions, at=clock.now)
    resolver = dns({"hooks.example": ["127.0.0.1"]})
    Dispatcher(db.settings, db.sessions, clock=clock, resolver=resolver).run_once()

    [request] = receiver.received
    assert request.headers["host"] == f"hooks.example:{receiver.port}"


def test_a_hanging_name_lookup_counts_against_the_timeout(
    db: Db, receiver: Receiver, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, f"http://slow-dns.example:{receiver.port}/hook")
    add_alert(db.sessions, at=clock.now)
    answer = threading.Event()

    def stuck(host: str, port: int) -> Sequence[str]:
        answer.wait(30)
        return ["127.0.0.1"]

    sender = Dispatcher(db.with_webhooks(timeout_seconds=0.2), db.sessions, clock=clock, resolver=stuck)
    try:
        sender.run_once()
    finally:
        answer.set()
    with db.sessions() as session:
        row = session.scalars(select(WebhookDeliveryRow)).one()
    assert (row.state, row.last_error) == ("failed", "timed out after 0.2s")
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    ["http://0x7f000001/", "http://2130706433/", "http://017700000001/", "http://127.1/", "http://localhost/",
     "http://[::ffff:7f00:1]/", "http://[0:0:0:0:0:0:0:1]/", "http://[::]/"],
)  # fmt: skip
def test_disguised_loopback_is_refused_by_the_system_resolver(url: str) -> None:
    """Hex, decimal, octal and shortened forms all resolve to what they really are."""
    with pytest.raises(UnsafeWebhookUrl, match="loopback, private or link-local"):
        pin_webhook_url(url, allow_hosts=())
