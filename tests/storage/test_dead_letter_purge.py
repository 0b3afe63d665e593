"""`querywatch dead-letters purge`: what it deletes, that it is audited, and a retention
longer than the calendar (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import AuditEntryRow, DeadLetterRow, utcnow
from querywatch.detector.cli import main
from tests.storage.databases import KINDS, migrated_database


@pytest.mark.parametrize("kind", KINDS)
def test_purge_deletes_only_older_letters_is_audited_and_takes_any_retention(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--older-than-days 1000000` (keep everything) ended in an OverflowError, exit 1; no
    purge was in the audit log, though it deletes stored rows."""
    with migrated_database(kind, tmp_path) as settings:
        monkeypatch.setenv("QUERYWATCH_DATABASE__URL", settings.database.url)
        sessions = make_sessionmaker(make_engine(settings.database))
        with transaction(sessions) as session:
            for age in (40, 10):
                session.add(
                    DeadLetterRow(
                        received_at=utcnow() - timedelta(days=age), source="t/0@1", reason="not_json"
                    )
                )
        assert main(["dead-letters", "purge", "--older-than-days", "1000000"]) == 0
        assert main(["dead-letters", "purge", "--older-than-days", "30"]) == 0
        with transaction(sessions) as session:
            ages = [round((utcnow() - r.received_at).days) for r in session.scalars(select(DeadLetterRow))]
            audits = [(a.action, a.detail["count"]) for a in session.scalars(select(AuditEntryRow))]
        assert ages == [10]
        assert audits == [("dead_letters.purge", 0), ("dead_letters.purge", 1)]
