from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.db.tables import (
    AlertEventRow,
    AlertRow,
    ClientRow,
    RiskPointRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
)
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.engine.outcomes import (
    ALERT_CLOSED,
    ALERT_UPDATED,
    AlertEvent,
    Outcome,
    RiskUpdate,
)
from querywatch.detector.metrics import REGISTRY
from tests.outcomes import first_alert, opening


def update(client: str, queries: int, risk: float, ts: float | None = None) -> RiskUpdate:
    return RiskUpdate(
        client_id=client,
        model_id="digits-v1",
        ts=1_800_000_000.0 + queries if ts is None else ts,
        queries=queries,
        risk=risk,
        reasons=("coverage",),
        features={"coverage": risk},
    )


def count(session: Session, column: object) -> int:
    return int(session.scalar(select(func.count()).select_from(column)))  # type: ignore[arg-type]


def test_client_row_keeps_latest_update_and_first_seen(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", q, 0.1)) for q in range(1, 4)])
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", 4, 0.3)), Outcome(update("b", 1, 0.0))])
    with sessions() as session:
        a = session.get(ClientRow, ("a", "digits-v1"))
        assert a is not None
        assert (a.queries, a.risk, a.reasons, a.status) == (4, 0.3, ["coverage"], "normal")
        assert a.first_seen.timestamp() == 1_800_000_001.0
        assert a.last_seen.timestamp() == 1_800_000_004.0
        assert count(session, ClientRow) == 2


def test_history_is_downsampled(sessions: sessionmaker[Session]) -> None:
    # Risk creeping by 0.001 per query: a point at the start, then one per 0.05 of movement.
    outcomes = [Outcome(update("a", q, q / 1000)) for q in range(1, 301)]
    with transaction(sessions) as session:
        saved = store_outcomes(session=session, outcomes=outcomes)
    with sessions() as session:
        points = session.scalars(select(RiskPointRow).order_by(RiskPointRow.id)).all()
    assert saved.history_points == len(points)
    assert 5 <= len(points) <= 8
    risks = [p.risk for p in points]
    assert all(b - a >= 0.05 - 1e-9 for a, b in pairwise(risks))


def test_history_point_every_hundred_queries_when_risk_is_flat(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", q, 0.2)) for q in range(1, 251)])
    with sessions() as session:
        queries = session.scalars(select(RiskPointRow.queries).order_by(RiskPointRow.id)).all()
    assert list(queries) == [1, 101, 201]


def test_alert_is_stored_once_and_enqueues_webhooks(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.add(WebhookEndpointRow(url="https://example.test/hook", secret="whsec_x", min_severity="low"))
    u = update("a", 50, 0.85)
    batch = [opening(u, first_alert(u, severity="medium"))]
    with transaction(sessions) as session:
        first = store_outcomes(session=session, outcomes=batch)
    with transaction(sessions) as session:
        again = store_outcomes(session=session, outcomes=batch)  # a replay after a crash
    assert [a.alert_id for a in first.new_alerts] == [first_alert(u, severity="medium").alert_id]
    assert again.new_alerts == []
    with sessions() as session:
        assert count(session, AlertRow) == 1
        assert count(session, WebhookDeliveryRow) == 1
        row = session.get(AlertRow, first_alert(u, severity="medium").alert_id)
        assert row is not None and row.state == "open" and row.opened_at.timestamp() == u.ts


def test_engine_closing_an_alert_resolves_it(sessions: sessionmaker[Session]) -> None:
    opened = update("a", 50, 0.85)
    closed = update("a", 90, 0.4)
    alert = first_alert(opened, severity="medium")
    why = "campaign ended: merged into campaign cp_1"  # the engine's reason, not always the risk
    closing = AlertEvent(
        ALERT_CLOSED, 2, closed.ts, replace(alert, risk=0.4, queries=90, closed_ts=closed.ts), why
    )
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[opening(opened, alert), Outcome(closed, closing)])
    with sessions() as session:
        row = session.get(AlertRow, alert.alert_id)
        assert row is not None and row.closed_by_engine_at is not None
        assert row.closed_by_engine_at.timestamp() == closed.ts
        assert (row.state, row.resolved_by, row.sequence, row.risk) == ("resolved", "engine", 2, 0.4)
        assert row.resolution_note == f"{why}: closed by the engine"


def test_updates_are_stored_once_in_sequence(sessions: sessionmaker[Session]) -> None:
    first = update("a", 50, 0.85)
    alert = first_alert(first, severity="medium")
    later = update("a", 80, 0.97)
    raised = AlertEvent(ALERT_UPDATED, 2, later.ts, replace(alert, risk=0.97, severity="high", queries=80))
    batch = [opening(first, alert), Outcome(later, raised)]
    with transaction(sessions) as session:
        saved = store_outcomes(session=session, outcomes=batch)
    with transaction(sessions) as session:
        again = store_outcomes(session=session, outcomes=batch)
    assert (len(saved.events), len(again.events)) == (2, 0)
    with sessions() as session:
        row = session.get(AlertRow, alert.alert_id)
        assert row is not None and (row.severity, row.risk, row.sequence) == ("high", 0.97, 2)
        bodies = [e.body for e in session.scalars(select(AlertEventRow).order_by(AlertEventRow.id))]
    assert [(b["type"], b["sequence"], b["severity"]) for b in bodies] == [
        ("alert.opened", 1, "medium"),
        ("alert.updated", 2, "high"),
    ]
    assert bodies[0]["decision"] == "degrade" and bodies[1]["decision"] == "block"


def test_rows_are_per_client_and_model_and_status_holds_on_every_model(
    sessions: sessionmaker[Session],
) -> None:
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", 1, 0.97))])
        session.get_one(ClientRow, ("a", "digits-v1")).status = "blocked"
    other = RiskUpdate("a", "credit-v1", 1_800_000_100.0, 1, 0.01, (), {})
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(other)])
    with sessions() as session:
        rows = {r.model_id: r for r in session.scalars(select(ClientRow).where(ClientRow.client_id == "a"))}
    assert {m: (r.risk, r.status) for m, r in rows.items()} == {
        "digits-v1": (0.97, "blocked"),
        "credit-v1": (0.01, "blocked"),
    }


