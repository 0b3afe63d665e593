"""A real querywatch API for tests: uvicorn on a free loopback port, in a thread.

Other test packages reuse it::

    from tests.api.server import running_api
    with migrated_database("sqlite", tmp_path) as settings, running_api(settings) as api:
        httpx.get(f"{api.base_url}/v1/clients", headers=api.admin_headers)

or simply take the ``api_server`` fixture (``tests/api/conftest.py``), parametrized over
SQLite and PostgreSQL.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.api.app import create_app
from querywatch.detector.adapters.db.apikeys import create_api_key
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.config import Settings


@dataclass(frozen=True)
class ApiServer:
    base_url: str
    admin_key: str
    reader_key: str
    settings: Settings
    engine: Engine

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.admin_key}

    @property
    def reader_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.reader_key}

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on the server's database, to seed or inspect it."""
        return make_sessionmaker(self.engine)


@contextmanager
def running_api(
    settings: Settings, *, startup_timeout: float = 20.0, keep_alive_seconds: int = 5
) -> Iterator[ApiServer]:
    """Serve ``create_app(settings)`` (database already migrated) with one admin and one reader
    key; an idle connection is closed after ``keep_alive_seconds`` (uvicorn's default, 5)."""
    engine = make_engine(settings.database)
    with transaction(make_sessionmaker(engine)) as session:
        admin = create_api_key(session=session, role="admin", name="test-admin").secret
        reader = create_api_key(session=session, role="reader", name="test-reader").secret
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it Nagle + delayed ACKs add ~40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=keep_alive_seconds,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="test-api")
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            engine.dispose()
            raise RuntimeError("the test API server did not start")
        time.sleep(0.01)
    try:
        yield ApiServer(f"http://127.0.0.1:{port}", admin, reader, settings, engine)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        engine.dispose()
