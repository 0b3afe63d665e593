"""The dashboard's Refused page: clients whose events were refused, which the leaderboard
cannot show (a refused event is never scored)."""

from __future__ import annotations

from typing import Any

import pytest

from querywatch.detector.adapters.db.dead_letters import save_dead_letters
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.kafka.deadletters import DeadLetter
from tests.api.server import ApiServer
from tests.ui.conftest import Console, screenshot, sign_in
from tests.ui.scenario import MODEL

pytestmark = pytest.mark.browser


def test_refused_clients_are_listed_most_first(dashboard: ApiServer, page: Any, console: Console) -> None:
    refused = [("pad-thief", "wrong_dimension")] * 3 + [("inf-client", "non_finite")]
    with transaction(dashboard.sessions) as session:
        save_dead_letters(
            session=session,
            letters=[
                DeadLetter("logs", 0, i, reason, "detail", b"{}", None, client, MODEL)
                for i, (client, reason) in enumerate(refused)
            ],
        )
    sign_in(page, dashboard.base_url, dashboard.reader_key)
    page.click("#nav a[data-view=refused]")
    page.wait_for_selector("#refused-rows tr.refused-client")
    rows = [r.inner_text() for r in page.query_selector_all("#refused-rows tr.refused-client")]
    assert [r.split("\t")[0] for r in rows] == ["pad-thief", "inf-client"]
    assert "wrong_dimension 3" in rows[0] and MODEL in rows[0]
    screenshot(page, "refused")
    page.click("#refused-rows a >> text=pad-thief")  # its client page says why it has no risk
    page.wait_for_selector("p.error:has-text('3 were refused')")
    assert console.unexpected("404") == []
