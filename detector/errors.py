"""The one exception tree of querywatch: every error a user can meet derives from QuerywatchError."""

from __future__ import annotations


class QuerywatchError(Exception):
    """Root of every error querywatch raises on purpose."""


class InvalidEvent(QuerywatchError):
    """An inference-log event that must not reach the detectors.

    ``reason`` is a short, stable code (used as a metric label and dead-letter reason);
    ``detail`` says what exactly was wrong, for a human.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ProfileError(QuerywatchError):
    """A reference profile is missing, unreadable or does not fit the model's inputs."""


class ConfigError(QuerywatchError):
    """A setting has a value querywatch cannot work with."""


class DatabaseNotMigrated(QuerywatchError):
    """The database schema is missing or older than this version of querywatch."""
