"""Dead letters: the events the consumers refused, and the clients that sent them.

A refused event is never scored, so a client whose every event is refused has no risk: a
model that answers what querywatch refuses (inputs padded to its width, say)
serves such a client unseen. Here an analyst sees who sends them, and can block the client.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from querywatch.detector.adapters.api import cursors
from querywatch.detector.adapters.api.dead_letter_schemas import (
    DeadLetterPage,
    RefusedClientPublic,
)
from querywatch.detector.adapters.api.deps import ReaderKey, SessionDep
from querywatch.detector.adapters.api.routes.responses import READ, problems
from querywatch.detector.adapters.db.dead_letters import clients_by_refused, list_dead_letters
from querywatch.detector.engine.events import REASONS

router = APIRouter(prefix="/v1/dead-letters", tags=["dead letters"])
Reason = Literal[REASONS]  # type: ignore[valid-type]  # the tuple of reason codes, spelled once
ClientFilter = Annotated[str | None, Query(max_length=256, description="Only events naming this client.")]
ModelFilter = Annotated[str | None, Query(max_length=256, description="Only events naming this model.")]


@router.get("", response_model=DeadLetterPage, responses={**READ, **problems(400)})
def list_newest_first(
    session: SessionDep,
    _key: ReaderKey,
    client_id: ClientFilter = None,
    model: ModelFilter = None,
    reason: Annotated[Reason | None, Query(description="Only this reason.")] = None,
    limit: cursors.PageLimit = 50,
    cursor: cursors.PageCursor = None,
) -> DeadLetterPage:
    """Refused events kept, newest first, with their reason and detail; follow `next_cursor`."""
    rows = list_dead_letters(
        session=session,
        limit=limit + 1,
        client_id=client_id,
        model_id=model,
        reason=reason,
        before_id=cursors.id_cursor(cursor),
    )
    return DeadLetterPage.of(rows, limit, lambda d: [d.id])


@router.get("/clients", response_model=list[RefusedClientPublic], responses=READ)
def clients_by_refused_events(
    session: SessionDep,
    _key: ReaderKey,
    client_id: ClientFilter = None,
    model: ModelFilter = None,
    since: Annotated[
        datetime | None, Query(description="Only events refused at or after this time (RFC 3339).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Clients to return.")] = 100,
) -> list[RefusedClientPublic]:
    """Clients by how many of their events were refused, most first: who sends what
    querywatch cannot score. Letters stored before this was kept (migration 0010) name no client."""
    since = cursors.since_instant(since)
    rows = clients_by_refused(session=session, limit=limit, client_id=client_id, model_id=model, since=since)
    return [RefusedClientPublic.model_validate(r) for r in rows]
