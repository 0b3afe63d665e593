from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.config import Settings
from tests.storage.databases import KINDS, migrated_database, temporary_database


@pytest.fixture(params=KINDS)
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_database_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    with temporary_database(db_kind, tmp_path) as url:
        yield url


@pytest.fixture
def migrated_settings(db_kind: str, tmp_path: Path) -> Iterator[Settings]:
    with migrated_database(db_kind, tmp_path) as settings:
        yield settings


@pytest.fixture
def engine(migrated_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(migrated_settings.database)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)
