"""What the dashboard shows when a page cannot be, when a list is longer than a page, and in
a narrow window: a real headless Chromium against the real API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.api.server import ApiServer
from tests.ui.conftest import Console, screenshot, sign_in, store
from tests.ui.scenario import BENIGN, crowd, late_alert

pytestmark = pytest.mark.browser


def _open_alerts(server: ApiServer) -> int:
    models = httpx.get(f"{server.base_url}/v1/models", headers=server.reader_headers).json()
    return sum(m["open_alerts"] for m in models)


def test_a_refresh_the_api_refuses_is_said_until_one_succeeds(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    """A filter the API refuses (min risk 1.5) and a campaign that does not exist used to
    leave an empty table or an empty box, and nothing said why."""
    sign_in(page, dashboard.base_url, dashboard.reader_key)
    page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
    expect(page.locator("#refresh-problem")).to_be_hidden()
    page.evaluate("location.hash = '#/clients?min_risk=1.5'")
    banner = page.locator("#refresh-problem")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("This page cannot be shown")
    expect(banner).to_contain_text("min_risk")
    page.evaluate("location.hash = '#/campaign/camp-nobody'")
    expect(banner).to_contain_text("This page cannot be shown")
    page.evaluate("location.hash = '#/clients'")
    page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
    expect(banner).to_be_hidden()
    expect(page.locator(".updated")).to_contain_text("UTC")
    assert console.unexpected("422", "404") == []


def test_the_alert_feed_pages_past_fifty_and_the_nav_counts_the_open_ones(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    """The feed showed the newest 50 and no way to the rest (which could then not be
    acknowledged from the dashboard); the open-alert count beside "Alerts" was never filled."""
    store(dashboard.settings, [late_alert(f"late-{i:02d}") for i in range(55)])
    total = _open_alerts(dashboard)
    assert total > 50
    sign_in(page, dashboard.base_url, dashboard.reader_key)
    expect(page.locator("#open-alerts")).to_have_text(str(total))
    page.evaluate("location.hash = '#/alerts'")
    cards = page.locator("#alert-feed > li.alert")
    expect(cards).to_have_count(50)
    first_page = set(
        page.eval_on_selector_all("#alert-feed > li.alert", "els => els.map(e => e.dataset.alertId)")
    )
    page.click("#next-page")
    page.wait_for_selector(".pager .page:text-is('Page 2')")
    expect(cards).to_have_count(total - 50)
    second_page = set(
        page.eval_on_selector_all("#alert-feed > li.alert", "els => els.map(e => e.dataset.alertId)")
    )
    assert not first_page & second_page
    assert page.is_disabled("#next-page")
    assert console.unexpected() == []


def test_long_ids_wrap_and_a_narrow_window_scrolls_no_page_sideways(
    dashboard: ApiServer, browser: Any, console: Console
) -> None:
    """A 240-character client id widened the leaderboard past a 1,400-pixel window; at 400
    pixels "Log out" and half of every table lay off screen."""
    store(dashboard.settings, crowd(3, prefix="x" * 240))
    for width in (1400, 400):
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
        try:
            sign_in(page, dashboard.base_url, dashboard.reader_key)
            page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
            expect(page.locator("#leaderboard tbody tr[data-client-id]")).to_have_count(3 + 1 + len(BENIGN))
            screenshot(page, f"leaderboard-{width}px")
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            logout = page.locator("#logout").bounding_box()
            assert logout is not None and logout["x"] + logout["width"] <= width
        finally:
            context.close()
    assert console.unexpected() == []


def test_the_keyboard_keeps_its_place_through_refreshes_and_escape_closes_a_resolve_form(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    """Every refresh rebuilt the lists, so a link or button reached with Tab lost the focus
    within five seconds; Escape did not close an open resolve form."""
    sign_in(page, dashboard.base_url, dashboard.admin_key)
    page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
    focused = ""
    for _ in range(40):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "document.activeElement.closest('#leaderboard tbody') ? document.activeElement.textContent : ''"
        )
        if focused:
            break
    assert focused, "Tab never reached a leaderboard link"
    page.wait_for_timeout(11_000)  # two refreshes (every 5 s)
    assert page.evaluate("document.activeElement.textContent") == focused
    assert page.evaluate("document.activeElement.closest('#leaderboard tbody') !== null")

    page.evaluate("location.hash = '#/alerts'")
    page.click("#alert-feed .resolve")
    form = page.locator("#alert-feed .resolve-form").first
    expect(form).to_be_visible()
    expect(form.locator("textarea")).to_be_focused()
    page.keyboard.press("Escape")
    expect(form).to_be_hidden()
    expect(page.locator("#alert-feed .resolve").first).to_be_focused()
    assert console.unexpected() == []
