"""Alembic environment: the database comes from querywatch's Settings, never from alembic.ini.

``querywatch.detector.adapters.db.migrate`` passes the Settings (and may pass an open connection) in
``config.attributes``; run from the ``alembic`` command, Settings are read from the
environment. SQLite gets batch mode, so that ALTERs become table rebuilds.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.db.tables import Base
from querywatch.detector.config import Settings

config = context.config
target_metadata = Base.metadata


def _settings() -> Settings:
    settings = config.attributes.get("settings")
    return settings if isinstance(settings, Settings) else Settings()


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _foreign_keys(connection, "OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        _foreign_keys(connection, "ON")
        if broken:
            raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")


def _foreign_keys(connection: Connection, state: str) -> None:
    """SQLite's foreign keys, set outside any transaction (inside one the pragma does nothing).

    A batch migration rebuilds a table: copy, DROP, rename. With foreign keys on (every
    querywatch connection turns them on) the DROP deletes the rows of the tables that refer to
    it ON DELETE CASCADE: 0003's rebuild of ``alerts`` deleted every webhook delivery, pending
    ones too. Alembic's batch documentation turns them off for the rebuild; the check after
    it says whether the rebuilt tables still hold together.
    """
    connection.exec_driver_sql(f"PRAGMA foreign_keys={state}")
    connection.commit()


def run_offline() -> None:
    url = _settings().database.url
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = make_engine(_settings().database)
    try:
        with engine.connect() as fresh:
            _configure(fresh)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
