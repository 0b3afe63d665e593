"""End to end in Chromium: an admin puts a model in monitor mode, silences a client and applies
the calibration's suggestion on the dashboard; the API then decides and the outbox delivers
(or does not) accordingly. A reader sees the same pages without the controls."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.adapters.delivery.endpoints import create_endpoint
from querywatch.detector.engine.outcomes import severity_for
from tests.api.server import ApiServer
from tests.ui.conftest import Console, screenshot, sign_in, store
from tests.ui.scenario import (
    ATTACKER,
    BENIGN,
    MODEL,
    alert_id_of,
    attacker_story,
    benign_extraction,
    late_alert,
)

pytestmark = pytest.mark.browser
RECEIVER = "http://127.0.0.1:9/querywatch"
CARD = f"#policy-list li.model-policy[data-model-id='{MODEL}']"


@pytest.fixture
def server(dashboard: ApiServer) -> ApiServer:
    """The dashboard with a webhook endpoint that every alert event would be queued for."""
    with transaction(dashboard.sessions) as session:
        create_endpoint(session=session, url=RECEIVER, allow_hosts=["127.0.0.1"])
    return dashboard


def get(server: ApiServer, path: str) -> Any:
    response = httpx.get(f"{server.base_url}{path}", headers=server.reader_headers)
    response.raise_for_status()
    return response.json()


def deliveries(server: ApiServer, alert_id: str) -> int:
    """Outbox rows queued for an alert (0: it paged nobody)."""
    with server.sessions() as session:
        query = select(func.count()).where(WebhookDeliveryRow.alert_id == alert_id)
        return int(session.scalar(query) or 0)


def audited(server: ApiServer, target: str) -> list[tuple[str, str]]:
    with server.sessions() as session:
        return [(e.action, e.actor.split(" (key")[0]) for e in audit.recent(session=session, target=target)]


def new_alert(server: ApiServer, client_id: str, risk: float = 0.86) -> str:
    """Store a fresh alert for ``client_id`` at ``risk`` the way the consumer does; return its id."""
    outcome = late_alert(client_id)
    assert outcome.event is not None
    outcome.update.risk = risk
    alert = replace(outcome.event.alert, risk=risk, severity=severity_for(risk))
    store(server.settings, [replace(outcome, event=replace(outcome.event, alert=alert))])
    return alert.alert_id


def save_policy(page: Any, **fields: str) -> None:
    for name, value in fields.items():
        if name == "mode":
            page.select_option(f"{CARD} select[name=mode]", value)
        else:
            page.fill(f"{CARD} input[name={name}]", value)
    page.click(f"{CARD} button.save-policy")


def test_monitor_mode_set_on_the_dashboard_allows_and_pages_nobody(
    server: ApiServer, page: Any, console: Console
) -> None:
    sign_in(page, server.base_url, server.admin_key)
    page.click("#nav a[data-view=policy]")
    page.wait_for_selector(f"{CARD}[data-mode=enforce]")
    assert get(server, f"/v1/clients/{ATTACKER}/decision")["action"] == "block"

    save_policy(page, mode="monitor", note="shadow run before enforcing")
    page.wait_for_selector(f"{CARD}[data-mode=monitor]")
    policy = get(server, f"/v1/models/{MODEL}/policy")
    assert (policy["mode"], policy["version"]) == ("monitor", 1)
    decision = get(server, f"/v1/clients/{ATTACKER}/decision")
    assert decision["action"] == "allow" and "model is in monitor mode" in decision["reasons"]
    assert audited(server, f"model:{MODEL}") == [("policy.change", "test-admin")]
    screenshot(page, "policy-monitor")

    quiet = new_alert(server, BENIGN[0])
    stored = get(server, f"/v1/alerts/{quiet}")
    assert stored["decision"] == "allow" and deliveries(server, quiet) == 0

    page.goto(f"{server.base_url}/ui/#/client/{ATTACKER}")
    assert "allow" in page.wait_for_selector("#decision").inner_text()

    # Back to enforce with the form, then undo that with the version list.
    page.click("#nav a[data-view=policy]")
    save_policy(page, mode="enforce", block_risk="0.95")
    page.wait_for_selector(f"{CARD}[data-mode=enforce]")
    assert get(server, f"/v1/models/{MODEL}/policy")["block_risk"] == 0.95
    loud = new_alert(server, BENIGN[1])
    assert get(server, f"/v1/alerts/{loud}")["decision"] == "degrade" and deliveries(server, loud) == 1

    page.click(f"{CARD} details summary")
    page.click(f"{CARD} li[data-version='1'] button.revert")
    page.wait_for_selector(f"{CARD}[data-mode=monitor]")
    policy = get(server, f"/v1/models/{MODEL}/policy")
    assert (policy["mode"], policy["version"], policy["block_risk"]) == ("monitor", 3, None)
    assert [a for a, _ in audited(server, f"model:{MODEL}")] == [
        "policy.revert",
        "policy.change",
        "policy.change",
    ]
    assert console.unexpected() == []


def test_an_extraction_degrade_level_set_on_the_dashboard_degrades_only_clients_above_it(
    server: ApiServer, page: Any, console: Console
) -> None:
    heavy, light = BENIGN[-1], BENIGN[0]  # both low risk; extraction 0.85 and 0.6
    assert benign_extraction(len(BENIGN) - 1) > 0.8 > benign_extraction(0)
    assert get(server, f"/v1/clients/{heavy}/decision")["action"] == "allow"
    sign_in(page, server.base_url, server.admin_key)
    page.click("#nav a[data-view=policy]")
    assert "harm cap" in page.wait_for_selector(f"{CARD} .extraction-hint").inner_text()
    save_policy(page, extraction_degrade="0.8", note="cap what one account can copy")
    page.wait_for_selector(f"{CARD} .version:has-text('v1')")
    assert get(server, f"/v1/models/{MODEL}/policy")["extraction_degrade"] == 0.8

    decision = get(server, f"/v1/clients/{heavy}/decision")
    assert decision["action"] == "degrade" and decision["output_precision"] is not None
    assert "would already agree with the model on about 85% of inputs" in decision["reasons"][-1]
    assert get(server, f"/v1/clients/{light}/decision")["action"] == "allow"
    page.goto(f"{server.base_url}/ui/#/client/{heavy}")
    assert "degrade" in page.wait_for_selector("#decision").inner_text()
    assert "degrade level" in page.wait_for_selector("#chart-extraction").inner_text()
    assert console.unexpected() == []


def test_a_silence_created_on_the_dashboard_keeps_only_its_client_quiet_until_removed(
    server: ApiServer, page: Any, console: Console
) -> None:
    silenced, other = BENIGN[2], BENIGN[3]
    sign_in(page, server.base_url, server.admin_key)
    page.click("#nav a[data-view=silences]")
    page.fill("#silence-form input[name=client_id]", silenced)
    page.fill("#silence-form input[name=comment]", "QA load test until Friday")
    page.click("#silence-form button.create-silence")
    item = page.wait_for_selector("#silence-list li.silence.active")
    assert silenced in item.inner_text() and "QA load test" in item.inner_text()
    silence_id = int(item.get_attribute("data-silence-id") or 0)

    [listed] = get(server, "/v1/silences")
    assert (listed["id"], listed["client_id"]) == (silence_id, silenced)
    assert listed["created_by"].startswith("test-admin")
    assert audited(server, f"silence:{silence_id}") == [("silence.create", "test-admin")]

    hushed, heard = new_alert(server, silenced), new_alert(server, other)
    assert get(server, f"/v1/alerts/{hushed}")["silenced_by"] == silence_id
    assert deliveries(server, hushed) == 0
    assert get(server, f"/v1/alerts/{heard}")["silenced_by"] is None and deliveries(server, heard) == 1
    decision = get(server, f"/v1/clients/{silenced}/decision")
    assert decision["action"] == "degrade"  # a silence never changes the decision
    assert [(m["pages"], m["silenced_by"]) for m in decision["models"]] == [(False, silence_id)]

    page.goto(f"{server.base_url}/ui/#/webhooks")  # the announcement is queued for the endpoint
    announced = page.wait_for_selector("#webhook-list tr.delivery:has-text('notice #')")
    assert "pending" in announced.inner_text()

    page.goto(f"{server.base_url}/ui/#/alerts")
    card = page.wait_for_selector(f"#alert-feed li[data-alert-id='{hushed}']")
    assert f"silenced by #{silence_id}" in card.inner_text()
    screenshot(page, "alert-silenced")

    page.click("#nav a[data-view=silences]")
    page.click(f"#silence-list li[data-silence-id='{silence_id}'] button.remove-silence")
    page.wait_for_selector("#silence-list li.empty")
    assert get(server, "/v1/silences") == []
    [history] = get(server, "/v1/silences?include_inactive=true")
    assert history["removed_by"].startswith("test-admin")
    assert audited(server, f"silence:{silence_id}")[0] == ("silence.remove", "test-admin")
    page.goto(f"{server.base_url}/ui/#/silences?history=1")
    assert "removed by test-admin" in page.wait_for_selector("#silence-list li.silence").inner_text()
    assert console.unexpected() == []


def test_a_false_positive_feeds_the_calibration_an_admin_applies(
    server: ApiServer, page: Any, console: Console
) -> None:
    thief_alert = alert_id_of(attacker_story())
    sign_in(page, server.base_url, server.admin_key)
    page.click("#nav a[data-view=alerts]")
    card = f"#alert-feed li[data-alert-id='{thief_alert}']"
    page.click(f"{card} button.resolve")
    page.check(f"{card} input[name=false_positive]")
    page.click(f"{card} button.resolve-confirm")
    page.wait_for_selector(f"{card}", state="detached")  # gone from the open alerts

    page.click("#nav a[data-view=policy]")
    page.wait_for_selector(f"{CARD} .calibration")
    assert page.inner_text(f"{CARD} .false-positives") == "1"
    report = get(server, f"/v1/models/{MODEL}/calibration")
    suggestion = report["suggested_page_risk"]
    thief_risk = get(server, f"/v1/alerts/{thief_alert}")["peak_risk"]
    assert suggestion is not None and thief_risk < suggestion < thief_risk + 0.01
    assert report["current_page_risk"] is None  # never applied by itself
    screenshot(page, "calibration")

    page.click(f"{CARD} button.apply-suggestion")
    page.wait_for_selector(f"{CARD} button.apply-suggestion", state="detached")
    assert get(server, f"/v1/models/{MODEL}/policy")["page_risk"] == suggestion
    assert audited(server, f"model:{MODEL}") == [("policy.calibration.apply", "test-admin")]
    quiet = new_alert(server, BENIGN[4], risk=thief_risk)  # below the applied page risk
    assert get(server, f"/v1/alerts/{quiet}")["decision"] == "degrade" and deliveries(server, quiet) == 0
    loud = new_alert(server, BENIGN[5], risk=0.99)
    assert deliveries(server, loud) == 1
    assert console.unexpected() == []


def test_a_reader_sees_policy_and_silences_without_controls(
    server: ApiServer, page: Any, console: Console
) -> None:
    httpx.post(
        f"{server.base_url}/v1/silences",
        headers=server.admin_headers,
        json={"client_id": ATTACKER, "comment": "pen test", "expires_at": "2099-01-01T00:00:00Z"},
    ).raise_for_status()
    sign_in(page, server.base_url, server.reader_key)
    page.click("#nav a[data-view=policy]")
    page.wait_for_selector(f"{CARD} .calibration")
    assert page.is_disabled(f"{CARD} select[name=mode]")
    assert page.locator(f"{CARD} button").count() == 0
    blank = {
        n: page.get_attribute(f"{CARD} input[name={n}]", "placeholder") for n in ("block_risk", "page_risk")
    }
    assert blank == {"block_risk": f"default {server.settings.api.block_risk:g}", "page_risk": "off"}
    page.click("#nav a[data-view=silences]")
    assert "pen test" in page.wait_for_selector("#silence-list li.silence").inner_text()
    assert page.locator("#silence-form").count() == 0
    assert page.locator("#silence-list button.remove-silence").count() == 0
    assert console.unexpected() == []
