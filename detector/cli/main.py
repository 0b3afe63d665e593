"""The ``querywatch`` command: one subcommand per job, each registered by its own module.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its
subcommand(s) with ``set_defaults(run=callable)``; the callable takes the parsed
arguments and the Settings and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from querywatch.detector.config import Settings
from querywatch.detector.errors import QuerywatchError

#: Each subcommand and the module that registers it. Only the module of the command being
#: run is imported (the engine alone pulls in scikit-learn, river and scipy: seconds).
COMMANDS: dict[str, str] = {
    "up": "querywatch.detector.cli.up",
    "replay": "querywatch.detector.cli.replay",
    "profile": "querywatch.detector.cli.replay",
    "simulate": "querywatch.detector.cli.simulate",
    "consume": "querywatch.detector.cli.consume",
    "produce": "querywatch.detector.cli.consume",
    "dispatch": "querywatch.detector.cli.dispatch",
    "serve": "querywatch.detector.cli.api",
    "apikey": "querywatch.detector.cli.api",
    "db": "querywatch.detector.cli.db",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="querywatch",
        description="Catch model extraction (model theft by querying) in inference logs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in arguments if not a.startswith("-")), None)
    module = COMMANDS.get(command or "")
    args = build_parser((module,) if module else COMMAND_MODULES).parse_args(arguments)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"querywatch: error: a QUERYWATCH_* setting is invalid:\n{exc}", file=sys.stderr)
        return 2
    try:
        return int(args.run(args, settings) or 0)
    except QuerywatchError as exc:
        print(f"querywatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
