"""The ``querywatch`` command: one subcommand per job, each registered by its own module.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
subcommand(s) with ``set_defaults(run=callable)``; the callable takes the parsed
arguments and the Settings and returns an exit code. A command checks its paths and ports
before it imports the engine or starts work, so a typo fails in a fraction of a second.
Every failure ends in one ``querywatch: error: ...`` line with a hint and a documented exit
code (``querywatch.detector.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from querywatch.detector import __version__
from querywatch.detector.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_RUNTIME, QuerywatchError

#: Each subcommand and the module that registers it. Only the module of the command being
#: run is imported (the engine alone pulls in scikit-learn, river and scipy: seconds).
COMMANDS: dict[str, str] = {
    "up": "querywatch.detector.cli.up",
    "replay": "querywatch.detector.cli.replay",
    "profile": "querywatch.detector.cli.replay",
    "simulate": "querywatch.detector.cli.simulate",
    "consume": "querywatch.detector.cli.consume",
    "produce": "querywatch.detector.cli.consume",
    "aggregate": "querywatch.detector.cli.aggregate",
    "dispatch": "querywatch.detector.cli.dispatch",
    "serve": "querywatch.detector.cli.api",
    "apikey": "querywatch.detector.cli.api",
    "db": "querywatch.detector.cli.db",
    "config": "querywatch.detector.cli.config",
    "doctor": "querywatch.detector.cli.config",
    "dead-letters": "querywatch.detector.cli.dead_letters",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="querywatch",
        description="Catch model extraction (model theft by querying) in inference logs.",
        epilog="Exit codes: 0 success, 1 runtime error, 2 usage or setting error, 3 input error, "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"querywatch {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings file (default: $QUERYWATCH_CONFIG_FILE); the environment overrides it",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def warn_unknown_variables() -> None:
    """One warning per ``QUERYWATCH_*`` variable that names no setting (pydantic ignores them)."""
    from querywatch.detector.config.doc import settings_rows
    from querywatch.detector.config.sources import unknown_variables

    known = [name for name, _default, _text in settings_rows()]
    for name, close in unknown_variables(os.environ, known):
        hint = f"; did you mean {close}?" if close else ""
        print(f"querywatch: warning: {name} is not a setting and is ignored{hint}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments  # accepted after the command too
    arguments = [a for a in arguments if a != "--debug"]
    command = next((a for a in arguments if a in COMMANDS), None)
    module = COMMANDS.get(command or "")
    args = build_parser((module,) if module else COMMAND_MODULES).parse_args(arguments)
    args.debug = debug
    settings = None
    try:
        from querywatch.detector.config.sources import load_settings

        warn_unknown_variables()
        settings = load_settings(args.config)
        return int(args.run(args, settings) or 0)
    except QuerywatchError as exc:
        if args.debug:
            traceback.print_exc()
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        print(f"querywatch: error: {exc}{hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Stop quietly, as Unix tools do; stdout goes to /dev/null so that flushing it at exit
        # does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug or an unforeseen failure: one line, the traceback on request
        if args.debug:
            traceback.print_exc()
        try:
            known = _service_failure(exc, settings)
        except Exception:  # never let the wording of a failure hide it
            known = None
        if known is not None:
            print(f"querywatch: error: {known} (hint: {known.hint})", file=sys.stderr)
            return known.exit_code
        print(
            f"querywatch: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


def _service_failure(exc: Exception, settings: Any) -> QuerywatchError | None:
    """A database or a broker that cannot be reached, said as such (only through a library
    that is loaded at all: a command that never touched one has no such failure)."""
    if settings is None:
        return None
    if "sqlalchemy" in sys.modules:
        from querywatch.detector.adapters.db.session import database_failure

        known = database_failure(exc, settings.database.url)
        if known is not None:
            return known
    if "kafka" in sys.modules:
        from querywatch.detector.adapters.kafka.admin import broker_failure

        return broker_failure(exc, settings.kafka)
    return None
