"""The ``dead_letters`` table: rejected messages kept with their reason and original bytes.

The consumer stores them in its checkpoint transaction, so each is stored exactly once,
under the client and model it names where it names them: the API lists the letters and
ranks clients by their refused events, so a client whose every event is refused is seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.session import where_equal
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
    @property
    def client_id(self) -> str | None: ...
    @property
    def model_id(self) -> str | None: ...


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
                "client_id": letter.client_id,
                "model_id": letter.model_id,
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


def list_dead_letters(
    *,
    session: Session,
    limit: int,
    client_id: str | None = None,
    model_id: str | None = None,
    reason: str | None = None,
    before_id: int | None = None,
) -> list[DeadLetterRow]:
    """Dead letters matching the filters, newest first, keyset-paginated on id."""
    query = where_equal(
        select(DeadLetterRow),
        (DeadLetterRow.client_id, client_id),
        (DeadLetterRow.model_id, model_id),
        (DeadLetterRow.reason, reason),
    )
    if before_id is not None:
        query = query.where(DeadLetterRow.id < before_id)
    return list(session.scalars(query.order_by(DeadLetterRow.id.desc()).limit(limit)))


@dataclass
class RefusedClient:
    """One client's refused events among the dead letters kept: how many, why, on which
    models, and when the first and last came."""

    client_id: str
    events: int
    first_at: datetime
    last_at: datetime
    reasons: dict[str, int] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)


def clients_by_refused(
    *,
    session: Session,
    limit: int,
    client_id: str | None = None,
    model_id: str | None = None,
    since: datetime | None = None,
) -> list[RefusedClient]:
    """Clients by their refused events (most first, then by id), of the letters that name a
    client, on ``model_id`` and since ``since`` if given."""
    scope = where_equal(
        select(DeadLetterRow).where(DeadLetterRow.client_id.is_not(None)),
        (DeadLetterRow.client_id, client_id),
        (DeadLetterRow.model_id, model_id),
    )
    if since is not None:
        scope = scope.where(DeadLetterRow.received_at >= since)
    letters = scope.subquery()
    events = func.count().label("events")
    ranked = session.execute(
        select(letters.c.client_id, events, func.min(letters.c.received_at), func.max(letters.c.received_at))
        .group_by(letters.c.client_id)
        .order_by(events.desc(), letters.c.client_id)
        .limit(limit)
    ).all()
    clients = {row[0]: RefusedClient(row[0], row[1], row[2], row[3]) for row in ranked}
    if clients:
        parts = session.execute(
            select(letters.c.client_id, letters.c.model_id, letters.c.reason, func.count())
            .where(letters.c.client_id.in_(list(clients)))
            .group_by(letters.c.client_id, letters.c.model_id, letters.c.reason)
            .order_by(letters.c.client_id, letters.c.model_id, letters.c.reason)
        )
        for one, model, reason, count in parts:
            client = clients[one]
            client.reasons[reason] = client.reasons.get(reason, 0) + count
            if model is not None and model not in client.models:
                client.models.append(model)
    return list(clients.values())
