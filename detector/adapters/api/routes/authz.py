"""``GET /v1/authz``: the decision in the shape gateways ask for (NGINX ``auth_request``,
Envoy ``ext_authz``, Traefik ForwardAuth).

The gateway authenticates with a reader key in ``X-API-Key`` and names the client in a
header; querywatch answers 200 (allow or degrade) or 403 (block). The decision travels in
response headers the gateway copies to the upstream: ``X-Querywatch-Action``,
``X-Querywatch-Risk`` and, for ``degrade``, ``X-Querywatch-Degrade: precision=N``, which
the model server applies. The decision itself is the same policy as
``/v1/clients/{client_id}/decision``.

The route is ``async``: a client the decision cache holds costs no I/O and no hop to the
thread pool, and one it does not costs one short query on the event loop (as a key the
key cache does not hold).

Header values arrive as bytes, which Starlette reads as Latin-1; the client library and
gateways send a client id in UTF-8, so it is read back as such (``_utf8``). Read as Latin-1,
``thief-☃`` was another client than the one its events name, and was allowed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from querywatch.detector.adapters.api.decisions import client_decision_for
from querywatch.detector.adapters.api.deps import DecisionCacheDep, ReaderKey, SessionDep, SettingsDep
from querywatch.detector.adapters.api.problems import PROBLEM_JSON, problem
from querywatch.detector.adapters.api.routes.responses import READ, problems
from querywatch.detector.adapters.api.schemas import DecisionPublic, Problem
from querywatch.detector.client.decisions import ACTION_HEADER, DEGRADE_HEADER, RISK_HEADER
from querywatch.detector.client.events import client_id_for_key
from querywatch.detector.engine.events import MAX_ID

router = APIRouter(tags=["clients"])

_BLOCKED = {"model": Problem, "description": "Block: refuse the request.", "content": {PROBLEM_JSON: {}}}


@router.get(
    "/v1/authz",
    response_model=DecisionPublic,
    responses={**READ, **problems(400), 403: _BLOCKED},
)
async def authz(
    settings: SettingsDep,
    session: SessionDep,
    cache: DecisionCacheDep,
    _key: ReaderKey,
    response: Response,
    client: Annotated[
        str | None,
        Header(
            alias="X-Querywatch-Client",
            max_length=4 * MAX_ID,  # UTF-8 bytes; the id's own length is checked below
            description="The client id as the serving tier logs it (an account id, or `key_…`).",
        ),
    ] = None,
    client_key: Annotated[
        str | None,
        Header(
            alias="X-Querywatch-Client-Key",
            max_length=4096,
            description="The caller's raw API key; querywatch derives its `key_…` client id "
            "the way the client library does (SHA-256), and never stores the key.",
        ),
    ] = None,
    model: Annotated[
        str | None,
        Header(
            alias="X-Querywatch-Model",
            max_length=256,
            description="The model asked (echoed: a client's decision is the strictest over its models).",
        ),
    ] = None,
) -> DecisionPublic | Response:
    """Allow (200), degrade (200 with `X-Querywatch-Degrade`) or block (403) one request.

    Name the client with `X-Querywatch-Client` or `X-Querywatch-Client-Key`; an unknown
    client is allowed. The answer's headers carry the decision for the gateway to forward.
    """
    if client and client_key:  # a gateway names the client one way; the other came from the caller
        return problem(400, "name the client in X-Querywatch-Client or X-Querywatch-Client-Key, not both")
    client, client_key = _utf8(client), _utf8(client_key)
    if client is not None and len(client) > MAX_ID:
        return problem(400, f"X-Querywatch-Client holds more than {MAX_ID} characters: no event names it")
    client_id = client or (client_id_for_key(client_key) if client_key else None)
    if not client_id:
        return problem(400, "name the client in X-Querywatch-Client or X-Querywatch-Client-Key")
    decision = client_decision_for(session=session, settings=settings, cache=cache, client_id=client_id)
    headers = {ACTION_HEADER: decision.action, RISK_HEADER: f"{decision.risk:.4f}"}
    if model:
        headers["X-Querywatch-Model"] = model
    if decision.action == "degrade":
        headers[DEGRADE_HEADER] = f"precision={decision.output_precision}"
    if decision.action == "block":
        return problem(403, "querywatch decision: block", headers=headers, client_id=client_id)
    response.headers.update(headers)
    return decision


def _utf8(value: str | None) -> str | None:
    """A header value as the UTF-8 text it was sent as (ASCII unchanged); bytes that are not
    UTF-8 stay as Latin-1 read them, so they name no client the events name either."""
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value
