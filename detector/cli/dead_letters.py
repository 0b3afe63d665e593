"""``querywatch dead-letters redrive|purge``: send stored dead letters back, or drop old ones.

A dead letter keeps the original bytes of a message the consumer refused. Once the cause
is fixed (a profile rebuilt, a limit raised, a producer repaired) ``redrive`` sends those
bytes back to the inference-log topic, keyed by client as a producer would, and deletes
each row only after the broker acknowledged it: a crash in between sends a message twice,
which the consumer's request-id filter drops, never loses one. A message still invalid is
dead-lettered again. ``purge`` enforces the retention (inputs.dead_letter_retention_days).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer

from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db.dead_letters import (
    dead_letters_to_redrive,
    delete_dead_letters,
    purge_dead_letters,
)
from querywatch.detector.adapters.db.session import (
    check_migrated,
    make_engine,
    make_sessionmaker,
    transaction,
)
from querywatch.detector.adapters.db.tables import utcnow
from querywatch.detector.adapters.kafka.client_config import producer_kwargs
from querywatch.detector.adapters.kafka.producer import produce_lines
from querywatch.detector.cli.checks import count, days
from querywatch.detector.cli.output import add_output_options, print_json
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.errors import UsageError

BATCH = 500


def register(subparsers: Any) -> None:
    letters = add_command(
        subparsers,
        "dead-letters",
        summary="re-drive stored dead letters to the inference-log topic, or purge old ones",
    )
    actions = letters.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")
    redrive = add_command(
        actions,
        "redrive",
        summary="send stored dead letters back to the inference-log topic, then delete them",
        description="Send the original bytes of stored dead letters (oldest first; all reasons but "
        "oversized, or --reason) back to kafka.topic keyed by client, and delete each row once "
        "the broker acknowledged it.",
    )
    redrive.add_argument(
        "--reason", action="append", default=[], help="only this reason (repeatable; default: all)"
    )
    redrive.add_argument("--limit", type=count, default=None, help="at most this many (default: all)")
    add_output_options(redrive)
    redrive.set_defaults(run=run_redrive)
    purge = add_command(
        actions,
        "purge",
        summary="delete dead letters older than the retention (inputs.dead_letter_retention_days)",
    )
    purge.add_argument("--older-than-days", type=days, default=None, help="override the retention")
    add_output_options(purge)
    purge.set_defaults(run=run_purge)


def run_redrive(args: argparse.Namespace, settings: Settings) -> int:
    from querywatch.detector.engine.events import REASONS  # here: the engine's import is not cheap

    unknown = sorted(set(args.reason) - set(REASONS))
    if unknown:  # it would match no row, and re-drive nothing without a word
        raise UsageError(
            f"--reason {', '.join(unknown)}: no such reason", hint=f"reasons: {', '.join(REASONS)}"
        )
    database = make_engine(settings.database)
    check_migrated(database)  # a database never upgraded: said so, not as "no such table"
    sessions = make_sessionmaker(database)
    producer = KafkaProducer(**producer_kwargs(settings.kafka, role="redrive"))
    sent, last = 0, 0
    try:
        while args.limit is None or sent < args.limit:
            size = BATCH if args.limit is None else min(BATCH, args.limit - sent)
            with transaction(sessions) as session:
                rows = dead_letters_to_redrive(
                    session=session, reasons=args.reason, limit=size, after_id=last
                )
            if not rows:
                break
            produce_lines(producer, settings.kafka.topic, [raw for _id, raw in rows])
            with transaction(sessions) as session:
                delete_dead_letters(session=session, ids=[i for i, _raw in rows])
                audit.record(  # stored rows leave the database: who sent them where, as every deletion
                    session=session,
                    actor="cli",
                    action="dead_letters.redrive",
                    target=f"topic:{settings.kafka.topic}",
                    detail={"count": len(rows), "first_id": rows[0][0], "last_id": rows[-1][0]},
                )
            sent += len(rows)
            last = rows[-1][0]
    finally:
        producer.close()
        database.dispose()
    if args.json:
        print_json("dead-letters", {"action": "redrive", "count": sent, "topic": settings.kafka.topic})
    else:
        print(f"re-drove {sent} dead letters to {settings.kafka.topic}")
    return 0


def run_purge(args: argparse.Namespace, settings: Settings) -> int:
    days = (
        args.older_than_days
        if args.older_than_days is not None
        else settings.inputs.dead_letter_retention_days
    )
    database = make_engine(settings.database)
    try:
        check_migrated(database)
        with transaction(make_sessionmaker(database)) as session:
            removed = purge_dead_letters(session=session, before=_days_ago(days))
            audit.record(
                session=session,
                actor="cli",
                action="dead_letters.purge",
                target="dead_letters",
                detail={"count": removed, "older_than_days": days},
            )
    finally:
        database.dispose()
    if args.json:
        print_json("dead-letters", {"action": "purge", "count": removed, "older_than_days": days})
    else:
        print(f"purged {removed} dead letters older than {days:g} days")
    return 0


def _days_ago(days: float) -> datetime:
    """Now less ``days``; before year 1 (``--older-than-days 1000000``: keep everything) the
    earliest time there is, older than every row, instead of an OverflowError."""
    try:
        return utcnow() - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)
