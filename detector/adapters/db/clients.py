"""Read clients and their risk history; change a client's status (trusted / blocked / normal).

The leaderboard is keyset-paginated on ``(risk DESC, client_id ASC)``, served by the
``(risk, client_id)`` index, so page 1,000 costs what page 1 costs with 100,000 clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.session import where_equal
from querywatch.detector.adapters.db.tables import CLIENT_STATUSES, ClientRow, RiskPointRow, utcnow
from querywatch.detector.errors import QuerywatchError


class ClientNotFound(QuerywatchError):
    """No client with this id has been seen."""


@dataclass(frozen=True)
class ClientCursor:
    """Where a leaderboard page ends: the last row's risk and id."""

    risk: float
    client_id: str


def list_clients(
    *,
    session: Session,
    limit: int,
    after: ClientCursor | None = None,
    min_risk: float | None = None,
    model_id: str | None = None,
    status: str | None = None,
) -> list[ClientRow]:
    """Clients by risk, highest first (ties by client_id), strictly after ``after``."""
    query = select(ClientRow)
    if min_risk is not None:
        query = query.where(ClientRow.risk >= min_risk)
    query = where_equal(query, (ClientRow.model_id, model_id), (ClientRow.status, status))
    if after is not None:
        query = query.where(
            or_(
                ClientRow.risk < after.risk,
                and_(ClientRow.risk == after.risk, ClientRow.client_id > after.client_id),
            )
        )
    query = query.order_by(ClientRow.risk.desc(), ClientRow.client_id.asc()).limit(limit)
    return list(session.scalars(query))


def get_client(*, session: Session, client_id: str) -> ClientRow | None:
    return session.get(ClientRow, client_id)


def risk_history(
    *, session: Session, client_id: str, limit: int, since: datetime | None = None
) -> list[RiskPointRow]:
    """The client's newest ``limit`` history points (at or after ``since``), oldest first."""
    query = select(RiskPointRow).where(RiskPointRow.client_id == client_id)
    if since is not None:
        query = query.where(RiskPointRow.ts >= since)
    newest = list(
        session.scalars(query.order_by(RiskPointRow.ts.desc(), RiskPointRow.id.desc()).limit(limit))
    )
    return newest[::-1]


def set_status(
    *, session: Session, client_id: str, status: str, actor: str, create: bool = False
) -> ClientRow:
    """Mark a client trusted, blocked or normal; raises ``ClientNotFound`` for an unseen id
    unless ``create``.

    By default a client must have been seen before it can be marked, so a typo in an id is
    an error instead of a silent new row; ``create`` makes the row of a client not seen yet
    (a leaked key blocked before its first query), which its first events then fill in.
    """
    if status not in CLIENT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CLIENT_STATUSES)}")
    client = session.get(ClientRow, client_id)
    if client is None and create:
        now = utcnow()
        client = ClientRow(client_id=client_id, model_id="", first_seen=now, last_seen=now, queries=0)
        session.add(client)
    if client is None:
        raise ClientNotFound(f"no client {client_id!r} has been seen")
    client.status = status
    client.status_changed_by = actor
    client.updated_at = utcnow()
    return client
