"""ASGI middleware (FastAPI, Starlette, any ASGI server): log, enforce, degrade.

    app.add_middleware(QuerywatchASGI, extractor=Extractor("digits-v1"), emitter=..., decisions=...)

For the paths and methods it guards it buffers the request and the JSON answer (model
requests and answers are small), so it can log each row with its prediction and rewrite a
degraded answer; everything else passes straight through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .decisions import Decision
from .guard import PROBLEM_HEADERS, Guard, now
from .hooks import Extractor

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class QuerywatchASGI:
    """Wraps an ASGI app; keyword options are those of ``Guard`` (emitter, decisions, degrade_mode, ...)."""

    def __init__(self, app: ASGIApp, extractor: Extractor, **options: Any) -> None:
        self.app = app
        self.guard = Guard(extractor, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard = self.guard
        if scope["type"] != "http" or not guard.applies(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        received = now()
        headers, repeated = _headers(scope["headers"])
        refusal = guard.ambiguous(headers, repeated)
        if refusal is not None:
            await _send_problem(send, 400, refusal)
            return
        client_id = guard.identify(headers)
        if client_id is None:
            await self.app(scope, receive, send)
            return
        decision = guard.cached_decision(client_id, headers)
        if decision is None:  # a cache miss waits for querywatch on a worker thread, not the loop
            decision = await asyncio.to_thread(guard.decision, client_id)
        if decision.action == "block":
            await _send_problem(send, 403, guard.refuse())
            return
        request_body = await _read_body(receive)
        await self.app(
            scope,
            _replay(request_body, receive),
            _Answer(guard, send, client_id, decision, headers, scope, received, request_body).send,
        )


def _headers(raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], set[str]]:
    """Headers by lower-cased name, each its first copy (as Starlette's ``Header()`` reads
    them), and the names sent again with another value."""
    headers: dict[str, str] = {}
    repeated: set[str] = set()
    for k, v in raw:
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        first = headers.setdefault(name, value)
        if first != value:
            repeated.add(name)
    return headers, repeated


async def _send_problem(send: Send, status: int, body: bytes) -> None:
    length = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": PROBLEM_HEADERS + length})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break  # the caller went away; the app will see the disconnect itself
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the real one."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class _Answer:
    """Holds the response start until the body is complete, so it can be logged and rewritten."""

    def __init__(
        self,
        guard: Guard,
        send: Send,
        client_id: str,
        decision: Decision,
        headers: dict[str, str],
        scope: Scope,
        received: float,
        request_body: bytes,
    ) -> None:
        self.guard, self._send, self.client_id, self.decision = guard, send, client_id, decision
        self.headers, self.scope, self.received, self.request_body = headers, scope, received, request_body
        self.start: Message | None = None
        self.parts: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self._send(message)
            return
        self.parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body, start = b"".join(self.parts), self.start
        if start["status"] == 200 and _is_json(start.get("headers", [])):
            client = self.scope.get("client")
            changed = self.guard.answer(
                client_id=self.client_id,
                decision=self.decision,
                headers=self.headers,
                peer=client[0] if client else None,
                path=self.scope["path"],
                received=self.received,
                request_body=self.request_body,
                response_body=body,
            )
            if changed is not None:
                body = changed
                start = {**start, "headers": _with_length(start.get("headers", []), len(body))}
        await self._send(start)
        await self._send({"type": "http.response.body", "body": body})


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"json" in v.lower() for k, v in headers)


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]
