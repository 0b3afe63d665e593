"""A bound on request bodies.

Every body the API takes is a few hundred bytes of JSON (a policy, a silence, a webhook, a
note). Without a bound, a body of any size was read and parsed before the key was checked:
three 300 MB requests sent without a key took the process from 0.8 to 1.9 GB, and under
``querywatch up`` the consumer and the dispatcher share that process.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from querywatch.detector.adapters.api.problems import problem

#: The largest request body accepted: far above any the API takes, far below harm.
MAX_BODY_BYTES = 1 << 20


class BodyTooLarge(Exception):
    """A body without a declared length that grew past the bound while it was read."""


class LimitRequestBody:
    """413 for a body whose declared length is over ``max_bytes``, before any of it is read;
    a body sent without a length stops being read once it passes the bound (every body is
    read before an answer starts)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        read = 0

        async def bounded() -> Message:
            nonlocal read
            message = await receive()
            read += len(message.get("body", b""))
            if read > self.max_bytes:
                raise BodyTooLarge
            return message

        try:
            await self.app(scope, bounded, send)
        except BodyTooLarge:  # FastAPI's routes answer it as a body they could not read (400)
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        await problem(413, f"a request body is at most {self.max_bytes} bytes")(scope, receive, send)
