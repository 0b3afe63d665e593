"""Read clients and their risk history; change a client's status (trusted / blocked / normal).

A client has one row per model it queried. The leaderboard lists those rows, keyset-paginated
on ``(risk DESC, client_id ASC, model_id ASC)``, served by the ``(risk, client_id)`` index, so
page 1,000 costs what page 1 costs with 100,000 clients. An analyst's status is the client's:
it is written to every row of the client (and kept as a pending status for a client that
has no row yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.session import where_equal
from querywatch.detector.adapters.db.tables import (
    CLIENT_STATUSES,
    ClientRow,
    PendingStatusRow,
    RiskPointRow,
    utcnow,
)
from querywatch.detector.errors import QuerywatchError


class ClientNotFound(QuerywatchError):
    """No client with this id has been seen."""


@dataclass(frozen=True)
class ClientCursor:
    """Where a leaderboard page ends: the last row's risk, client and model."""

    risk: float
    client_id: str
    model_id: str = ""


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
                and_(
                    ClientRow.risk == after.risk,
                    ClientRow.client_id == after.client_id,
                    ClientRow.model_id > after.model_id,
                ),
            )
        )
    order = (ClientRow.risk.desc(), ClientRow.client_id.asc(), ClientRow.model_id.asc())
    return list(session.scalars(query.order_by(*order).limit(limit)))


def client_rows(*, session: Session, client_id: str) -> list[ClientRow]:
    """The client's rows, one per model, riskiest first."""
    query = select(ClientRow).where(ClientRow.client_id == client_id)
    return list(session.scalars(query.order_by(ClientRow.risk.desc(), ClientRow.model_id)))


def get_client(*, session: Session, client_id: str) -> ClientRow | None:
    """The client's riskiest row (its view in the v1 API), None if never seen."""
    rows = client_rows(session=session, client_id=client_id)
    return rows[0] if rows else None


def risk_history(
    *,
    session: Session,
    client_id: str,
    limit: int,
    since: datetime | None = None,
    model_id: str | None = None,
) -> list[RiskPointRow]:
    """The client's newest ``limit`` history points (at or after ``since``, on ``model_id``
    if given), oldest first."""
    query = where_equal(
        select(RiskPointRow).where(RiskPointRow.client_id == client_id), (RiskPointRow.model_id, model_id)
    )
    if since is not None:
        query = query.where(RiskPointRow.ts >= since)
    newest = list(
        session.scalars(query.order_by(RiskPointRow.ts.desc(), RiskPointRow.id.desc()).limit(limit))
    )
    return newest[::-1]


def client_status(*, session: Session, client_id: str, rows: Sequence[ClientRow]) -> str:
    """The analyst's status of a client: its rows', else a pending one, else normal."""
    if rows:
        return rows[0].status
    pending = session.get(PendingStatusRow, client_id)
    return "normal" if pending is None else pending.status


def set_status(
    *, session: Session, client_id: str, status: str, actor: str, create: bool = False
) -> ClientRow | PendingStatusRow:
    """Mark a client trusted, blocked or normal on every model; raises ``ClientNotFound``
    for an unseen id unless ``create`` (or it already has a pending status). Returns the
    client's riskiest row, or its pending status if it has not been seen yet.

    By default a client must have been seen before it can be marked, so a typo in an id is
    an error instead of a silent new row; ``create`` records a *pending* status for a client
    not seen yet (a leaked key blocked before its first query), which its first row takes.
    """
    if status not in CLIENT_STATUSES:
        raise ValueError(f"status must be one of {', '.join(CLIENT_STATUSES)}")
    now = utcnow()
    rows = client_rows(session=session, client_id=client_id)
    if not rows:
        pending = session.get(PendingStatusRow, client_id)
        if pending is None and not create:
            raise ClientNotFound(f"no client {client_id!r} has been seen")
        if pending is None:
            pending = PendingStatusRow(client_id=client_id)
            session.add(pending)
        pending.status, pending.status_changed_by, pending.changed_at = status, actor, now
        return pending
    for client in rows:
        client.status = status
        client.status_changed_by = actor
        client.updated_at = now
    return rows[0]
