"""The ``dead_letters`` table: rejected messages kept with their reason and original bytes.

The consumer stores them in its checkpoint transaction, so each is stored exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.tables import DeadLetterRow, utcnow


class Rejected(Protocol):
    """What a dead letter row is made of (``adapters.kafka.deadletters.DeadLetter`` has it)."""

    @property
    def source(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def raw(self) -> bytes: ...


def save_dead_letters(*, session: Session, letters: Sequence[Rejected]) -> None:
    """Add ``letters`` to the ``dead_letters`` table inside the caller's transaction."""
    if not letters:
        return
    now = utcnow()
    session.execute(
        insert(DeadLetterRow),
        [
            {
                "received_at": now,
                "source": letter.source,
                "reason": letter.reason,
                "detail": letter.detail,
                "raw": letter.raw,
            }
            for letter in letters
        ],
    )


def dead_letters_to_redrive(
    *, session: Session, reasons: Sequence[str] = (), limit: int = 1000, after_id: int = 0
) -> list[tuple[int, bytes]]:
    """(id, original bytes) of up to ``limit`` stored dead letters past ``after_id``, oldest
    first, of ``reasons`` (all if empty). Oversized messages are kept as a head only and are
    never re-driven."""
    query = (
        select(DeadLetterRow.id, DeadLetterRow.raw)
        .where(DeadLetterRow.id > after_id, DeadLetterRow.reason != "oversized")
        .order_by(DeadLetterRow.id)
        .limit(limit)
    )
    if reasons:
        query = query.where(DeadLetterRow.reason.in_(list(reasons)))
    return [(i, bytes(raw or b"")) for i, raw in session.execute(query)]


def delete_dead_letters(*, session: Session, ids: Sequence[int]) -> None:
    """Delete the dead letters ``ids`` (after they were re-driven)."""
    if ids:
        session.execute(delete(DeadLetterRow).where(DeadLetterRow.id.in_(list(ids))))


def purge_dead_letters(*, session: Session, before: datetime) -> int:
    """Delete dead letters received before ``before``; return how many."""
    result = session.execute(delete(DeadLetterRow).where(DeadLetterRow.received_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
