"""Every API error as an RFC 9457 problem document (``application/problem+json``).

Validation errors (422), unknown routes (404), auth errors (401/403) and querywatch's own
errors all share one shape, so a client needs one error parser.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from querywatch.detector.adapters.db.alerts import AlertNotFound, AlertStateConflict
from querywatch.detector.adapters.db.campaigns import CampaignNotFound
from querywatch.detector.adapters.db.clients import ClientNotFound
from querywatch.detector.adapters.db.policies import InvalidPolicy, PolicyNotFound
from querywatch.detector.adapters.db.session import DATABASE_ERRORS, UnstorableValue
from querywatch.detector.adapters.db.webhooks import (
    DuplicateWebhookEndpoint,
    InvalidWebhookEndpoint,
    WebhookEndpointNotFound,
)
from querywatch.detector.adapters.delivery.signing import InvalidWebhookSecret
from querywatch.detector.adapters.delivery.ssrf import UnsafeWebhookUrl
from querywatch.detector.errors import DatabaseNotMigrated, DatabaseUnreachable, QuerywatchError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)

#: querywatch errors that reach the API, and the status each one means: routes let them
#: rise (no ``try``/``except`` per route), and every one becomes the same problem document.
ERROR_STATUS: dict[type[QuerywatchError], int] = {
    AlertNotFound: 404,
    CampaignNotFound: 404,
    ClientNotFound: 404,
    PolicyNotFound: 404,
    WebhookEndpointNotFound: 404,
    AlertStateConflict: 409,
    InvalidPolicy: 422,
    InvalidWebhookEndpoint: 422,
    DuplicateWebhookEndpoint: 409,
    InvalidWebhookSecret: 422,
    UnsafeWebhookUrl: 422,
    DatabaseNotMigrated: 503,
    DatabaseUnreachable: 503,
}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemResponse:
    """A problem document; ``type`` stays ``about:blank`` so ``title`` is the HTTP phrase."""
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    return problem(422, "the request does not match the API's schema", errors=errors)


async def _querywatch_error(request: Request, exc: Exception) -> ProblemResponse:
    status = next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 500)
    if status == 500:
        log.error("unhandled querywatch error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(500, "internal error")
    return problem(status, str(exc))


async def _unstorable_value(request: Request, exc: Exception) -> ProblemResponse:
    # The database refused a value the schema let through (e.g. a NUL character in text).
    return problem(422, "a value in the request cannot be stored (e.g. a NUL character in text)")


async def _unexpected_error(request: Request, exc: Exception) -> ProblemResponse:
    if isinstance(exc, DATABASE_ERRORS):  # an outage, not a bug: one line, and a 503 to retry on
        log.warning(
            "%s %s: the database did not answer: %s",
            request.method,
            request.url.path,
            exc.__class__.__name__,
        )
        return problem(503, "the database did not answer; retry later (/readyz says when it is ready)")
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "internal error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(QuerywatchError, _querywatch_error)
    app.add_exception_handler(UnstorableValue, _unstorable_value)
    app.add_exception_handler(Exception, _unexpected_error)
