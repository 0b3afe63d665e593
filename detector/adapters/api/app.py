"""The FastAPI application: ``create_app(settings)`` wires storage, auth, routes and metrics.

The database engine is made in the lifespan (not at import), and the app refuses to start
on a database that is not at this version's schema: ``querywatch db upgrade`` first.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from querywatch.detector import __version__ as _version
from querywatch.detector.adapters.api.decision_cache import DecisionCache
from querywatch.detector.adapters.api.deps import KeyCache, refuse_unknown_query_parameters
from querywatch.detector.adapters.api.docs import mount_docs
from querywatch.detector.adapters.api.limits import LimitRequestBody
from querywatch.detector.adapters.api.problems import install_problem_handlers, problem
from querywatch.detector.adapters.api.routes import (
    alerts,
    authz,
    campaigns,
    clients,
    dead_letters,
    health,
    me,
    models,
    policies,
    webhooks,
)
from querywatch.detector.adapters.api.webhook_docs import document_webhooks
from querywatch.detector.adapters.db.decision_inputs import watch_changes
from querywatch.detector.adapters.db.session import check_migrated, make_engine, make_sessionmaker
from querywatch.detector.adapters.ui.mount import mount_ui
from querywatch.detector.config import Settings
from querywatch.detector.metrics import API_REQUEST_SECONDS

DESCRIPTION = """
Risk scores and alerts of **querywatch**, which detects model extraction (MITRE ATLAS
AML.T0024.002, *Extract AI Model*) in inference logs.

* Authenticate with an API key in the `X-API-Key` header (`querywatch apikey create`).
  Readers may read; admins may also change client status and work alerts.
  401 means no valid key, 403 a key without the needed role.
* The serving tier asks `GET /v1/clients/{client_id}/decision` what to do with a client.
* Errors are RFC 9457 problem documents (`application/problem+json`). A query parameter
  an operation does not list is refused (422), not ignored (but by `/v1/authz` and the probes).
"""


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database)
        try:
            check_migrated(engine)
            app.state.engine = engine
            app.state.sessions = make_sessionmaker(engine)
            watch_changes(app.state.sessions, app.state.decision_cache.changed)
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="querywatch",
        version=_version,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from local assets by mount_docs
        redoc_url=None,
        openapi_tags=[
            {"name": "clients", "description": "Client risk, history, decisions and status."},
            {"name": "alerts", "description": "Extraction alerts and the analyst workflow."},
            {"name": "campaigns", "description": "Accounts linked as one theft, and the analyst's verdict."},
            {"name": "models", "description": "Served models and their reference profiles."},
            {"name": "dead letters", "description": "Refused events, and the clients that sent them."},
            {"name": "policy", "description": "Per-model policy, calibration and silences."},
            {"name": "auth", "description": "The caller's API key."},
            {"name": "health", "description": "Probes and Prometheus metrics."},
        ],
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(ttl=settings.api.key_cache_seconds)
    app.state.decision_cache = DecisionCache(ttl=settings.api.decision_cache_seconds)
    install_problem_handlers(app)
    strict = [Depends(refuse_unknown_query_parameters)]
    for module in (clients, alerts, campaigns, models, policies, me, webhooks, dead_letters):
        app.include_router(module.router, dependencies=strict)
    # Not these: a gateway may append the caller's path to /v1/authz as a query (Envoy's
    # path_prefix), and a load balancer's probe may add its own parameters.
    for module in (authz, health):
        app.include_router(module.router)
    document_webhooks(app)
    mount_docs(app)
    mount_ui(app)
    app.add_middleware(RejectNulCharacters)
    app.add_middleware(LimitRequestBody)
    app.add_middleware(RequestMetrics)
    return app


class RequestMetrics:
    """Times every HTTP request by method, route template and status (never the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            API_REQUEST_SECONDS.labels(
                method=method, route=_route_template(scope), status=str(status["code"])
            ).observe(time.perf_counter() - started)


class RejectNulCharacters:
    """422 for a NUL character in the path or query: PostgreSQL text cannot hold one, and
    no client id, model id or cursor legitimately contains it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"]
            or b"%00" in scope["query_string"].lower()
            or b"\x00" in scope["query_string"]
        ):
            response = problem(422, "text in the path or query must not contain NUL characters")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


#: Methods a request is labelled with; any other is "other", so that made-up methods sent
#: without a key cannot grow /metrics without bound (2,000 of them made it 489 MB).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_template(scope: dict[str, Any] | Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
