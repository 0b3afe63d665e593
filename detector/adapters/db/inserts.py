"""An insert that adds nothing where a row with its key is stored already, without a savepoint.

Catching a plain insert's ``IntegrityError`` needs a savepoint around it, and on SQLite a
savepoint opened before any other write of the transaction is a transaction of its own,
committed at its release: a rollback of the caller's transaction would then leave the row
stored without what it goes with (a partition's first offset without the outcomes it covers,
a notice without its deliveries). ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` says the
same in one statement, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


class InsertIfAbsent:
    """The statement for ``table`` by dialect, built once (a checkpoint may run it every second)."""

    __slots__ = ("_by_dialect",)

    def __init__(self, table: Any, returning: Any) -> None:
        self._by_dialect = {
            "sqlite": sqlite.insert(table).on_conflict_do_nothing().returning(returning),
            "postgresql": postgresql.insert(table).on_conflict_do_nothing().returning(returning),
        }

    def __call__(self, session: Session, values: Mapping[str, Any]) -> Row[Any] | None:
        """The ``returning`` of the row added, or None if one with its key was there (a
        rowcount would not say: psycopg reports -1 for it)."""
        return session.execute(self._by_dialect[session.get_bind().dialect.name], values).first()
