"""``querywatch db upgrade`` / ``querywatch db downgrade``: migrate the configured database."""

from __future__ import annotations

import argparse
from typing import Any

from querywatch.detector.adapters.db import migrate
from querywatch.detector.adapters.db.session import current_revision, make_engine
from querywatch.detector.cli.output import add_output_options, print_json
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings


def register(subparsers: Any) -> None:
    db = add_command(
        subparsers, "db", summary="create or migrate the database schema (QUERYWATCH_DATABASE__URL)"
    )
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")

    up = add_command(actions, "upgrade", summary="migrate to the newest schema (or to --revision)")
    up.add_argument("--revision", default="head", help="target revision (default: head)")
    up.set_defaults(run=run_upgrade)

    down = add_command(actions, "downgrade", summary="step the schema back (default: one revision)")
    down.add_argument("--revision", default="-1", help="target revision; 'base' drops every table")
    down.set_defaults(run=run_downgrade)

    current = add_command(actions, "current", summary="print the revision the database is at")
    add_output_options(current)
    current.set_defaults(run=run_current)


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    migrate.upgrade(settings, args.revision)
    print(f"database at revision {_revision(settings)}")
    return 0


def run_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    migrate.downgrade(settings, args.revision)
    print(f"database at revision {_revision(settings)}")
    return 0


def run_current(args: argparse.Namespace, settings: Settings) -> int:
    revision, head = _revision(settings), migrate.head_revision()
    if args.json:
        print_json("db", {"revision": revision, "head": head, "current": revision == head})
    else:
        print(f"{revision} (head: {head})")
    return 0


def _revision(settings: Settings) -> str:
    engine = make_engine(settings.database)
    try:
        return current_revision(engine) or "base (empty)"
    finally:
        engine.dispose()
