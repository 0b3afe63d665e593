"""``querywatch aggregate``: the campaign stage over the summaries topic (active or standby)."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.errors import ConfigError
from querywatch.detector.metrics import metrics_port, metrics_port_argument


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "aggregate",
        summary="link accounts into campaigns from the consumers' client summaries "
        "(run two: one is a standby)",
        description="Read the summaries topic that `querywatch consume` publishes to, run the campaign "
        "stage, and store campaigns and their alerts with the stage's state and the topic's offset in one "
        "transaction. Copies in the same group (campaigns.aggregator_group_id) are standbys: the topic has "
        "one partition, and when the active copy dies the group hands it to a standby, which resumes from "
        "the stored checkpoint. SIGTERM or Ctrl-C checkpoints and leaves the group.",
    )
    parser.add_argument(
        "--bootstrap-servers", help="brokers host:port[,...] (default: kafka.bootstrap_servers)"
    )
    parser.add_argument(
        "--topic", help="inference-log topic whose consumers publish the summaries (default: kafka.topic)"
    )
    parser.add_argument("--group-id", help="aggregator group (default: campaigns.aggregator_group_id)")
    metrics_port_argument(parser)
    parser.set_defaults(run=run_aggregate)


def run_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    from querywatch.detector.adapters.kafka.aggregator import aggregate
    from querywatch.detector.adapters.kafka.consumer import stop_on_signals
    from querywatch.detector.logging import configure_logging
    from querywatch.detector.metrics import serve_metrics
    from querywatch.detector.runtime import engine_process

    if not settings.campaigns.enabled:
        raise ConfigError(
            "campaigns are disabled (QUERYWATCH_CAMPAIGNS__ENABLED=false): nothing to aggregate"
        )
    kafka = settings.kafka.model_copy(
        update={
            "bootstrap_servers": args.bootstrap_servers or settings.kafka.bootstrap_servers,
            "topic": args.topic or settings.kafka.topic,
        }
    )
    campaigns = settings.campaigns
    if args.group_id:
        campaigns = campaigns.model_copy(update={"aggregator_group_id": args.group_id})
    settings = settings.model_copy(update={"kafka": kafka, "campaigns": campaigns})
    configure_logging(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    with engine_process(), serve_metrics(settings.metrics_host, metrics_port(args, settings.metrics_port)):
        aggregate(settings, stop=stop)
    return 0
