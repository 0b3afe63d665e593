"""The dashboard's Webhooks page: endpoints and their deliveries, for admin keys only."""

from __future__ import annotations

from typing import Any

import pytest

from querywatch.detector.adapters.db.alerts import alert_events, get_alert
from querywatch.detector.adapters.db.outbox import enqueue_deliveries
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.delivery.endpoints import create_endpoint
from tests.api.server import ApiServer
from tests.ui.conftest import Console, screenshot, sign_in
from tests.ui.scenario import alert_id_of, attacker_story

pytestmark = pytest.mark.browser
RECEIVER = "http://127.0.0.1:9/querywatch"


@pytest.fixture
def with_delivery(dashboard: ApiServer) -> ApiServer:
    with transaction(dashboard.sessions) as session:
        create_endpoint(session=session, url=RECEIVER, allow_hosts=["127.0.0.1"])
        alert = get_alert(session=session, alert_id=alert_id_of(attacker_story()))
        assert alert is not None
        [opened] = alert_events(session=session, alert_id=alert.alert_id)
        assert len(enqueue_deliveries(session=session, alert=alert, event=opened)) == 1
    return dashboard


def test_admin_sees_endpoints_and_their_deliveries(
    with_delivery: ApiServer, page: Any, console: Console
) -> None:
    sign_in(page, with_delivery.base_url, with_delivery.admin_key)
    page.click("#nav a[data-view=webhooks]")
    card = page.wait_for_selector("#webhook-list li.webhook")
    assert RECEIVER in card.inner_text()
    row = page.wait_for_selector("#webhook-list tr.delivery")
    assert alert_id_of(attacker_story()) in row.inner_text() and "pending" in row.inner_text()
    screenshot(page, "webhooks")
    assert console.unexpected() == []


def test_a_reader_is_told_the_page_is_for_admins(
    with_delivery: ApiServer, page: Any, console: Console
) -> None:
    sign_in(page, with_delivery.base_url, with_delivery.reader_key)
    page.goto(f"{with_delivery.base_url}/ui/#/webhooks")
    assert "admin keys only" in page.wait_for_selector("#webhook-list li.empty").inner_text()
    assert console.unexpected() == []
