from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

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


def test_unknown_level_is_a_clear_error(restore_root: None) -> None:
    with pytest.raises(ConfigError, match="log_level"):
        configure_logging(Settings(log_level="LOUD"))
