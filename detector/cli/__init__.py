"""The ``querywatch`` command: one module per command group, the all-in-one runner.

``main`` imports only the module of the command being run, so ``--help`` stays fast. On
the base install (the serving-side client only) every command needs the engine, so the
command says which install it needs instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from querywatch.detector.errors import EXIT_USAGE

#: Distributions of the ``server`` extra whose absence means "the base install only".
_SERVER_MODULES = ("pydantic", "pydantic_settings", "numpy", "sqlalchemy", "fastapi", "sklearn")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from querywatch.detector.cli.commands import main as run

        return run(argv)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in _SERVER_MODULES:
            raise
        print(
            f"querywatch: this is the base install (the serving tier's client library; {exc.name} is "
            "missing). The commands need the engine: pip install 'querywatch[server]'",
            file=sys.stderr,
        )
        return EXIT_USAGE


__all__ = ["main"]
