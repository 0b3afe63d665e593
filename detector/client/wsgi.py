"""WSGI middleware (Flask, Django, any WSGI server): the ASGI middleware's twin.

app.wsgi_app = QuerywatchWSGI(app.wsgi_app, Extractor("digits-v1"), emitter=..., decisions=...)
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from .guard import PROBLEM_HEADERS, Guard, now
from .hooks import Extractor

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class QuerywatchWSGI:
    """Wraps a WSGI app; keyword options are those of ``Guard``."""

    def __init__(self, app: WSGIApp, extractor: Extractor, **options: Any) -> None:
        self.app = app
        self.guard = Guard(extractor, **options)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        guard = self.guard
        path = environ.get("PATH_INFO", "")
        if not guard.applies(environ.get("REQUEST_METHOD", ""), path):
            return self.app(environ, start_response)
        received = now()
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        refusal = guard.ambiguous(headers)  # a server joins a repeated header's copies: one value
        if refusal is not None:
            start_response(
                "400 Bad Request",
                [(k.decode(), v.decode()) for k, v in PROBLEM_HEADERS]
                + [("Content-Length", str(len(refusal)))],
            )
            return [refusal]
        client_id = guard.identify(headers)
        if client_id is None:
            return self.app(environ, start_response)
        decision = guard.cached_decision(client_id, headers) or guard.decision(client_id)
        if decision.action == "block":
            body = guard.refuse()
            start_response(
                "403 Forbidden",
                [(k.decode(), v.decode()) for k, v in PROBLEM_HEADERS] + [("Content-Length", str(len(body)))],
            )
            return [body]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        request_body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(request_body)
        captured: dict[str, Any] = {}
        written: list[bytes] = []

        def capture(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured.update(status=status, headers=response_headers, exc_info=exc_info)
            return written.append  # the legacy write() callable

        result = self.app(environ, capture)
        try:
            body = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, response_headers = captured["status"], list(captured["headers"])
        is_json = any(k.lower() == "content-type" and "json" in v.lower() for k, v in response_headers)
        if status.startswith("200") and is_json:
            changed = guard.answer(
                client_id=client_id,
                decision=decision,
                headers=headers,
                peer=environ.get("REMOTE_ADDR"),
                path=path,
                received=received,
                request_body=request_body,
                response_body=body,
            )
            if changed is not None:
                body = changed
                response_headers = [(k, v) for k, v in response_headers if k.lower() != "content-length"]
                response_headers.append(("Content-Length", str(len(body))))
        start_response(status, response_headers, captured.get("exc_info"))
        return [body]
