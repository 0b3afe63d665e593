"""Settings section: where alerts, client risk, checkpoints and the webhook outbox are stored."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from pydantic import Field

from querywatch.detector.config.base import Section

#: Query parameters of a database URL that hold a secret (libpq takes a password there too).
SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})


class DatabaseSettings(Section):
    """Where alerts, client risk, checkpoints and the webhook outbox are stored."""

    url: str = Field(
        "sqlite:///querywatch.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production.",
    )
    echo: bool = Field(False, description="Log every SQL statement.")


def shown_url(url: str) -> str:
    """``url`` as querywatch prints it (``config show``, ``up``, errors): each password, in
    its user part or its query, as ``***``, so that which database is used still shows.

    >>> shown_url("postgresql+psycopg://qw:s3cret@db:5432/qw?sslmode=require")
    'postgresql+psycopg://qw:***@db:5432/qw?sslmode=require'
    >>> shown_url("postgresql://db/qw?user=qw&password=s3cret"), shown_url("sqlite:///var/lib/qw.db")
    ('postgresql://db/qw?user=qw&password=***', 'sqlite:///var/lib/qw.db')
    """
    parts = urlsplit(url)
    if parts.password is not None:
        url = url.replace(parts.netloc, f"{parts.username or ''}:***@{parts.netloc.rsplit('@', 1)[1]}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    hidden = [(key, "***" if key.lower() in SECRET_QUERY_KEYS else value) for key, value in pairs]
    if hidden != pairs:
        url = url.replace(parts.query, "&".join(f"{key}={value}" for key, value in hidden), 1)
    return url
