"""Settings section: where alerts, client risk, checkpoints and the webhook outbox are stored."""

from __future__ import annotations

from pydantic import Field

from querywatch.detector.config.base import Section


class DatabaseSettings(Section):
    """Where alerts, client risk, checkpoints and the webhook outbox are stored."""

    url: str = Field(
        "sqlite:///querywatch.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production.",
    )
    echo: bool = Field(False, description="Log every SQL statement.")
