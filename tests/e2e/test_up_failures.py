"""``querywatch up`` that cannot start stops what it started and says why."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from querywatch.detector.cli import main
from querywatch.detector.errors import EXIT_RUNTIME
from tests.e2e.test_up_demo import _alive, _children

pytestmark = pytest.mark.kafka


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_api_port_in_use_stops_everything_and_says_why(
    tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch, capsys, restore_logging: None
) -> None:
    monkeypatch.setenv("QUERYWATCH_DATABASE__URL", f"sqlite:///{tmp_path / 'qw.db'}")
    monkeypatch.delenv("QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    before = _children(os.getpid())
    assert main(["up", "--port", str(busy_port)]) == EXIT_RUNTIME  # found before anything starts
    assert "is already in use" in capsys.readouterr().err
    left = [pid for pid in _children(os.getpid()) - before if _alive(pid)]
    assert not left, "the embedded broker was left running"


def test_the_demo_starts_from_a_fresh_database_unless_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from querywatch.detector.cli.up import DEMO_DATABASE, demo_database
    from querywatch.detector.config import DatabaseSettings, Settings

    monkeypatch.chdir(tmp_path)
    DEMO_DATABASE.write_text("last run")
    kept = demo_database(Settings(), keep=True)
    assert kept.database.url == f"sqlite:///{DEMO_DATABASE}" and DEMO_DATABASE.exists()
    fresh = demo_database(Settings(), keep=False)
    assert fresh.database.url == kept.database.url and not DEMO_DATABASE.exists()
    configured = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'mine.db'}"))
    assert demo_database(configured, keep=False) == configured  # a configured database is never emptied
