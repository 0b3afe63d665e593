from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from querywatch.detector.config import Settings
from querywatch.detector.errors import ConfigError
from querywatch.detector.logging import configure_logging


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_with_extras_and_exceptions(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="INFO", log_json=True), stream=out)
    log = logging.getLogger("querywatch.test")
    log.debug("hidden")
    log.info("alert opened", extra={"client_id": "acct-1", "risk": 0.93})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["alert opened", "failed"]
    assert lines[0]["client_id"] == "acct-1" and lines[0]["risk"] == 0.93 and lines[0]["level"] == "info"
    assert "ValueError: boom" in lines[1]["exception"]


def test_reconfiguring_does_not_double_lines_and_plain_text_works(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_json=True), stream=out)
    configure_logging(Settings(log_json=False, log_level="warning"), stream=out)
    logging.getLogger("querywatch.test").warning("careful")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "WARNING" in lines[0] and lines[0].endswith("querywatch.test: careful")


def test_chatty_libraries_are_kept_to_warnings(restore_root: None) -> None:
    out = io.StringIO()
    configure_logging(Settings(log_level="INFO"), stream=out)
    logging.getLogger("kafka.conn").info("connecting")
    assert out.getvalue() == ""


def test_a_migration_logs_nothing_at_info(tmp_path: Path) -> None:
    """Alembic narrates each revision, and the plugins it registers on import, at INFO: seven
    lines before the demo's first own line (alembic 1.18 added the plugins' logger). In a
    fresh interpreter, since alembic logs those when first imported."""
    script = f"""
from querywatch.detector.config import Settings
from querywatch.detector.config.database import DatabaseSettings
from querywatch.detector.logging import configure_logging
settings = Settings(log_level="INFO", database=DatabaseSettings(url="sqlite:///{tmp_path / "q.db"}"))
configure_logging(settings)
from querywatch.detector.adapters.db import migrate
migrate.upgrade(settings)
migrate.downgrade(settings, "base")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert run.stderr == ""


def test_unknown_level_is_a_clear_error(restore_root: None) -> None:
    with pytest.raises(ConfigError, match="log_level"):
        configure_logging(Settings(log_level="LOUD"))
