"""``querywatch simulate``: demo traffic into a JSON Lines file or straight into the broker."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from querywatch.detector.cli.checks import count, distinct_outputs, positive_number, writable_file
from querywatch.detector.cli.output import add_output_options, print_json
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.errors import ConfigError

#: ``querywatch.detector.simulate.victim.VICTIMS``' names, spelled out so that the parser is
#: built without importing scikit-learn (a test keeps the two the same).
VICTIM_NAMES = ("digits", "tabular", "wide", "binary")
#: Clients of a hard kind named without a count (``--hard whatif``).
HARD_DEFAULT = 4


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers,
        "simulate",
        summary="generate demo traffic (benign clients and model thieves) against a shipped model",
        description="Simulate clients querying a shipped model (--victim: the digits classifier, "
        "a random forest on a 16-input table, a neural network on 128 inputs, or gradient-boosted trees "
        "answering yes or no on a 10-input table). Writes a JSON Lines trace "
        "(--out) and its ground truth (--truth), and/or produces the events into the inference-log "
        "topic of a broker (--bootstrap-servers or QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS).",
    )
    parser.add_argument(
        "--victim",
        choices=VICTIM_NAMES,
        default="digits",
        help="model the clients query: digits (64 inputs, model id digits-v1; the default), "
        "tabular (16 inputs, risk-table-v1), wide (128 inputs, embedding-v1) or binary (10 inputs, "
        "two classes, fraud-v1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same trace)")
    parser.add_argument("--benign", type=int, default=40, help="benign clients (default 40)")
    parser.add_argument("--attackers", type=int, default=5, help="attacking clients (default 5)")
    parser.add_argument(
        "--campaign-accounts",
        type=count,
        default=0,
        metavar="N",
        help="also one JbDA theft dealt round-robin over N small accounts (truth family 'campaign')",
    )
    parser.add_argument(
        "--org-accounts",
        type=count,
        default=0,
        metavar="N",
        help="also N benign accounts of one organisation, each on its own classes (family 'organisation')",
    )
    parser.add_argument(
        "--hard",
        type=hard_traffic,
        default={},
        metavar="KIND[=N],...",
        help="also N benign clients (default 4) of each hard kind: whatif (analysts sweeping one or "
        "two fields of a record across their range), zero_filled (records with fields missing, sent "
        "as 0), missing (sent as null); truth family KIND",
    )
    parser.add_argument(
        "--dilute",
        type=count,
        default=0,
        metavar="N",
        help="every attacker sends N natural queries after each stolen one (truth 'dilution': '1:N')",
    )
    parser.add_argument(
        "--early",
        action="store_true",
        help="every attacker starts with the trace, inside a new model's warm-up (truth 'early')",
    )
    parser.add_argument(
        "--hours", type=positive_number, default=24.0, help="trace length in event time (default 24)"
    )
    parser.add_argument(
        "--scale", type=positive_number, default=1.0, help="multiply every client's query volume"
    )
    parser.add_argument(
        "--families",
        default=None,
        help="comma-separated attack families, cycled over the attackers (default: every family)",
    )
    parser.add_argument(
        "--start",
        default=None,
        help="RFC 3339 start of the trace, or 'now' (default: fixed date for files; "
        "'--hours' before now when producing)",
    )
    parser.add_argument(
        "--out", metavar="FILE.jsonl", help="write the events here, one per line (gzip'd if it ends in .gz)"
    )
    parser.add_argument(
        "--truth", metavar="FILE.json", help="write the ground truth (role, family, victim) here"
    )
    parser.add_argument("--bootstrap-servers", help="produce to this broker (overrides the setting)")
    parser.add_argument("--topic", help="topic to produce to (default: kafka.topic)")
    parser.add_argument(
        "--rate", type=float, default=None, help="events per second when producing (default: unpaced)"
    )
    add_output_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    kafka = settings.kafka.model_copy(
        update={
            "bootstrap_servers": args.bootstrap_servers or settings.kafka.bootstrap_servers,
            "topic": args.topic or settings.kafka.topic,
        }
    )
    # The configured broker is produced to without --out, or when --rate asks for a pace.
    wanted = args.out is None or args.rate is not None
    produce = bool(args.bootstrap_servers) or (wanted and kafka.bootstrap_servers is not None)
    if args.out is None and not produce:
        raise ConfigError("nothing to do: give --out FILE.jsonl, or a broker with --bootstrap-servers")
    if args.rate is not None and args.rate <= 0:
        raise ConfigError("--rate must be a positive number of events per second")
    if args.rate is not None and not produce:  # it paced nothing, without a word
        raise ConfigError("--rate paces producing to a broker: give --bootstrap-servers (or the setting)")
    outputs = [
        (None if p is None else Path(p), what)
        for p, what in ((args.out, "trace file"), (args.truth, "truth file"))
    ]
    for path, what in outputs:
        if path is not None:
            writable_file(path, what)
    distinct_outputs(outputs, [])
    # The simulator (scikit-learn) is imported once the arguments are known to be usable.
    from querywatch.detector.simulate import ATTACK_KINDS, generate_trace, write_jsonl, write_truth
    from querywatch.detector.simulate.publish import publish_events

    families = [f.strip() for f in (args.families or ",".join(ATTACK_KINDS)).split(",") if f.strip()]
    try:
        events, truth = generate_trace(
            args.seed,
            benign=args.benign,
            attackers=args.attackers,
            start=_start(args.start, produce=produce, hours=args.hours),
            hours=args.hours,
            scale=args.scale,
            attack_families=families,
            campaign_accounts=args.campaign_accounts,
            org_accounts=args.org_accounts,
            victim=args.victim,
            hard=args.hard,
            dilute=args.dilute,
            early=args.early,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OverflowError:  # finite, but more than a trace can hold
        raise ConfigError(
            f"--hours {args.hours:g} and --scale {args.scale:g} ask for too large a trace"
        ) from None
    if args.out:
        write_jsonl(events, args.out)
    if args.truth:
        write_truth(truth, args.truth)
    roles = Counter(info["role"] for info in truth.values())
    summary = f"{roles['benign']} benign clients and {roles['attack']} attackers of the {args.victim} model"
    if not args.json:
        print(f"simulated {len(events)} events from {summary}", file=sys.stderr)
    sent = publish_events(events, kafka, rate=args.rate) if produce else 0
    if args.json:
        print_json(
            "simulate",
            {
                "victim": args.victim,
                "events": len(events),
                "benign": roles["benign"],
                "attackers": roles["attack"],
                "out": args.out,
                "truth": args.truth,
                "produced": sent,
                "topic": kafka.topic if produce else None,
            },
        )
    elif produce:
        print(f"produced {sent} events to {kafka.topic} at {kafka.bootstrap_servers}", file=sys.stderr)
    return 0


def hard_traffic(text: str) -> dict[str, int]:
    """An argparse type: hard benign kinds and how many clients of each (the kinds are
    checked by ``generate_trace``, as ``--families`` are).

    >>> hard_traffic("whatif=2,missing")
    {'whatif': 2, 'missing': 4}
    >>> hard_traffic("whatif=2,whatif")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: hard traffic 'whatif' given twice
    """
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        kind, _, number = part.partition("=")
        kind = kind.strip()
        if kind in counts:
            raise argparse.ArgumentTypeError(f"hard traffic {kind!r} given twice")
        counts[kind] = count(number.strip()) if number.strip() else HARD_DEFAULT
    return counts


def _start(text: str | None, *, produce: bool, hours: float) -> datetime:
    """Start of the trace: as given, or a fixed date for files, or ``hours`` ago when producing."""
    from querywatch.detector.simulate.trace import DEFAULT_START

    now = datetime.now(UTC).replace(microsecond=0)
    if text is None:
        return now - timedelta(hours=hours) if produce else DEFAULT_START
    if text == "now":
        return now
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--start {text!r} is not RFC 3339 (e.g. 2026-01-05T00:00:00Z) or 'now'") from None
    if parsed.tzinfo is None:
        raise ConfigError("--start needs a time zone, e.g. a trailing Z")
    return parsed
