"""End-to-end: an analyst in a real headless Chromium signs in, sees the thief at the top,
opens its page with rendered plots, and works its alert — against the real API and storage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from querywatch.detector.adapters.db.profiles import save_profile
from querywatch.detector.adapters.db.session import transaction
from querywatch.models.profile import fit_profile
from tests.api.server import ApiServer
from tests.ui.conftest import Console, screenshot, sign_in, store
from tests.ui.scenario import (
    ATTACKER,
    BENIGN,
    MODEL,
    alert_id_of,
    attacker_extraction,
    attacker_story,
    crowd,
    late_alert,
)

pytestmark = pytest.mark.browser
ATTACKER_ALERT = alert_id_of(attacker_story())


def painted_pixels(page: Any, selector: str) -> int:
    """Non-transparent pixels of the canvas under ``selector``: 0 means nothing was drawn."""
    return int(
        page.eval_on_selector(
            selector,
            """canvas => {
                const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
                return n;
            }""",
        )
    )


def api_alert(server: ApiServer, alert_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/v1/alerts/{alert_id}", headers=server.reader_headers)
    response.raise_for_status()
    return dict(response.json())


def test_admin_sees_the_thief_opens_its_page_and_acknowledges(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    sign_in(page, dashboard.base_url, dashboard.admin_key)
    assert "admin" in page.inner_text("#role")

    first_row = page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
    assert first_row.get_attribute("data-client-id") == ATTACKER
    assert page.locator("#leaderboard tbody tr[data-client-id]").count() == 1 + len(BENIGN)
    screenshot(page, "leaderboard")

    page.click(f"#leaderboard a:text-is('{ATTACKER}')")
    page.wait_for_selector("#chart-risk canvas")
    page.wait_for_selector("#chart-coverage_ratio canvas")
    assert int(page.get_attribute("#chart-risk", "data-points") or 0) > 5
    assert painted_pixels(page, "#chart-risk canvas") > 500
    assert painted_pixels(page, "#chart-coverage_ratio canvas") > 500
    chart_ids = page.eval_on_selector_all("#charts figure", "els => els.map(e => e.id)")
    assert chart_ids[:7] == [
        "chart-risk",
        "chart-extraction",
        "chart-coverage_ratio",
        "chart-ood_share",
        "chart-distance_stat",
        "chart-class_entropy",
        "chart-rate_per_hour",
    ]
    assert "chart-near_duplicate_share" in chart_ids
    legend = page.inner_text("#chart-risk")
    assert "alert threshold" in legend and "clear threshold" in legend
    assert "benign expectation" in page.inner_text("#chart-coverage_ratio")
    assert "input cells a benign client reaches" in page.inner_text("#reasons")
    assert "block" in page.inner_text("#decision")
    screenshot(page, "client")

    page.click(f"#client-alerts li[data-alert-id='{ATTACKER_ALERT}'] button.ack")
    page.wait_for_selector(f"#client-alerts li[data-alert-id='{ATTACKER_ALERT}'].state-acknowledged")
    stored = api_alert(dashboard, ATTACKER_ALERT)
    assert stored["state"] == "acknowledged"
    assert "test-admin" in stored["acknowledged_by"]
    screenshot(page, "client-acknowledged")
    assert console.unexpected() == []


def test_client_page_charts_the_extraction_estimate_with_the_policy_level(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    policy = httpx.put(
        f"{dashboard.base_url}/v1/models/{MODEL}/policy",
        json={"extraction_block": 0.8},
        headers=dashboard.admin_headers,
    )
    policy.raise_for_status()
    history = httpx.get(
        f"{dashboard.base_url}/v1/clients/{ATTACKER}/history", headers=dashboard.reader_headers
    ).json()
    latest = history[-1]["extraction"]
    assert attacker_extraction(0.5) < latest <= attacker_extraction(1.0)

    sign_in(page, dashboard.base_url, dashboard.reader_key)
    page.goto(f"{dashboard.base_url}/ui/#/client/{ATTACKER}")
    chart = "#chart-extraction"
    page.wait_for_selector(f"{chart} canvas")
    assert page.get_attribute(chart, "data-points") == str(len(history))
    assert painted_pixels(page, f"{chart} canvas") > 500
    assert "block level" in page.inner_text(chart)
    # The legend shows the value under the cursor: at the right edge, the latest point's.
    box = page.locator(f"{chart} .u-over").bounding_box()
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    value = page.locator(f"{chart} .u-legend .u-series").nth(1).locator(".u-value")
    expect(value).to_have_text(str(latest))
    assert console.unexpected() == []


def test_client_page_says_the_warm_up_left_the_client_out(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    profile = replace(
        fit_profile(np.random.default_rng(0).normal(size=(600, 8)), model_id=MODEL, version="1", cells=8),
        origin="warmup",
        left_out=(ATTACKER,),
    )
    with transaction(dashboard.sessions) as session:
        save_profile(session=session, model_id=MODEL, version=1, dim=8, blob=profile.to_bytes())

    sign_in(page, dashboard.base_url, dashboard.reader_key)
    page.goto(f"{dashboard.base_url}/ui/#/client/{ATTACKER}")
    assert "left out of the model's warm-up reference" in page.inner_text("#left-out")
    # 600 warm-up inputs, where a profile needs 5,000: the page says the profile is thin
    assert "profile is a warm-up of 600 inputs" in page.inner_text("#profile-warning")
    page.goto(f"{dashboard.base_url}/ui/#/client/{BENIGN[0]}")
    page.wait_for_selector(".client-summary")
    assert page.query_selector("#left-out") is None
    assert console.unexpected() == []


def test_reader_sees_everything_but_cannot_act(dashboard: ApiServer, page: Any, console: Console) -> None:
    sign_in(page, dashboard.base_url, dashboard.reader_key)
    assert "reader" in page.inner_text("#role")
    page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
    page.goto(f"{dashboard.base_url}/ui/#/client/{ATTACKER}")
    page.wait_for_selector(f"#client-alerts li[data-alert-id='{ATTACKER_ALERT}']")
    page.wait_for_selector("#chart-risk canvas")
    assert page.locator("button.ack, button.resolve, .status-actions button").count() == 0
    assert api_alert(dashboard, ATTACKER_ALERT)["state"] == "open"
    assert console.unexpected() == []


def test_wrong_key_is_refused_with_a_clear_message(dashboard: ApiServer, page: Any, console: Console) -> None:
    page.goto(f"{dashboard.base_url}/ui/")
    page.fill("#api-key", "qw_000000000000_not-a-real-secret")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error:has-text('not valid')")
    assert page.is_hidden("#nav")
    assert console.unexpected("401") == []


def test_new_alert_appears_without_reload_and_is_resolved_as_false_positive(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    sign_in(page, dashboard.base_url, dashboard.admin_key)
    page.goto(f"{dashboard.base_url}/ui/#/alerts?state=open")
    page.wait_for_selector(f"#alert-feed li[data-alert-id='{ATTACKER_ALERT}']")
    page.evaluate("window.stillTheSamePage = true")

    late = late_alert(BENIGN[0])
    late_id = alert_id_of([late])
    store(dashboard.settings, [late])
    card = f"#alert-feed li.new[data-alert-id='{late_id}']"
    page.wait_for_selector(card, timeout=20_000)
    assert page.evaluate("window.stillTheSamePage") is True
    screenshot(page, "alerts-new")

    page.click(f"{card} button.resolve")
    page.fill(f"{card} textarea[name=note]", "QA load test, agreed with the team")
    page.check(f"{card} input[name=false_positive]")
    page.wait_for_timeout(6_000)  # a refresh (every 5 s) must not wipe the half-filled form
    assert page.input_value(f"{card} textarea[name=note]") == "QA load test, agreed with the team"
    page.click(f"{card} button.resolve-confirm")
    page.wait_for_selector(f"#alert-feed li[data-alert-id='{late_id}']", state="detached")
    stored = api_alert(dashboard, late_id)
    assert stored["state"] == "resolved"
    assert stored["false_positive"] is True
    assert stored["resolution_note"] == "QA load test, agreed with the team"

    page.click(".tabs a:text-is('resolved')")
    page.wait_for_selector(f"#alert-feed li[data-alert-id='{late_id}']:has-text('false positive')")
    assert console.unexpected() == []


def test_admin_blocks_a_client_and_the_decision_follows(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    client = BENIGN[2]
    sign_in(page, dashboard.base_url, dashboard.admin_key)
    page.goto(f"{dashboard.base_url}/ui/#/client/{client}")
    page.click(".status-actions button.set-blocked")
    page.wait_for_selector(".client-summary .badge.status-blocked")
    page.wait_for_selector("#decision:has-text('block')")
    response = httpx.get(f"{dashboard.base_url}/v1/clients/{client}", headers=dashboard.reader_headers)
    assert response.json()["status"] == "blocked"

    page.goto(f"{dashboard.base_url}/ui/#/clients?status=blocked")
    expect(page.locator("#leaderboard tbody tr[data-client-id]")).to_have_count(1)
    assert page.get_attribute("#leaderboard tbody tr[data-client-id]", "data-client-id") == client
    assert page.input_value("#filter-status") == "blocked"
    assert console.unexpected() == []


def test_leaderboard_pages_through_the_keyset_cursor(
    dashboard: ApiServer, page: Any, console: Console
) -> None:
    store(dashboard.settings, crowd(120))
    total = 120 + 1 + len(BENIGN)
    sign_in(page, dashboard.base_url, dashboard.reader_key)
    rows = "#leaderboard tbody tr[data-client-id]"
    seen: list[str] = []
    for page_number in range(1, 4):
        page.wait_for_selector(f".pager .page:text-is('Page {page_number}')")
        expect(page.locator(f"{rows} .rank").first).to_have_text(str(len(seen) + 1))
        ids = page.eval_on_selector_all(rows, "els => els.map(e => e.dataset.clientId)")
        assert len(ids) == min(50, total - len(seen))
        seen += ids
        if page_number < 3:
            page.click("#next-page")
    assert page.is_disabled("#next-page")
    assert len(seen) == len(set(seen)) == total
    assert seen[0] == ATTACKER
    page.click("#prev-page")
    page.wait_for_selector(".pager .page:text-is('Page 2')")
    expect(page.locator(f"{rows} .rank").first).to_have_text("51")
    assert console.unexpected() == []
