"""Clients: the risk leaderboard, one client, its risk history, its decision, its status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.api.decisions import client_decision_for
from querywatch.detector.adapters.api.deps import (
    AdminKey,
    DecisionCacheDep,
    ReaderKey,
    SessionDep,
    SettingsDep,
    actor_name,
)
from querywatch.detector.adapters.api.routes.responses import ADMIN, READ, problems
from querywatch.detector.adapters.api.schemas import (
    ClientModelPublic,
    ClientPage,
    ClientPublic,
    ClientStatus,
    DecisionPublic,
    PendingStatusPublic,
    RiskPointPublic,
    StatusChange,
)
from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.clients import (
    ClientNotFound,
    client_rows,
    get_client,
    list_clients,
    risk_history,
    set_status,
)
from querywatch.detector.adapters.db.dead_letters import clients_by_refused
from querywatch.detector.adapters.db.tables import ClientRow, PendingStatusRow

# Ids may hold "/" (``{client_id:path}``): a client's sub-resources are declared before the
# client itself, so ".../history" is its history and not a client of that name.
router = APIRouter(prefix="/v1/clients", tags=["clients"])
ClientId = Annotated[
    str, Path(min_length=1, max_length=256, description="The client's id (account / API key).")
]


@router.get("", response_model=ClientPage, responses={**READ, **problems(400)})
def list_clients_by_risk(
    session: SessionDep,
    _key: ReaderKey,
    min_risk: Annotated[
        float | None, Query(ge=0, le=1, description="Only clients at or above this risk.")
    ] = None,
    model: Annotated[
        str | None, Query(max_length=256, description="Only clients whose latest query hit this model.")
    ] = None,
    status: Annotated[ClientStatus | None, Query(description="Only clients with this status.")] = None,
    limit: cursors.PageLimit = 50,
    cursor: cursors.PageCursor = None,
) -> ClientPage:
    """Clients by risk, highest first. Keyset-paginated: follow `next_cursor`."""
    rows = list_clients(
        session=session,
        limit=limit + 1,
        after=cursors.client_cursor(cursor),
        min_risk=min_risk,
        model_id=model,
        status=status,
    )
    return ClientPage.of(rows, limit, lambda c: [c.risk, c.client_id, c.model_id])


@router.get(
    "/{client_id:path}/history", response_model=list[RiskPointPublic], responses={**READ, **problems(404)}
)
def client_history(
    session: SessionDep,
    _key: ReaderKey,
    client_id: ClientId,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Newest points to return.")] = 1000,
    since: Annotated[
        datetime | None, Query(description="Only points at or after this time (RFC 3339).")
    ] = None,
    model: Annotated[str | None, Query(max_length=256, description="Only points on this model.")] = None,
) -> list[RiskPointPublic]:
    """The client's downsampled risk over time (event time), oldest first."""
    if get_client(session=session, client_id=client_id) is None:
        raise ClientNotFound(f"no client {client_id!r} has been seen")
    since = cursors.since_instant(since)
    points = risk_history(session=session, client_id=client_id, limit=limit, since=since, model_id=model)
    return [RiskPointPublic.model_validate(p) for p in points]


@router.get("/{client_id:path}/decision", response_model=DecisionPublic, responses={**READ, **problems(404)})
async def client_decision(  # async: see routes/authz.py
    settings: SettingsDep, session: SessionDep, cache: DecisionCacheDep, _key: ReaderKey, client_id: ClientId
) -> DecisionPublic:
    """What the serving tier should do with this client's next request, on any model.

    The policy (`querywatch.detector.engine.policy.decide`), first match wins: an analyst's
    block, an analyst's trust (allow), a model in monitor mode (allow), then the model's risk
    thresholds (`block` at or above the block threshold, `degrade` — return `output_precision`
    decimals of scores — at or above the degrade threshold); the client's
    decision is the strictest over its models. An unknown client is allowed, risk 0.
    """
    return client_decision_for(session=session, settings=settings, cache=cache, client_id=client_id)


@router.put(
    "/{client_id:path}/status",
    response_model=ClientPublic | PendingStatusPublic,
    responses={**ADMIN, **problems(404)},
)
def change_client_status(
    session: SessionDep,
    key: AdminKey,
    client_id: ClientId,
    change: StatusChange,
    unseen: Annotated[
        bool,
        Query(
            description="Also for a client id never seen yet (e.g. block a leaked key before its first "
            "query): kept as a pending status its first row takes, and returned as such. Without it "
            "an unknown id is a 404, so a typo cannot create a client."
        ),
    ] = False,
) -> ClientPublic | PendingStatusPublic:
    """Mark a client trusted (always allowed, still scored, never paged), blocked (always
    refused) or normal, on every model it queries. Audited."""
    actor = actor_name(key)
    rows = client_rows(session=session, client_id=client_id)
    pending = None if rows else session.get(PendingStatusRow, client_id)
    before = rows[0].status if rows else (pending.status if pending else None)
    client = set_status(
        session=session, client_id=client_id, status=change.status, actor=actor, create=unseen
    )
    audit.record(
        session=session,
        actor=actor,
        action="client.status",
        target=f"client:{client_id}",
        detail={"from": before, "to": change.status, "note": change.note},
    )
    session.commit()
    if isinstance(client, PendingStatusRow):
        return PendingStatusPublic.model_validate(client)
    return _with_models(session, client)


@router.get("/{client_id:path}", response_model=ClientPublic, responses={**READ, **problems(404)})
def one_client(session: SessionDep, _key: ReaderKey, client_id: ClientId) -> ClientPublic:
    """One client: the risk, reasons, features, query count and status of its riskiest model,
    and an entry per model it queried (`models`)."""
    client = get_client(session=session, client_id=client_id)
    if client is None:
        # A key blocked or trusted before its first query has no client yet: say so, so that
        # an analyst checking a leaked key sees the block is in place.
        pending = session.get(PendingStatusRow, client_id)
        waiting = (
            ""
            if pending is None
            else f"; its status {pending.status!r} (set by {pending.status_changed_by}) applies "
            "from its first query"
        )
        refused = clients_by_refused(session=session, limit=1, client_id=client_id)
        if refused:  # it sends, all refused: an analyst must not read "unknown" and move on
            raise ClientNotFound(
                f"no event of client {client_id!r} has been scored: {refused[0].events} were refused "
                f"(GET /v1/dead-letters?client_id=){waiting}"
            )
        raise ClientNotFound(f"no client {client_id!r} has been seen{waiting}")
    return _with_models(session, client)


def _with_models(session: SessionDep, client: ClientRow) -> ClientPublic:
    rows = client_rows(session=session, client_id=client.client_id)
    public = ClientPublic.model_validate(client)
    public.models = [ClientModelPublic.model_validate(r) for r in rows]
    return public
