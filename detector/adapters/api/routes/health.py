"""Liveness, readiness and Prometheus metrics.

``/healthz`` and ``/readyz`` are the only routes open without a key (orchestrators probe
them); ``/metrics`` needs a key, sent as ``X-API-Key`` or as ``Authorization: Bearer``
(what Prometheus' scrape ``authorization`` setting sends).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, Response

from querywatch.detector.adapters.api.deps import API_KEY_HEADER, SessionDep
from querywatch.detector.adapters.api.problems import problem
from querywatch.detector.adapters.api.routes.responses import problems
from querywatch.detector.adapters.api.schemas import Health, Readiness
from querywatch.detector.adapters.db.apikeys import authenticate
from querywatch.detector.adapters.db.session import DatabaseError, check_migrated
from querywatch.detector.errors import DatabaseNotMigrated, DatabaseUnreachable
from querywatch.detector.metrics import render

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=problems(503))
def readyz(request: Request) -> Readiness | Response:
    """The database is reachable and at this version's schema. Said without the database's
    URL or the driver's words, which go to the log: the probe needs no key."""
    try:
        check_migrated(request.app.state.engine)
    except DatabaseNotMigrated as exc:
        log.warning("not ready: %s", exc)
        return problem(503, "the database is not at this release's schema: run `querywatch db upgrade`")
    except (DatabaseUnreachable, DatabaseError) as exc:
        log.warning("not ready: %s", str(exc).splitlines()[0])
        return problem(503, "the database cannot be reached (the API's log says why)")
    return Readiness(status="ready")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **problems(401),
    },
)
def metrics(
    session: SessionDep,
    x_api_key: Annotated[str | None, Header(alias=API_KEY_HEADER)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Every querywatch metric, for Prometheus."""
    bearer = authorization[7:] if authorization and authorization[:7].lower() == "bearer " else None
    key = x_api_key or bearer
    if not key or authenticate(session=session, presented=key) is None:
        raise HTTPException(401, "metrics need an API key", headers={"WWW-Authenticate": "Bearer"})
    session.commit()
    body, content_type = render()
    return Response(body, media_type=content_type)
