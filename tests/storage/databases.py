"""Throw-away databases for tests: a SQLite file or a uniquely named PostgreSQL database.

Other test packages import these (``from tests.storage.databases import temporary_database``)
so that every test run gets its own database and parallel runs never collide.
PostgreSQL is reached at ``QUERYWATCH_TEST_POSTGRES_URL`` (default: the local server, user
postgres, database test); the helper creates ``qw_<random>`` next to it and drops it after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.config import ApiSettings, DatabaseSettings, Settings

ADMIN_URL = os.environ.get(
    "QUERYWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
KINDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


@contextmanager
def temporary_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database of ``kind`` ('sqlite' or 'postgres'), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'querywatch.db'}"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    name = f"qw_{uuid.uuid4().hex[:16]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {ADMIN_URL}: {exc.orig}")
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def settings_for(url: str, **sections: object) -> Settings:
    """Settings pointing at ``url``; other sections may be given as keyword arguments.

    Tests write client rows behind the API's back (as the consumer does), so the API's
    decision cache is off unless a test sets it (``tests/api/test_decision_cache.py``)."""
    sections.setdefault("api", ApiSettings(decision_cache_seconds=0))
    return Settings.model_validate({"database": DatabaseSettings.model_validate({"url": url}), **sections})


@contextmanager
def migrated_database(kind: str, tmp_path: Path) -> Iterator[Settings]:
    """A temporary database at the newest schema, as Settings."""
    with temporary_database(kind, tmp_path) as url:
        settings = settings_for(url)
        upgrade(settings)
        yield settings
