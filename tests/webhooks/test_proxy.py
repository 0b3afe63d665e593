"""Deliveries through an egress proxy: a real forward proxy on loopback relays them."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest

from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from tests.ports import free_port
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint
from tests.webhooks.receiver import QuietHandler, Receiver, serving


class Proxy:
    """A minimal HTTP forward proxy: takes absolute-form requests, relays them, records them."""

    def __init__(self) -> None:
        self.port = free_port()
        self.relayed: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    state = Proxy()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.relayed.append(self.path)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")
            }
            request = urllib.request.Request(self.path, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=5) as answer:
                status, content = answer.status, answer.read()
            self.send_response(status)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

    with serving(state.port, Handler):
        yield state


def test_deliveries_go_through_the_configured_proxy(
    db: Db, receiver: Receiver, clock: FakeClock, proxy: Proxy
) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    sender = Dispatcher(db.with_webhooks(proxy_url=proxy.url), db.sessions, clock=clock)
    assert sender.run_once() == 1
    assert len(proxy.relayed) == 1 and proxy.relayed[0].startswith("http://127.0.0.1:")
    assert len(receiver.received) == 1 and receiver.statuses == [200]