def test_status_survives_updates(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", 1, 0.1))])
    with transaction(sessions) as session:
        client = session.get(ClientRow, ("a", "digits-v1"))
        assert client is not None
        client.status = "blocked"
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", 2, 0.2))])
    with sessions() as session:
        client = session.get(ClientRow, ("a", "digits-v1"))
        assert client is not None and client.status == "blocked" and client.queries == 2


@pytest.mark.parametrize("n_clients", [1200])
def test_batches_larger_than_one_in_query(sessions: sessionmaker[Session], n_clients: int) -> None:
    batch = [Outcome(update(f"c{i}", 1, 0.0)) for i in range(n_clients)]
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=batch)
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update(f"c{i}", 2, 0.0)) for i in range(n_clients)])
    with sessions() as session:
        assert count(session, ClientRow) == n_clients


def test_updates_without_reasons_keep_the_last_explanation(sessions: sessionmaker[Session]) -> None:
    # The engine explains only some updates (alerts, every 100 queries, risk moving); the
    # client row, which the decision endpoint serves, keeps the last explanation it got.
    quiet = RiskUpdate("a", "digits-v1", 1_800_000_010.0, 10, 0.91, (), {})
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[Outcome(update("a", 9, 0.9)), Outcome(quiet)])
    with transaction(sessions) as session:
        later = RiskUpdate("a", "digits-v1", 1_800_000_011.0, 11, 0.92, (), {})
        store_outcomes(session=session, outcomes=[Outcome(later)])
    with sessions() as session:
        a = session.get(ClientRow, ("a", "digits-v1"))
        assert a is not None
        assert (a.queries, a.risk, a.reasons, a.features) == (11, 0.92, ["coverage"], {"coverage": 0.9})


def test_each_alert_event_is_one_log_line_with_ecs_fields(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    u = update("a", 50, 0.95)
    with caplog.at_level("INFO", logger="querywatch.alerts"), transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[opening(u, first_alert(u, severity="medium"))])
    [record] = [r for r in caplog.records if r.name == "querywatch.alerts"]
    fields = vars(record)
    assert fields["event"]["kind"] == "alert" and fields["event"]["action"] == "alert.opened"
    assert fields["threat"]["technique"]["id"] == ["AML.T0024.002"] and fields["user"] == {"id": "a"}


def test_a_rolled_back_batch_counts_no_alert_and_logs_no_line(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    u = update("a", 50, 0.95)

    def opened() -> float:
        return REGISTRY.get_sample_value("querywatch_alerts_opened_total", {"severity": "medium"}) or 0.0

    before = opened()
    with caplog.at_level("INFO", logger="querywatch.alerts"):
        with pytest.raises(RuntimeError), transaction(sessions) as session:
            store_outcomes(session=session, outcomes=[opening(u, first_alert(u, severity="medium"))])
            raise RuntimeError("the consumer died before its commit")
        assert opened() == before and not [r for r in caplog.records if r.name == "querywatch.alerts"]
        with transaction(sessions) as session:
            store_outcomes(session=session, outcomes=[opening(u, first_alert(u, severity="medium"))])
        assert opened() == before + 1
    assert len([r for r in caplog.records if r.name == "querywatch.alerts"]) == 1
