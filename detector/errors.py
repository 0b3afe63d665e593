"""The one exception tree of querywatch: every error a user can meet derives from QuerywatchError.

Each error carries the exit code the command line ends with (documented in the README's CLI
reference) and, where there is one, a hint that says what to do about it.
"""

from __future__ import annotations

#: Exit codes of the ``querywatch`` command.
EXIT_OK = 0
EXIT_RUNTIME = 1  # the work failed: a service is unreachable, a port is taken, a database is not migrated
EXIT_USAGE = 2  # the command line or a setting is wrong (argparse uses 2 as well)
EXIT_INPUT = 3  # an input or output path, or a file's content, cannot be used
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_BROKEN_PIPE = 141  # the reader of the output went away, `querywatch … | head` (128 + SIGPIPE)


class QuerywatchError(Exception):
    """Root of every error querywatch raises on purpose."""

    exit_code = EXIT_RUNTIME

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        self.hint = hint


class UsageError(QuerywatchError):
    """An option or a setting has a value querywatch cannot work with."""

    exit_code = EXIT_USAGE


class InputError(QuerywatchError):
    """A file or folder named on the command line is missing, unreadable or unusable."""

    exit_code = EXIT_INPUT


class InvalidEvent(QuerywatchError):
    """An inference-log event that must not reach the detectors.

    ``reason`` is a short, stable code (used as a metric label and dead-letter reason);
    ``detail`` says what exactly was wrong, for a human.
    """

    exit_code = EXIT_INPUT

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ProfileError(InputError):
    """A reference profile is missing, unreadable or does not fit the model's inputs."""


class ConfigError(UsageError):
    """A setting has a value querywatch cannot work with."""


class DatabaseUnreachable(QuerywatchError):
    """The database cannot be reached or opened (its schema is not the question then)."""


class DatabaseNotMigrated(QuerywatchError):
    """The database schema is missing or older than this version of querywatch."""

    def __init__(self, *args: object, hint: str | None = "run `querywatch db upgrade` first") -> None:
        super().__init__(*args, hint=hint)
