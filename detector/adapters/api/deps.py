"""Request dependencies: the database session, the settings and the caller's API key.

Auth is an ``X-API-Key`` header. No key, or a key that is unknown, malformed or revoked,
is 401; a valid reader key on an admin route is 403 — the two stay distinct so that a
client knows whether to fix its key or ask for more rights.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

from querywatch.detector.adapters.api.decision_cache import DecisionCache
from querywatch.detector.adapters.db.apikeys import Principal, authenticate, hash_secret, touch_last_used
from querywatch.detector.adapters.db.session import Session, SessionFactory
from querywatch.detector.config import Settings

API_KEY_HEADER = "X-API-Key"
_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="An API key made with `querywatch apikey create --role reader|admin`.",
)
_CHALLENGE = {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'}


# The cheap dependencies are async: a sync one runs on the thread pool, a hop per request.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    # async, though the session is synchronous: opening one does no I/O, and a sync
    # dependency would cost two thread-pool hops per request (the decision endpoint's p99).
    factory: SessionFactory = request.app.state.sessions
    with factory() as session:
        yield session


async def get_decision_cache(request: Request) -> DecisionCache:
    cache: DecisionCache = request.app.state.decision_cache
    return cache


async def refuse_unknown_query_parameters(request: Request) -> None:
    """422 for a query parameter the endpoint does not document.

    Ignored, a mistyped filter returns everything: ``/v1/alerts?status=open`` (the clients'
    filter is ``status``, the alerts' ``state``) would list every alert to a script that
    then acts on them. The parameters an endpoint takes are those its OpenAPI operation
    lists, so the refusal and the documentation cannot disagree.
    """
    if not request.query_params:
        return
    template = getattr(request.scope.get("route"), "path_format", None)  # as OpenAPI writes it
    taken = _documented_query_parameters(request.app).get((request.method, template))
    if taken is None:  # not a documented operation (the dashboard's files, the docs page)
        return
    unknown = sorted(set(request.query_params) - taken)
    if unknown:
        takes = ", ".join(sorted(taken)) or "no query parameters"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown parameter; this endpoint takes {takes}",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def _documented_query_parameters(app: FastAPI) -> dict[tuple[str, str | None], frozenset[str]]:
    documented: dict[tuple[str, str | None], frozenset[str]] | None = getattr(
        app.state, "query_parameters", None
    )
    if documented is None:
        documented = {
            (method.upper(), path): frozenset(
                p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"
            )
            for path, operations in app.openapi()["paths"].items()
            for method, operation in operations.items()
        }
        app.state.query_parameters = documented
    return documented


SettingsDep = Annotated[Settings, Depends(get_settings)]
DecisionCacheDep = Annotated[DecisionCache, Depends(get_decision_cache)]
SessionDep = Annotated[Session, Depends(get_session)]


async def get_principal(
    request: Request, session: SessionDep, key: Annotated[str | None, Security(_api_key_header)]
) -> Principal:
    # async: a cached key (the common case) is a dictionary look-up; only a cache miss
    # queries the database, briefly, on the event loop.
    if not key:
        raise HTTPException(401, f"missing {API_KEY_HEADER} header", headers=_CHALLENGE)
    cache: KeyCache = request.app.state.key_cache
    principal = cache.get(key)
    if principal is None:
        principal = authenticate(session=session, presented=key)
        if principal is None:
            raise HTTPException(401, "invalid or revoked API key", headers=_CHALLENGE)
        if touch_last_used(session=session, principal=principal):
            session.commit()
        cache.put(key, principal)
    return principal


class KeyCache:
    """Recently authenticated keys, for ``ttl`` seconds: the decision endpoint's hot path
    then costs one query, not two. A revoked key stops working within ``ttl``."""

    def __init__(self, ttl: float = 5.0, capacity: int = 1024) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, key: str) -> Principal | None:
        entry = self._entries.get(hash_secret(key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, principal: Principal) -> None:
        if len(self._entries) >= self.capacity:
            self._entries.clear()
        self._entries[hash_secret(key)] = (time.monotonic() + self.ttl, principal)


def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_admin:
        raise HTTPException(403, "this action needs an admin API key")
    return principal


ReaderKey = Annotated[Principal, Depends(get_principal)]
AdminKey = Annotated[Principal, Depends(require_admin)]


def actor_name(principal: Principal) -> str:
    """How an API key appears in audit entries and ``*_by`` columns: ``name (key #id)``."""
    return f"{principal.name} (key #{principal.key_id})"
