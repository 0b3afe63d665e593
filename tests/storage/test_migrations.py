from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.migrate import downgrade, head_revision, upgrade
from querywatch.detector.adapters.db.session import check_migrated, current_revision, make_engine, transaction
from querywatch.detector.adapters.db.tables import Base, ClientRow
from querywatch.detector.cli import main
from querywatch.detector.errors import DatabaseNotMigrated
from tests.storage.databases import settings_for

TABLES = {
    "clients",
    "risk_history",
    "alerts",
    "model_profiles",
    "webhook_endpoints",
    "webhook_deliveries",
    "api_keys",
    "audit_log",
    "partition_offsets",
    "client_states",
    "dead_letters",
}


def test_upgrade_from_empty_to_head_and_back_down(empty_database_url: str) -> None:
    settings = settings_for(empty_database_url)
    engine = make_engine(settings.database)
    try:
        with pytest.raises(DatabaseNotMigrated, match="has no querywatch schema") as refused:
            check_migrated(engine)
        assert refused.value.hint == "run `querywatch db upgrade` first"
        upgrade(settings)
        check_migrated(engine)
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        downgrade(settings, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert current_revision(engine) is None
        upgrade(settings)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_cli_upgrades_and_downgrades(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUERYWATCH_DATABASE__URL", empty_database_url)
    assert main(["db", "upgrade"]) == 0
    assert head_revision() in capsys.readouterr().out
    assert main(["db", "downgrade", "--revision", "base"]) == 0
    assert "base" in capsys.readouterr().out


def test_times_come_back_timezone_aware_utc(sessions: sessionmaker[Session]) -> None:
    seen = datetime(2026, 11, 29, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with transaction(sessions) as session:
        session.add(ClientRow(client_id="c1", model_id="m", first_seen=seen, last_seen=seen))
    with sessions() as session:
        row = session.scalars(select(ClientRow)).one()
    assert row.first_seen == seen
    assert row.first_seen.tzinfo is not None and row.first_seen.utcoffset() == timedelta(0)
    assert row.status == "normal" and row.reasons == [] and row.risk == 0.0


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(Exception, match="naive datetime"), transaction(sessions) as session:
        session.add(
            ClientRow(
                client_id="c1", model_id="m", first_seen=datetime(2026, 1, 1), last_seen=datetime.now(UTC)
            )
        )


def test_status_is_constrained(sessions: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        session.add(ClientRow(client_id="c1", model_id="m", first_seen=now, last_seen=now, status="weird"))


def test_0004_moves_statuses_of_unseen_clients_out_of_the_clients_table(empty_database_url: str) -> None:
    settings = settings_for(empty_database_url)
    engine = make_engine(settings.database)
    row = (
        "INSERT INTO clients (client_id, model_id, risk, reasons, features, queries, first_seen, last_seen, "
        "status, status_changed_by, updated_at) VALUES ('leaked', :model, 0, '[]', '{}', 0, :t, :t, "
        "'blocked', 'ana', :t)"
    )
    try:
        upgrade(settings, "0003")
        with engine.begin() as connection:
            for model in ("", "digits-v1"):
                connection.execute(
                    text(row.replace("'leaked'", f"'{model or 'leaked'}-key'")),
                    {"model": model, "t": "2026-11-29 10:00:00"},
                )
        upgrade(settings, "0004")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT client_id, model_id FROM clients")).all() == [
                ("digits-v1-key", "digits-v1")
            ]
            assert connection.execute(
                text("SELECT client_id, status, status_changed_by FROM pending_statuses")
            ).all() == [("leaked-key", "blocked", "ana")]
        downgrade(settings, "0003")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT client_id, model_id, status FROM clients ORDER BY client_id")
            )
            assert rows.all() == [("digits-v1-key", "digits-v1", "blocked"), ("leaked-key", "", "blocked")]
    finally:
        engine.dispose()


def test_a_sqlite_table_rebuild_keeps_the_rows_that_refer_to_it(tmp_path: Path) -> None:
    """0003 rebuilds ``alerts`` in SQLite's batch mode (copy, DROP, rename). With foreign keys
    on, the DROP cascaded to ``webhook_deliveries``: every delivery, pending ones too, was
    gone after the upgrade from 0002 and after the downgrade back to it."""
    settings = settings_for(f"sqlite:///{tmp_path / 'q.db'}")
    engine = make_engine(settings.database)
    t = "2026-11-29 10:00:00"
    try:
        upgrade(settings, "0002")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO alerts (alert_id, client_id, model_id, opened_at, queries, risk, "
                    "severity, technique, reasons, features) VALUES ('al_1', 'c', 'm', :t, 10, 0.9, "
                    "'high', 'AML.T0024', '[]', '{}')"
                ),
                {"t": t},
            )
            connection.execute(
                text(
                    "INSERT INTO webhook_endpoints (id, url, secret, created_at) "
                    "VALUES (1, 'https://x.test/h', 's', :t)"
                ),
                {"t": t},
            )
            connection.execute(
                text(
                    "INSERT INTO webhook_deliveries (alert_id, endpoint_id, webhook_id, created_at) "
                    "VALUES ('al_1', 1, 'wh_1', :t)"
                ),
                {"t": t},
            )

        def deliveries() -> list[tuple[str, str]]:
            with engine.connect() as connection:
                return [
                    tuple(r)
                    for r in connection.execute(text("SELECT alert_id, state FROM webhook_deliveries"))
                ]

        upgrade(settings)
        assert deliveries() == [("al_1", "pending")]
        downgrade(settings, "0002")
        assert deliveries() == [("al_1", "pending")]
        with engine.connect() as connection:
            assert (
                connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            )  # querywatch's own connections
    finally:
        engine.dispose()
