"""SQLAlchemy engine and session factory built from ``DatabaseSettings``, and the migration check.

SQLite (the default) gets WAL mode, a busy timeout and enforced foreign keys, so that the
API and the consumer can share one file; PostgreSQL is used as configured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy import URL, Engine, Select, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.config import DatabaseSettings
from querywatch.detector.config.database import shown_url
from querywatch.detector.errors import ConfigError, DatabaseNotMigrated, DatabaseUnreachable

#: The names the layers above use, so that SQLAlchemy is imported only in this package.
DatabaseEngine: TypeAlias = Engine
SessionFactory: TypeAlias = sessionmaker[Session]
#: Any failure of the database or of a statement (connection lost, constraint, ...).
DatabaseError = SQLAlchemyError
#: A value the database cannot store (e.g. a NUL character in PostgreSQL text).
UnstorableValue = DataError

__all__ = [
    "DatabaseEngine",
    "DatabaseError",
    "Session",
    "SessionFactory",
    "UnstorableValue",
    "check_migrated",
    "current_revision",
    "make_engine",
    "make_sessionmaker",
    "on_commit",
    "transaction",
    "where_equal",
]

#: Seconds a SQLite writer waits for another writer before failing.
SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(settings: DatabaseSettings) -> Engine:
    """A SQLAlchemy engine for ``settings.url`` (tuned for SQLite when it is one)."""
    url = database_url(settings.url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            echo=settings.echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, echo=settings.echo, pool_pre_ping=True)


def database_url(text: str) -> URL:
    """``database.url`` parsed, or a ``ConfigError`` that says what is wrong with it before any
    connection: not a URL, a store querywatch does not speak, or a SQLite file in a folder
    that does not exist. ``postgres://`` (what many platforms hand out) reads as
    ``postgresql://``, which SQLAlchemy no longer takes for it.

    >>> database_url("postgres://qw@db:5432/qw").render_as_string()
    'postgresql://qw@db:5432/qw'
    >>> database_url("mysql://root@db/qw")
    Traceback (most recent call last):
    ...
    querywatch.detector.errors.ConfigError: database.url: querywatch stores its data in ... not mysql
    """
    example = "sqlite:///path/to/querywatch.db or postgresql://user@host:5432/database"
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError("database.url is not a database URL", hint=example) from None
    if url.get_backend_name() == "postgres":
        url = url.set(drivername=url.drivername.replace("postgres", "postgresql", 1))
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"database.url: querywatch stores its data in SQLite or PostgreSQL, not {backend}", hint=example
        )
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(url.database).parent
        if not folder.is_dir():
            raise ConfigError(
                f"database.url: the SQLite file's folder {folder} does not exist", hint=f"mkdir -p {folder}"
            )
    return url


def database_failure(exc: BaseException, url: URL | str) -> DatabaseUnreachable | None:
    """``exc`` said as a failure of the database, if it is one (unreachable, refused, its file
    not openable): the driver's first line, with the URL it was asked of, password hidden."""
    if not isinstance(exc, OperationalError):
        return None
    url = database_url(url) if isinstance(url, str) else url
    cause = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
    return DatabaseUnreachable(
        f"database {safe_url(url)}: {cause}",
        hint="check QUERYWATCH_DATABASE__URL; `querywatch doctor` tests the connection",
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # a no-op for in-memory databases
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (they are handed to the API layer)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session, committed if the block succeeds and rolled back if it raises."""
    with factory() as session, session.begin():
        yield session


def on_commit(session: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once ``session``'s current transaction commits (never if it rolls back)."""
    pending = session.info.get(_ON_COMMIT)
    if pending is None:
        pending = session.info[_ON_COMMIT] = []
        event.listen(session, "after_commit", _run_pending)
        event.listen(session, "after_rollback", _drop_pending)
    pending.append(action)


_ON_COMMIT = "querywatch.on_commit"


def _run_pending(session: Session) -> None:
    actions, session.info[_ON_COMMIT] = session.info[_ON_COMMIT], []
    for action in actions:
        action()


def _drop_pending(session: Session) -> None:
    session.info[_ON_COMMIT] = []


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_migrated(engine: Engine) -> None:
    """Raise ``DatabaseNotMigrated`` unless the schema is at this version's head revision
    (``DatabaseUnreachable`` if the database cannot be reached to tell).

    Services call this at start, so that they stop with an instruction instead of failing
    later on a missing table.
    """
    from querywatch.detector.adapters.db.migrate import head_revision

    head = head_revision()
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        failure = database_failure(exc, engine.url)
        if failure is not None:  # not reached at all: its schema is not the question
            raise failure from exc
        raise DatabaseNotMigrated(f"cannot read the schema version of {safe_url(engine.url)}: {exc}") from exc
    if current != head:
        state = "has no querywatch schema" if current is None else f"is at revision {current}"
        shown = safe_url(engine.url)
        raise DatabaseNotMigrated(f"the database {shown} {state}, this querywatch needs {head}")


def safe_url(url: URL) -> str:
    """``url`` as querywatch prints it (``config.database.shown_url``): every password hidden,
    a ``password`` in its query too, which SQLAlchemy's own ``hide_password`` leaves in clear.

    >>> safe_url(make_url("postgresql://db/qw?user=qw&password=s3cret"))
    'postgresql://db/qw?password=***&user=qw'
    """
    return shown_url(url.render_as_string(hide_password=False))


def where_equal(query: Select[Any], *conditions: tuple[Any, object | None]) -> Select[Any]:
    """Add ``column == value`` for every (column, value) pair whose value is not None:
    the optional filters of the list endpoints."""
    for column, value in conditions:
        if value is not None:
            query = query.where(column == value)
    return query


#: Errors that mean the database is away (connection refused or lost, server shutting
#: down), which a consumer outlives by retrying; the other adapters catch these without
#: importing SQLAlchemy.
DATABASE_ERRORS: tuple[type[Exception], ...] = (DBAPIError,)
