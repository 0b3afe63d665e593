"""PagerDuty Events API v2 delivery against a local receiver that follows the contract:
202 with the dedup_key for a valid event, 400 for an invalid one, 429 when rate limited."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery import endpoints
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.engine.outcomes import (
    ALERT_CLOSED,
    AlertEvent,
    Outcome,
    RiskUpdate,
)
from tests.outcomes import first_alert, opening
from tests.ports import free_port
from tests.webhooks.conftest import Db, FakeClock
from tests.webhooks.receiver import QuietHandler, serving

KEY = "R0UTINGKEY0123456789abcdef012345"  # 32 characters, as PagerDuty's integration keys


class PagerDuty:
    """Enough of the Events API v2 to check querywatch against it: validates each event,
    keeps each incident's state, and can answer 429 to the next requests."""

    def __init__(self) -> None:
        self.port = free_port()
        self.events: list[dict[str, Any]] = []
        self.incidents: dict[str, str] = {}
        self.violations: list[str] = []
        self.rate_limited = 0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/enqueue"

    def answer(self, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if self.rate_limited:
                self.rate_limited -= 1
                return 429, {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly.",
                }
            try:
                event = json.loads(body)
                action, key = event["event_action"], event["dedup_key"]
                assert len(event["routing_key"]) == 32 and action in ("trigger", "resolve")
                if action == "trigger":
                    payload = event["payload"]
                    assert payload["summary"] and payload["source"] and len(payload["summary"]) <= 1024
                    assert payload["severity"] in ("critical", "error", "warning", "info")
            except (ValueError, KeyError, AssertionError, TypeError):
                return 400, {
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": ["bad"],
                }
            self.events.append(event)
            if action == "trigger" and self.incidents.get(key) == "resolved":
                self.violations.append(f"trigger after resolve of {key}")
            self.incidents[key] = "triggered" if action == "trigger" else "resolved"
            return 202, {"status": "success", "message": "Event processed", "dedup_key": key}

    @property
    def actions(self) -> list[str]:
        return [e["event_action"] for e in self.events]


@pytest.fixture
def pagerduty() -> Iterator[PagerDuty]:
    service = PagerDuty()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            status, answer = service.answer(self.rfile.read(int(self.headers.get("content-length", 0))))
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(service.port, Handler):
        yield service


def _update(ts: float) -> RiskUpdate:
    """The update that opens acct-7's high alert."""
    return RiskUpdate("acct-7", "digits-v1", ts, 200, 0.97, ("coverage",))


def _states(db: Db) -> list[tuple[str, int | None]]:
    with db.sessions() as session:
        rows = session.scalars(select(WebhookDeliveryRow).order_by(WebhookDeliveryRow.id))
        return [(r.state, r.last_status) for r in rows]


def test_a_trigger_then_a_resolve_with_the_dedup_key_through_a_rate_limit(
    db: Db, pagerduty: PagerDuty, clock: FakeClock
) -> None:
    with db.sessions() as session, session.begin():
        endpoints.create_endpoint(
            session=session, url=pagerduty.url, allow_hosts=("127.0.0.1",), kind="pagerduty", routing_key=KEY
        )
    update = _update(clock.now)
    alert = first_alert(update)
    opened = opening(update, alert)
    closed_at = clock.now + 60
    closing = AlertEvent(ALERT_CLOSED, 2, closed_at, replace(alert, risk=0.1, closed_ts=closed_at))
    with db.sessions() as session, session.begin():
        store_outcomes(
            session=session,
            outcomes=[opened, Outcome(RiskUpdate("acct-7", "digits-v1", closed_at, 900, 0.1), closing)],
        )
    pagerduty.rate_limited = 1
    # The outbox rows are due from the (real) time they were stored, which may be seconds
    # after the clock started on a loaded machine.
    clock.advance(time.time() - clock.now + 1)
    sender = Dispatcher(db.settings, db.sessions, clock=clock)

    assert sender.run_once() == 1  # the trigger, throttled; the resolve waits behind it
    assert pagerduty.actions == [] and _states(db) == [("failed", 429), ("pending", None)]
    clock.advance(3600)
    assert sender.run_once() == 1  # the trigger goes through
    assert sender.run_once() == 1  # then the resolve
    assert pagerduty.actions == ["trigger", "resolve"]
    assert {e["dedup_key"] for e in pagerduty.events} == {alert.alert_id}
    assert pagerduty.incidents == {alert.alert_id: "resolved"} and pagerduty.violations == []
    assert _states(db) == [("delivered", 202), ("delivered", 202)]


def test_an_event_pagerduty_refuses_is_not_retried(db: Db, pagerduty: PagerDuty, clock: FakeClock) -> None:
    with db.sessions() as session, session.begin():
        endpoints.create_endpoint(
            session=session,
            url=pagerduty.url,
            allow_hosts=("127.0.0.1",),
            kind="pagerduty",
            routing_key="short",
        )
    update = _update(clock.now)
    with db.sessions() as session, session.begin():
        store_outcomes(session=session, outcomes=[opening(update, first_alert(update))])
    clock.advance(time.time() - clock.now + 1)  # due from the real time of storing
    assert Dispatcher(db.settings, db.sessions, clock=clock).run_once() == 1
    assert _states(db) == [("dead", 400)] and pagerduty.events == []
