"""A request the database cannot answer is a 503 to retry, in one log line: during an outage
every request was a 500 "internal error" and two tracebacks."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from sqlalchemy.exc import OperationalError
from starlette.requests import Request

from querywatch.detector.adapters.api import problems


def test_a_database_error_is_a_503_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    request = Request(
        {"type": "http", "method": "GET", "path": "/v1/alerts", "headers": [], "query_string": b""}
    )
    down = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    with caplog.at_level(logging.WARNING, logger=problems.__name__):
        answer = asyncio.run(problems._unexpected_error(request, down))
    assert answer.status_code == 503
    assert json.loads(bytes(answer.body))["detail"].startswith("the database did not answer")
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and not caplog.records[0].exc_info
    bug = asyncio.run(problems._unexpected_error(request, KeyError("x")))
    assert bug.status_code == 500
