"""``querywatch consume`` (a consumer-group member) and ``querywatch produce`` (load a trace)."""

from __future__ import annotations

import argparse
import gzip
import threading
from pathlib import Path
from typing import Any

from querywatch.detector.cli.checks import readable_lines
from querywatch.detector.cli.output import add_output_options, print_json, progress_bar
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import KafkaSettings, Settings
from querywatch.detector.errors import InputError
from querywatch.detector.metrics import metrics_port, metrics_port_argument
from querywatch.detector.pipeline.lines import content_size


def register(subparsers: Any) -> None:
    consumer = add_command(
        subparsers,
        "consume",
        summary="score the inference-log topic as a member of a Kafka consumer group",
        description="Join the consumer group (kafka.group_id), score the inference-log topic and store "
        "risks, alerts and dead letters in the database. Run N copies to split the partitions; "
        "SIGTERM or Ctrl-C finishes the batch, checkpoints and leaves the group.",
    )
    _kafka_arguments(consumer)
    consumer.add_argument("--group-id", help="consumer group (default: kafka.group_id)")
    metrics_port_argument(consumer)
    consumer.set_defaults(run=run_consume)

    producer = add_command(
        subparsers,
        "produce",
        summary="load a JSON Lines trace into the inference-log topic, keyed by client_id",
        description="Send every line of TRACE.jsonl (or TRACE.jsonl.gz) as one message, keyed by its "
        "client_id. Invalid lines are sent as they are (the consumer dead-letters them); a line "
        "too large for a Kafka message is named and left out, and the command then exits 3.",
    )
    producer.add_argument("trace", metavar="TRACE.jsonl", type=Path)
    _kafka_arguments(producer)
    add_output_options(producer, progress=True)
    producer.set_defaults(run=run_produce)


def _kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers", help="brokers host:port[,...] (default: kafka.bootstrap_servers)"
    )
    parser.add_argument("--topic", help="inference-log topic (default: kafka.topic)")


def _kafka_settings(args: argparse.Namespace, settings: Settings) -> KafkaSettings:
    update = {
        "bootstrap_servers": args.bootstrap_servers or settings.kafka.bootstrap_servers,
        "topic": args.topic or settings.kafka.topic,
    }
    if getattr(args, "group_id", None):
        update["group_id"] = args.group_id
    return settings.kafka.model_copy(update=update)


def run_consume(args: argparse.Namespace, settings: Settings) -> int:
    from querywatch.detector.adapters.kafka.app import consume
    from querywatch.detector.adapters.kafka.consumer import stop_on_signals
    from querywatch.detector.logging import configure_logging
    from querywatch.detector.metrics import serve_metrics
    from querywatch.detector.runtime import engine_process

    settings = settings.model_copy(update={"kafka": _kafka_settings(args, settings)})
    configure_logging(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    with engine_process(), serve_metrics(settings.metrics_host, metrics_port(args, settings.metrics_port)):
        consume(settings, stop=stop)
    return 0


def run_produce(args: argparse.Namespace, settings: Settings) -> int:
    readable_lines(args.trace, "trace file")
    from querywatch.detector.adapters.kafka.admin import ensure_topics
    from querywatch.detector.adapters.kafka.producer import produce_trace

    kafka = _kafka_settings(args, settings)
    ensure_topics(kafka, (kafka.topic,))
    size = content_size(args.trace)
    too_large: list[tuple[int, int]] = []
    try:
        with progress_bar(args, total=size, unit="B", description="produce") as bar:
            sent = produce_trace(kafka, args.trace, progress=bar.update, too_large=too_large)
    except gzip.BadGzipFile as exc:  # a gzip'd trace cut short: the lines before it were sent
        raise InputError(f"{args.trace}: {exc}; the lines before it were produced") from None
    if args.json:
        print_json(
            "produce", {"messages": sent, "topic": kafka.topic, "too_large": [n for n, _ in too_large]}
        )
    else:
        print(f"produced {sent} messages to {kafka.topic}")
    if too_large:  # the rest were sent: said after them, with each line left out
        lines = ", ".join(f"line {n} ({size:,} bytes)" for n, size in too_large[:10])
        more = f" and {len(too_large) - 10} more" if len(too_large) > 10 else ""
        raise InputError(
            f"{args.trace}: {len(too_large)} lines too large for a Kafka message not sent: {lines}{more}",
            hint="an event is at most detection.max_event_bytes (1,000,000) bytes; the other lines were sent",
        )
    return 0
