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

from detector.config import Settings
from detector.errors import QuerywatchError

COMMAND_MODULES: tuple[str, ...] = (
    "detector.replay_cli",
    "detector.storage_cli",
    "detector.api_cli",
    "detector.simulate_cli",
    "detector.up_cli",
    "detector.consume_cli",
    "detector.webhooks_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="querywatch",
        description="Catch model extraction (model theft by querying) in inference logs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        return int(args.run(args, settings) or 0)
    except QuerywatchError as exc:
        print(f"querywatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
