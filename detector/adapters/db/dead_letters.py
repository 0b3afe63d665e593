"""The ``dead_letters`` table: rejected messages kept with their reason and original bytes.

The consumer stores them in its checkpoint transaction, so each is stored exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import insert
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
