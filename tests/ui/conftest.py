"""Fixtures for the dashboard tests: a live API on a seeded database, and Debian's chromium
driven by Playwright (no browser download: the system executable is launched)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.config import Settings
from querywatch.detector.engine.outcomes import Outcome
from tests.api.server import ApiServer, running_api
from tests.storage.databases import migrated_database
from tests.ui.scenario import full_story

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"


def store(settings: Settings, outcomes: Sequence[Outcome]) -> None:
    """Save engine outcomes the way the consumer does (one committed batch)."""
    engine = make_engine(settings.database)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            store_outcomes(session=session, outcomes=outcomes)
    finally:
        engine.dispose()


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[ApiServer]:
    """The API and dashboard on a SQLite database holding the story (benign clients, one thief)."""
    with migrated_database("sqlite", tmp_path) as settings:
        store(settings, full_story())
        with running_api(settings) as server:
            yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: the sync Playwright API keeps an event loop running in
    # this thread until it stops, and later tests (the webhook dispatcher) call asyncio.run().
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (Debian's) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Console:
    """Everything the page logged as an error, and uncaught exceptions."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def unexpected(self, *allowed: str) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Any, console: Console, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab (own sessionStorage); a screenshot is kept if the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        screenshot(tab, f"FAILED-{request.node.name}")
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page under test-artifacts/ui/ (CI keeps that folder)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def sign_in(page: Any, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/ui/")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#session:not([hidden])")
    page.wait_for_selector("#login", state="hidden")
