"""A local stand-in for a Slack incoming webhook that enforces Slack's documented limits.

Slack answers 200 ``ok``, or 400 with a short reason (``invalid_payload``, ``no_text``,
``invalid_blocks``) when a message breaks its rules. The limits checked are those of Block
Kit's reference: at most 50 blocks; a ``header``'s ``plain_text`` at most 150 characters; a
``section``'s text at most 3,000; a ``context`` at most 10 elements, each text at most 2,000;
and a ``text`` (the notification fallback) of at most 40,000 characters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.ports import free_port
from tests.webhooks.receiver import QuietHandler, serving


def violations(message: Any) -> list[str]:
    """What Slack would refuse in ``message`` (empty: it would post it)."""
    if not isinstance(message, dict):
        return ["invalid_payload"]
    problems = []
    text, blocks = message.get("text"), message.get("blocks", [])
    if not text and not blocks:
        problems.append("no_text")
    if text is not None and (not isinstance(text, str) or len(text) > 40_000):
        problems.append("text too long")
    if not isinstance(blocks, list) or len(blocks) > 50:
        return [*problems, "invalid_blocks: more than 50"]
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            t = block["text"]
            if t.get("type") != "plain_text" or not 0 < len(t["text"]) <= 150:
                problems.append("invalid_blocks: header")
        elif kind == "section":
            if not 0 < len(block["text"]["text"]) <= 3000:
                problems.append("invalid_blocks: section text")
        elif kind == "context":
            elements = block["elements"]
            if not 0 < len(elements) <= 10 or any(len(e["text"]) > 2000 for e in elements):
                problems.append("invalid_blocks: context")
        else:
            problems.append(f"invalid_blocks: unexpected block {kind!r}")
    return problems


class Slack:
    """Messages it accepted, and what it refused."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[dict[str, Any]] = []
        self.refused: list[list[str]] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/XXXXXXXX"

    def answer(self, body: bytes) -> tuple[int, bytes]:
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        problems = violations(message)
        with self._lock:
            if problems:
                self.refused.append(problems)
                return 400, problems[0].split(":")[0].encode()
            self.messages.append(message)
        return 200, b"ok"


@contextmanager
def running_slack() -> Iterator[Slack]:
    service = Slack()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            status, body = service.answer(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(service.port, Handler):
        yield service
