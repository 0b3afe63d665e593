"""Clients: the risk leaderboard, one client, its risk history, its decision, its status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.api.deps import AdminKey, ReaderKey, SessionDep, SettingsDep, actor_name
from querywatch.detector.adapters.api.policy import decide
from querywatch.detector.adapters.api.routes.responses import ADMIN, READ, problems
from querywatch.detector.adapters.api.schemas import (
    ClientPage,
    ClientPublic,
    ClientStatus,
    DecisionPublic,
    RiskPointPublic,
    StatusChange,
)
from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.clients import (
    ClientNotFound,
    get_client,
    list_clients,
    risk_history,
    set_status,
)

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
    items, next_cursor = cursors.page(rows, limit, lambda c: [c.risk, c.client_id])
    return ClientPage(items=[ClientPublic.model_validate(c) for c in items], next_cursor=next_cursor)


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
) -> list[RiskPointPublic]:
    """The client's downsampled risk over time (event time), oldest first."""
    if get_client(session=session, client_id=client_id) is None:
        raise ClientNotFound(f"no client {client_id!r} has been seen")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
    points = risk_history(session=session, client_id=client_id, limit=limit, since=since)
    return [RiskPointPublic.model_validate(p) for p in points]


@router.get("/{client_id:path}/decision", response_model=DecisionPublic, responses=READ)
def client_decision(
    settings: SettingsDep, session: SessionDep, _key: ReaderKey, client_id: ClientId
) -> DecisionPublic:
    """What the serving tier should do with this client's next request.

    `block` for a blocked client or risk at or above the block threshold, `degrade` (return
    `output_precision` decimals of scores and throttle) at or above the degrade threshold,
    `allow` otherwise — and always for a trusted client. An unknown client is allowed, risk 0.
    """
    client = get_client(session=session, client_id=client_id)
    risk, reasons, status = (
        (0.0, (), "normal") if client is None else (client.risk, tuple(client.reasons), client.status)
    )
    decision = decide(risk=risk, reasons=reasons, status=status, policy=settings.api)
    return DecisionPublic(
        client_id=client_id,
        action=decision.action,
        risk=decision.risk,
        reasons=list(decision.reasons),
        output_precision=decision.output_precision,
        mitigations=list(decision.mitigations),
        status=decision.status,
    )


@router.put("/{client_id:path}/status", response_model=ClientPublic, responses={**ADMIN, **problems(404)})
def change_client_status(
    session: SessionDep,
    key: AdminKey,
    client_id: ClientId,
    change: StatusChange,
    unseen: Annotated[
        bool,
        Query(
            description="Also for a client id never seen yet (e.g. block a leaked key before its first "
            "query); without it an unknown id is a 404, so a typo cannot create a client."
        ),
    ] = False,
) -> ClientPublic:
    """Mark a client trusted (always allowed, still scored), blocked (always refused) or normal. Audited."""
    actor = actor_name(key)
    client = get_client(session=session, client_id=client_id)
    before = client.status if client else None
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
    return ClientPublic.model_validate(client)


@router.get("/{client_id:path}", response_model=ClientPublic, responses={**READ, **problems(404)})
def one_client(session: SessionDep, _key: ReaderKey, client_id: ClientId) -> ClientPublic:
    """One client's risk, reasons, features, query count and status."""
    client = get_client(session=session, client_id=client_id)
    if client is None:
        raise ClientNotFound(f"no client {client_id!r} has been seen")
    return ClientPublic.model_validate(client)
