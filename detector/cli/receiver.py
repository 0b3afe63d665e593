"""The demo's own webhook receiver: a loopback HTTP server that accepts signed deliveries.

``querywatch up --demo`` registers it as a webhook endpoint, so that a first run shows
alerts being delivered (on the dashboard's Webhooks page) without any set-up. The SSRF
guard refuses loopback addresses; the demo exempts exactly this receiver's address, in
its own process only.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: The largest body the receiver reads (alert payloads are a few KB).
MAX_BODY = 1 << 20


class DemoReceiver:
    """Accepts POSTs on ``url`` and counts them; ``stop()`` closes it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                self.rfile.read(length)
                with receiver._lock:
                    receiver.received += 1
                self.send_response(HTTPStatus.NO_CONTENT)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # quiet: the dispatcher logs
                return

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._lock = threading.Lock()
        self.received = 0
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/querywatch"

    def start(self) -> DemoReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
