"""Run the Alembic migrations shipped in the ``migrations`` package, from Python.

The CLI (``querywatch db upgrade``) and the tests call these; no alembic.ini path has to be
known by the user, and the database URL comes from the same Settings as everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from querywatch.detector.config import Settings
from querywatch.detector.errors import UsageError

#: The scripts shipped as ``querywatch.migrations`` (the repository's ``migrations/`` folder).
MIGRATIONS_DIR = Path(str(files("querywatch.migrations")))


def alembic_config(settings: Settings) -> Config:
    """An Alembic ``Config`` for the shipped scripts, carrying ``settings`` to env.py."""
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings
    return config


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def head_revision() -> str:
    """The newest revision this version of querywatch knows."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError("no migration scripts found in " + str(MIGRATIONS_DIR))
    return head


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the newest by default)."""
    _migrate(command.upgrade, settings, revision)


def downgrade(settings: Settings, revision: str = "-1") -> None:
    """Step the database back to ``revision`` (``base`` removes every querywatch table)."""
    _migrate(command.downgrade, settings, revision)


def _migrate(step: Callable[[Config, str], None], settings: Settings, revision: str) -> None:
    """Run ``step``; a revision Alembic cannot go to (unknown, or on the wrong side of the
    database's) is a usage error that lists the ones there are, not Alembic's own exception."""
    try:
        step(alembic_config(settings), revision)
    except CommandError as exc:
        known = [script.revision for script in _scripts().walk_revisions()]
        raise UsageError(
            f"cannot migrate to {revision!r}: {exc}",
            hint=f"revisions are base, {', '.join(reversed(known))} and head; -N steps back N",
        ) from None
