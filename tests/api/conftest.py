from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.server import ApiServer, running_api
from tests.storage.databases import KINDS, migrated_database


@pytest.fixture(params=KINDS)
def api_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiServer]:
    """A live API on a migrated SQLite or PostgreSQL database, with an admin and a reader key."""
    with migrated_database(str(request.param), tmp_path) as settings, running_api(settings) as server:
        yield server


@pytest.fixture
def http(api_server: ApiServer) -> Iterator[httpx.Client]:
    """An HTTP client on the live API, without a key (pass headers per request)."""
    with httpx.Client(base_url=api_server.base_url, timeout=10) as client:
        yield client
