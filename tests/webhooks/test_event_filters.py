"""An endpoint's event-type filter: one that asked for openings and closings gets those and
no update; one that asked only for closings gets nothing (a close goes only where an earlier
event of the alert went); one without a filter gets all three."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from querywatch.detector.adapters.delivery import endpoints
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.engine.outcomes import (
    ALERT_CLOSED,
    ALERT_OPENED,
    ALERT_UPDATED,
    AlertEvent,
    Outcome,
    RiskUpdate,
)
from tests.outcomes import first_alert
from tests.webhooks.conftest import Db, FakeClock
from tests.webhooks.receiver import Receiver


def test_each_endpoint_gets_the_event_types_it_asked_for(db: Db, clock: FakeClock) -> None:
    receivers = {name: Receiver().start() for name in ("all", "open_close", "close_only")}
    try:
        wanted = {"all": None, "open_close": [ALERT_OPENED, ALERT_CLOSED], "close_only": [ALERT_CLOSED]}
        with db.sessions() as session, session.begin():
            for name, types in wanted.items():
                endpoints.create_endpoint(
                    session=session, url=receivers[name].url, allow_hosts=("127.0.0.1",), event_types=types
                )
        t = clock.now
        alert = first_alert(RiskUpdate("acct-7", "digits-v1", t, 200, 0.85, ("r",)))
        events = [
            AlertEvent(ALERT_OPENED, 1, t, alert),
            AlertEvent(ALERT_UPDATED, 2, t + 60, replace(alert, risk=0.97, severity="high")),
            AlertEvent(ALERT_CLOSED, 3, t + 600, replace(alert, risk=0.1, closed_ts=t + 600)),
        ]
        with db.sessions() as session, session.begin():
            store_outcomes(
                session=session,
                outcomes=[
                    Outcome(RiskUpdate("acct-7", "digits-v1", e.ts, 200 + i, e.alert.risk), e)
                    for i, e in enumerate(events)
                ],
            )
        clock.advance(time.time() - clock.now + 1)  # due from the real time they were stored
        sender = Dispatcher(db.settings, db.sessions, clock=clock)
        while sender.run_once():
            pass
        got = {name: [json.loads(r.body)["type"] for r in rec.received] for name, rec in receivers.items()}
        assert sorted(got["all"]) == sorted([ALERT_OPENED, ALERT_UPDATED, ALERT_CLOSED])
        assert sorted(got["open_close"]) == sorted([ALERT_OPENED, ALERT_CLOSED])
        assert got["close_only"] == []
    finally:
        for rec in receivers.values():
            rec.stop()
