"""Under CI=true a test skipped for a missing service fails the run.

Locally, a test that needs PostgreSQL, Chromium, NGINX or another service skips with the
reason when the service is missing. On CI that would turn a green run into a lie, so every
skip there is an error, except skips whose reason starts with ``optional:`` (extra checks
that the rest of the suite already covers).
"""

from __future__ import annotations

import os

import pytest

OPTIONAL = "optional:"
_skips: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if not reason.startswith(OPTIONAL):
            _skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") == "true" and _skips and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("CI") == "true" and _skips:
        terminalreporter.section("CI=true: skipped for a missing service (this fails the run)", red=True)
        for line in _skips:
            terminalreporter.write_line(line)
