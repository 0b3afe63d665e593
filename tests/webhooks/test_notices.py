"""Slack messages and notices reach real local receivers: an alert event with very long
reasons, a silence's announcement and a monitor-mode model's daily digest are posted to a
stand-in for Slack that refuses what Slack refuses, and to a Standard Webhooks receiver;
PagerDuty hears of neither notice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import select, update

from querywatch.detector.adapters.api.webhook_docs import (
    DigestAlertV1,
    MonitorDigestBody,
    MonitorDigestV1,
    SilenceCreatedBody,
    SilenceCreatedV1,
)
from querywatch.detector.adapters.db import policies, tables
from querywatch.detector.adapters.db.notices import add_notice, announce_silence
from querywatch.detector.adapters.db.tables import AlertEventRow, AlertRow, NoticeRow, WebhookDeliveryRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.engine import outcomes
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver
from tests.webhooks.slack import Slack, running_slack, violations

MODEL = "digits-v1"
PAGERDUTY_KEY = "R0UTINGKEY0123456789abcdef012345"


@pytest.fixture
def slack() -> Iterator[Slack]:
    with running_slack() as service:
        yield service


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in receiver.received]


def documented(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def delivery_states(db: Db) -> dict[tuple[int, str], str]:
    """(endpoint id, what was sent) -> state."""
    with db.sessions() as session:
        rows = session.scalars(select(WebhookDeliveryRow)).all()
        return {(r.endpoint_id, "notice" if r.notice_id else "alert"): r.state for r in rows}


def test_the_stand_in_refuses_what_slack_refuses() -> None:
    good = {"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x"}}]}
    assert violations(good) == []
    assert violations(
        {"text": "t", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]}
    )
    assert violations({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]})
    assert violations({"text": "t", "blocks": [good["blocks"][0]] * 51})
    assert violations({}) == ["no_text"]


def test_an_alert_with_very_long_reasons_is_posted_within_slacks_limits(
    db: Db, slack: Slack, clock: FakeClock
) -> None:
    add_endpoint(db.sessions, slack.url, kind="slack")
    alert = add_alert(db.sessions, 1, severity="critical")
    with db.sessions() as session, session.begin():  # what the event carries is what is sent
        event = session.scalars(select(AlertEventRow).where(AlertEventRow.alert_id == alert.alert_id)).one()
        long = {
            "reasons": [f"reason {i}: " + "x" * 900 for i in range(20)],
            "subject_id": "acct-" + "k" * 240,
        }
        event.body = {**event.body, **long}
    clock.catch_up()
    assert Dispatcher(db.settings, db.sessions, clock=clock).run_once() == 1
    assert slack.refused == []
    [message] = slack.messages
    assert message["blocks"][0]["text"]["text"].startswith("CRITICAL model extraction opened")
    assert message["blocks"][1]["text"]["text"].endswith("…")  # the reasons were cut to fit
    assert set(delivery_states(db).values()) == {"delivered"}


def test_a_silence_is_announced_to_webhooks_and_slack_but_not_pagerduty(
    db: Db, slack: Slack, receiver: Receiver, clock: FakeClock
) -> None:
    standard = add_endpoint(db.sessions, receiver.url)
    chat = add_endpoint(db.sessions, slack.url, kind="slack")
    pager = add_endpoint(db.sessions, receiver.url, kind="pagerduty", routing_key=PAGERDUTY_KEY)
    other_model = add_endpoint(db.sessions, receiver.url, model_id="credit-v1")
    alerts_only = add_endpoint(db.sessions, receiver.url, event_types=["alert.opened"])
    with db.sessions() as session, session.begin():
        silence = policies.add_silence(
            session=session,
            actor="ana (key #1)",
            comment="QA load test until Friday",
            expires_at=datetime.now(UTC) + timedelta(days=2),
            client_id="acct-qa",
            model_id=MODEL,
        )
        assert announce_silence(session=session, silence=silence) is not None
        assert announce_silence(session=session, silence=silence) is None  # once per silence
    clock.catch_up()
    assert Dispatcher(db.settings, db.sessions, clock=clock).run_once() == 2
    assert delivery_states(db) == {(standard.id, "notice"): "delivered", (chat.id, "notice"): "delivered"}
    assert {pager.id, other_model.id, alerts_only.id}.isdisjoint(e for e, _ in delivery_states(db))

    [sent] = bodies(receiver)
    assert sent["type"] == "silence.created" and receiver.received[0].headers["webhook-id"].startswith("msg_")
    assert documented(SilenceCreatedV1) == set(sent["data"])  # the OpenAPI document's webhooks section
    SilenceCreatedBody.model_validate(sent)
    assert sent["data"]["silence"]["matchers"] == {"client_id": "acct-qa", "model_id": MODEL}
    assert sent["data"]["silence"]["created_by"] == "ana (key #1)"
    [message] = slack.messages
    assert (
        "Silence #" in message["text"] and "QA load test until Friday" in message["blocks"][1]["text"]["text"]
    )


def test_a_monitor_mode_model_sends_one_digest_a_day_of_what_would_have_paged(
    db: Db, slack: Slack, receiver: Receiver, clock: FakeClock
) -> None:
    early = add_alert(db.sessions, 1)  # before monitor mode: paged as usual, not in the digest
    with db.sessions() as session, session.begin():
        policies.set_policy(session=session, model_id=MODEL, changes={"mode": "monitor"}, actor="ana")
    quiet = [add_alert(db.sessions, n) for n in (2, 3)]
    now = datetime.now(UTC)
    with db.sessions() as session, session.begin():
        session.execute(
            update(AlertRow)
            .where(AlertRow.alert_id == early.alert_id)
            .values(detected_at=now - timedelta(hours=1))
        )
        for minutes, alert in enumerate(quiet, start=1):
            session.execute(
                update(AlertRow)
                .where(AlertRow.alert_id == alert.alert_id)
                .values(detected_at=now + timedelta(minutes=minutes), peak_risk=0.9 + minutes / 100)
            )
    standard = add_endpoint(db.sessions, receiver.url)
    add_endpoint(db.sessions, slack.url, kind="slack")
    add_endpoint(db.sessions, receiver.url, kind="pagerduty", routing_key=PAGERDUTY_KEY)
    sender = Dispatcher(db.settings, db.sessions, clock=clock)
    assert sender.run_once() == 0  # today is not over: no digest yet

    clock.advance(86_400)
    assert sender.run_once() == 2  # yesterday's digest, to the webhook and to Slack
    [digest] = bodies(receiver)
    data = digest["data"]
    assert documented(MonitorDigestV1) == set(data) and documented(DigestAlertV1) == set(data["alerts"][0])
    MonitorDigestBody.model_validate(digest)
    assert digest["type"] == "monitor.digest" and data["model_id"] == MODEL
    assert data["links"]["alerts"].endswith(f"/v1/alerts?model={MODEL}")  # model_id= was refused: 422
    assert data["day"] == now.date().isoformat() and data["alerts_count"] == 2
    assert [a["alert_id"] for a in data["alerts"]] == [quiet[1].alert_id, quiet[0].alert_id]  # riskiest first
    [message] = slack.messages
    assert (
        message["text"]
        == f"Monitor mode digest for {MODEL} on {now.date().isoformat()}: 2 alerts would have paged"
    )
    assert slack.refused == []

    clock.advance(120)
    assert sender.run_once() == 0  # one digest a day, however often the dispatcher looks
    assert Dispatcher(db.settings, db.sessions, clock=clock).run_once() == 0  # nor another dispatcher
    clock.advance(86_400)
    assert sender.run_once() == 2  # the next day's, with nothing in it
    assert bodies(receiver)[-1]["data"]["alerts_count"] == 0
    with db.sessions() as session:
        assert len(session.scalars(select(NoticeRow)).all()) == 2
    assert standard.id in {e for e, _ in delivery_states(db)}


def test_the_storage_schema_knows_every_notice_type() -> None:
    assert tables.NOTICE_TYPES == outcomes.NOTICE_TYPES


def test_a_notice_whose_transaction_rolls_back_is_not_stored(db: Db, receiver: Receiver) -> None:
    """A notice is made in its caller's transaction, often its first write (a digest): rolled
    back, neither it nor its deliveries stay (on SQLite a savepoint around its insert, as the
    transaction's first write, had committed it alone)."""
    add_endpoint(db.sessions, receiver.url)
    with db.sessions() as session:
        session.begin()
        made = add_notice(
            session=session, key="digest:m:1", type=outcomes.MONITOR_DIGEST, body={}, model_id=MODEL
        )
        assert made is not None
        session.rollback()
    with db.sessions() as session:
        assert session.scalars(select(NoticeRow)).all() == []
        assert session.scalars(select(WebhookDeliveryRow)).all() == []
