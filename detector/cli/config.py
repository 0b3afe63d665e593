"""``querywatch config show`` and ``querywatch doctor``: what is configured, and whether it works."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from querywatch.detector.cli.output import add_output_options, print_json
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.config.sources import config_file_from, setting_sources
from querywatch.detector.errors import EXIT_OK, EXIT_RUNTIME, ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")


def register(subparsers: Any) -> None:
    config = add_command(
        subparsers, "config", summary="show the effective settings and where each comes from"
    )
    actions = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = add_command(actions, "show", summary="every setting's value and source (secrets masked)")
    add_output_options(show)
    show.set_defaults(run=run_show)

    doctor = add_command(
        subparsers, "doctor", summary="reach the database and Kafka and report what is wrong"
    )
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each service")
    add_output_options(doctor)
    doctor.set_defaults(run=run_doctor)


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    rows = setting_sources(settings, config_file_from(args.config, os.environ), os.environ)
    if args.json:
        print_json("config", {"settings": rows})
        return EXIT_OK
    width = max(len(r["variable"]) for r in rows)
    for row in rows:
        print(f"{row['variable']:<{width}}  {as_variable(row['value']):<30}  ({row['source']})")
    return EXIT_OK


def as_variable(value: object) -> str:
    """A setting's value as one would write it in its environment variable (unset: ``-``).

    >>> [as_variable(v) for v in (None, True, 0.5, {"far": 0.1}, ["a"], "x")]
    ['-', 'true', '0.5', '{"far": 0.1}', '["a"]', 'x']
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class Check:
    """One doctor finding: what was checked, whether it works, and what to do if not."""

    name: str
    ok: bool
    detail: str
    hint: str | None = None


def check_database(settings: Settings) -> Check:
    from querywatch.detector.adapters.db.migrate import head_revision
    from querywatch.detector.adapters.db.session import (
        DatabaseError,
        current_revision,
        database_failure,
        make_engine,
    )

    try:
        engine = make_engine(settings.database)
    except ConfigError as exc:  # no database could be named
        return Check("database", False, str(exc), exc.hint)
    try:
        revision = current_revision(engine)
    except DatabaseError as exc:
        failure = database_failure(exc, engine.url)
        detail = str(failure) if failure is not None else f"cannot connect: {str(exc).splitlines()[0]}"
        return Check("database", False, detail, "check QUERYWATCH_DATABASE__URL")
    finally:
        engine.dispose()
    head = head_revision()
    if revision != head:
        return Check(
            "database",
            False,
            f"schema at {revision or 'base (empty)'}, expected {head}",
            "run `querywatch db upgrade`",
        )
    return Check("database", True, f"reachable, schema at {head}")


def check_kafka(settings: Settings, timeout: float) -> Check:
    if not settings.kafka.bootstrap_servers:
        return Check("kafka", True, "not configured: `querywatch up` starts an embedded broker", None)
    from querywatch.detector.adapters.kafka.admin import BrokerUnreachable, missing_topics, partition_count

    # The summaries topic too while campaigns are on: consumers publish to it, the aggregator reads it.
    summaries = settings.campaigns.summaries_topic_for(settings.kafka.topic)
    try:
        missing = missing_topics(
            settings.kafka, timeout=timeout, extra=(summaries,) if settings.campaigns.enabled else ()
        )
    except ConfigError as exc:  # no broker could be named
        return Check("kafka", False, str(exc), exc.hint)
    except BrokerUnreachable as exc:
        return Check(
            "kafka", False, str(exc), "check QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS and the security settings"
        )
    except Exception as exc:  # a broker that answered, then failed the listing
        return Check("kafka", False, f"{settings.kafka.bootstrap_servers}: {type(exc).__name__}: {exc}", None)
    if missing:
        return Check(
            "kafka",
            False,
            f"reachable, but topics missing: {', '.join(missing)}",
            "`querywatch consume` creates them, or create them with your cluster's tools",
        )
    if settings.campaigns.enabled and (count := partition_count(settings.kafka, summaries)) > 1:
        # A broker that creates topics on first use made it with its default count: each
        # aggregator then reads a share of the accounts, and the standby is active too.
        return Check(
            "kafka",
            False,
            f"{summaries} has {count} partitions; the campaign stage reads one, in order",
            f"delete it and let `querywatch consume` create it again with one partition "
            f"(or create it so yourself: {summaries}, 1 partition, cleanup.policy=compact)",
        )
    return Check("kafka", True, f"reachable at {settings.kafka.bootstrap_servers}, topics present")


def check_profiles(settings: Settings) -> Check:
    folder = settings.detection.profile_dir
    if folder is None:
        return Check("profiles", True, "none configured: profiles are built from each model's first events")
    path = Path(folder)
    if not path.is_dir():
        return Check(
            "profiles",
            False,
            f"{folder}: no such folder",
            "run `querywatch profile --out` or fix QUERYWATCH_DETECTION__PROFILE_DIR",
        )
    count = len(list(path.glob("*.qwprofile")))
    return Check("profiles", True, f"{folder}: {count} profile(s)")


def _read_database(settings: Settings, read: Callable[[Session], T]) -> T:
    """What ``read`` gets from the configured database, in one transaction."""
    from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction

    engine = make_engine(settings.database)
    try:
        with transaction(make_sessionmaker(engine)) as session:
            return read(session)
    finally:
        engine.dispose()


