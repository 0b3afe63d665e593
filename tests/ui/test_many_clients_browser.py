"""With 100,000 tracked clients the leaderboard still asks for, and holds, one page of 50."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import insert

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import ClientRow
from tests.api.server import running_api
from tests.storage.databases import migrated_database
from tests.ui.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CLIENTS = 100_000


def test_leaderboard_loads_one_page_of_100k_clients(tmp_path: Path, page: Any) -> None:
    seen = datetime(2026, 9, 21, tzinfo=UTC)
    rows = [
        {
            "client_id": f"acct-{i:07d}",
            "model_id": "digits-v1",
            "risk": ((i * 7919) % CLIENTS) / CLIENTS,
            "reasons": [],
            "features": {},
            "queries": 10,
            "first_seen": seen,
            "last_seen": seen,
            "status": "normal",
            "updated_at": seen,
        }
        for i in range(CLIENTS)
    ]
    with migrated_database("sqlite", tmp_path) as settings:
        engine = make_engine(settings.database)
        with transaction(make_sessionmaker(engine)) as session:
            session.execute(insert(ClientRow), rows)
        engine.dispose()
        with running_api(settings) as server:
            requests: list[str] = []
            sizes: list[int] = []
            page.on("request", lambda r: requests.append(r.url) if "/v1/clients" in r.url else None)
            page.on(
                "response",
                lambda r: (
                    sizes.append(len(r.json()["items"])) if urlparse(r.url).path == "/v1/clients" else None
                ),
            )
            sign_in(page, server.base_url, server.reader_key)
            page.wait_for_selector("#leaderboard tbody tr[data-client-id]")
            assert page.locator("#leaderboard tbody tr[data-client-id]").count() == 50
            best = max(range(CLIENTS), key=lambda i: (i * 7919) % CLIENTS)  # risks are all distinct
            assert page.get_attribute("#leaderboard tbody tr[data-client-id]", "data-client-id") == (
                f"acct-{best:07d}"
            )
            page.click("#next-page")
            page.wait_for_selector(".pager .page:text-is('Page 2')")
            page.wait_for_selector("#leaderboard tbody tr[data-client-id] .rank:text-is('51')")

    assert requests, "the page never asked for clients"
    for url in requests:
        assert parse_qs(urlparse(url).query)["limit"] == ["50"], url
    assert sizes and max(sizes) == 50
