from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.server import ApiServer, running_api
from tests.storage.databases import migrated_database


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiServer]:
    """The real querywatch API on a migrated SQLite file."""
    with migrated_database("sqlite", tmp_path) as settings, running_api(settings) as server:
        yield server