def check_groups(settings: Settings) -> Check:
    """Client states of one consumer group only: states are keyed by client, so two groups
    on one database would overwrite each other's (README, *Settings*: one group per database)."""
    from querywatch.detector.adapters.db.checkpoints import groups_with_states

    groups = _read_database(settings, lambda session: groups_with_states(session=session))
    group = settings.kafka.group_id
    others = sorted(g for g in groups if g != group)
    if others:
        listed = ", ".join(f"{g!r} ({groups[g]:,} stored)" for g in others)
        return Check(
            "groups",
            False,
            f"client states of other consumer groups than {group!r}: {listed}; the same client "
            "in two groups overwrites its state",
            "one group per database: give the other group its own database, or, if it is a former "
            "QUERYWATCH_KAFKA__GROUP_ID, delete its rows (DELETE FROM client_states WHERE group_id = '...')",
        )
    return Check("groups", True, f"{groups.get(group, 0):,} client states, all of group {group!r}")


def check_warmup(settings: Settings) -> Check:
    """Models whose events the group's consumers hold until they have a profile: a model of
    little traffic fills its warm-up slowly, and nothing of it is scored until then."""
    from querywatch.detector.adapters.db.checkpoints import load_states_keyed
    from querywatch.detector.adapters.kafka.partitions import HELD_EVENTS_PREFIX, LEGACY_HELD_EVENTS_KEY
    from querywatch.detector.engine.reference import unpack_events

    prefixes = [HELD_EVENTS_PREFIX, LEGACY_HELD_EVENTS_KEY]
    group = settings.kafka.group_id
    rows = _read_database(
        settings, lambda session: load_states_keyed(session=session, group_id=group, prefixes=prefixes)
    )
    events: Counter[str] = Counter()
    partitions: dict[str, set[int]] = {}  # a partition's held events may lie in several chunks
    for partition, blob in rows:
        try:
            per_model = Counter(e.model_id for e in unpack_events(blob))
        except ValueError as exc:
            return Check(
                "warm-up",
                False,
                f"the held events of partition {partition} (group {group!r}) cannot be read: {exc}",
                "a newer release wrote them, or the row is damaged: the consumer that takes the "
                "partition stops on it too; run a release that reads it, or delete that row of client_states",
            )
        events.update(per_model)
        for model_id in per_model:
            partitions.setdefault(model_id, set()).add(partition)
    if not events:
        return Check("warm-up", True, "no model warming up")
    target = settings.detection.warmup_events
    awaiting = _read_database(settings, _awaiting_answers)
    models = "; ".join(
        f"{model_id!r}: {events[model_id]:,} events held (partitions "
        f"{', '.join(map(str, sorted(partitions[model_id])))})"
        + (", its trusted profile awaiting their answers" if model_id in awaiting else "")
        for model_id in sorted(events)
    )
    return Check(
        "warm-up",
        True,
        f"{models} (at {target:,} of its own a consumer builds the model's profile, or completes a "
        "trusted one with their answers; until then nothing of the model is scored)",
    )


def _awaiting_answers(session: Session) -> set[str]:
    """Models whose newest stored profile is a trusted file of inputs alone (``answers`` pending)."""
    from querywatch.detector.adapters.db.profiles import model_summaries

    return {s.model_id for s in model_summaries(session=session) if s.answers == "pending"}


#: An aggregator behind the summaries topic and silent this long is said to have stopped: a
#: running one checkpoints within seconds of a summary (``campaigns`` work is per summary).
AGGREGATOR_SILENT_SECONDS = 300.0


def check_aggregator(settings: Settings, timeout: float) -> Check:
    """Whether an aggregator reads the summaries topic: stopped, campaign detection stops with
    no error anywhere (the consumers keep publishing), and doctor said all was well."""
    from datetime import UTC, datetime

    from querywatch.detector.adapters.db.checkpoints import stored_offset
    from querywatch.detector.adapters.kafka.admin import topic_end

    campaigns = settings.campaigns
    topic = campaigns.summaries_topic_for(settings.kafka.topic)
    try:
        end = topic_end(settings.kafka, topic, timeout=timeout)
    except Exception as exc:  # said by the kafka check already
        return Check("aggregator", False, f"the end of {topic} cannot be read: {exc}", None)
    stored = _read_database(
        settings,
        lambda session: stored_offset(
            session=session, group_id=campaigns.aggregator_group_id, topic=topic, partition=0
        ),
    )
    hint = "run `querywatch aggregate` (two: one active, one standby); `querywatch up` runs the stage itself"
    if stored is None:
        if end == 0:
            return Check("aggregator", True, f"no summary published to {topic} yet")
        return Check(
            "aggregator", False, f"{end:,} summaries in {topic} and no aggregator has read them", hint
        )
    offset, moved = stored
    behind = max(0, end - offset)
    age = (datetime.now(UTC) - moved).total_seconds()
    said = f"{behind:,} summaries behind {topic}'s end, last checkpoint {age:,.0f} s ago"
    if behind and age > AGGREGATOR_SILENT_SECONDS:
        return Check("aggregator", False, f"{said}: no aggregator reads them", hint)
    return Check("aggregator", True, said if behind else f"up to date with {topic} (offset {offset:,})")


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    checks = [check_database(settings), check_kafka(settings, args.timeout), check_profiles(settings)]
    if checks[0].ok:  # what the database holds, once it is reachable and migrated
        checks += [check_groups(settings), check_warmup(settings)]
        if checks[1].ok and settings.kafka.bootstrap_servers and settings.campaigns.enabled:
            checks.append(check_aggregator(settings, args.timeout))
    healthy = all(c.ok for c in checks)
    if args.json:
        print_json("doctor", {"ok": healthy, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            hint = f"\n    hint: {c.hint}" if c.hint and not c.ok else ""
            print(f"{'ok  ' if c.ok else 'FAIL'} {c.name:<9} {c.detail}{hint}")
    if not healthy and not args.json:
        print("querywatch: error: doctor found problems (see above)", file=sys.stderr)
    return EXIT_OK if healthy else EXIT_RUNTIME
