"""A real HTTP webhook receiver on a loopback port, scripted by the test.

It records every request it gets and answers from a script of replies (status, headers, or
hang until released), then 200. It can be stopped and started again on the same port to
play a receiver that is down for a while.
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.ports import free_port


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive handler that does not print a line per request into the test output."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(port: int, handler: type[BaseHTTPRequestHandler]) -> Iterator[None]:
    """Serve ``handler`` on 127.0.0.1:``port`` from a thread until the block ends: the local
    stand-in for a third-party service (Slack, PagerDuty, a proxy)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    body: bytes = b"ok"


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many dispatchers connect at once; the default 5 resets connections

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client closing a kept-alive connection is not a test failure


class Receiver:
    def __init__(self, *, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) files to serve HTTPS instead of HTTP."""
        self.tls = tls
        self.port = free_port()
        self.received: list[Received] = []
        self.statuses: list[int | None] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *replies: Reply | int) -> None:
        with self._lock:
            self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def release(self) -> None:
        """Let hanging requests finish (they then answer 200)."""
        self._release.set()

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> None:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= n, timeout):
                raise AssertionError(f"receiver got {len(self.received)} requests, expected {n}")

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    reply = receiver._script.popleft() if receiver._script else Reply()
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body, self.path)
                    )
                    receiver.statuses.append(None if reply.hang else reply.status)
                    receiver._arrived.notify_all()
                if reply.hang:
                    receiver._release.wait(30)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the dispatcher gave up waiting (timeout) and closed the connection

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._release.clear()
        server = _Server(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
