"""The audit log of admin actions: who changed what, when, with which details."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.tables import AuditEntryRow, utcnow


def record(
    *, session: Session, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
) -> AuditEntryRow:
    """Add an audit entry to the session (committed with the action it describes)."""
    entry = AuditEntryRow(at=utcnow(), actor=actor, action=action, target=target, detail=detail or {})
    session.add(entry)
    return entry


def recent(*, session: Session, limit: int = 100, target: str | None = None) -> list[AuditEntryRow]:
    """The newest entries first, optionally about one target."""
    query = select(AuditEntryRow)
    if target is not None:
        query = query.where(AuditEntryRow.target == target)
    return list(
        session.scalars(query.order_by(AuditEntryRow.at.desc(), AuditEntryRow.id.desc()).limit(limit))
    )
