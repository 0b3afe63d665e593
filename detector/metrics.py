"""The one Prometheus registry of querywatch and every metric it exports.

All metrics live here so that names, labels and buckets stay consistent across the
consumer, the engine, the webhooks dispatcher and the API; other modules import the
objects below. Labels are bounded sets only (reason codes, severities, outcomes, route
templates, partitions) — never a client_id, which would make one time series per client.
The API's ``GET /metrics`` serves ``REGISTRY``; ``consume`` and ``dispatch`` serve it on a
port of their own (``serve_metrics``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from querywatch.detector.errors import QuerywatchError

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

#: Seconds; sub-millisecond resolution, since scoring one event should take tens of microseconds.
PROCESSING_BUCKETS = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
    1.0,
)
#: Seconds; the decision endpoint targets a p99 under 5 ms.
API_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

EVENTS_PROCESSED = Counter(
    "querywatch_events_processed",
    "Valid inference-log events scored by the engine.",
    registry=REGISTRY,
)
EVENTS_UNSCORED = Counter(
    "querywatch_events_unscored",
    "Valid events whose answer carried no prediction.scores (labels only, or no answer): "
    "all of a model's, and its scores may be logged under a name that is not read.",
    registry=REGISTRY,
)
EVENTS_GAPPED = Counter(
    "querywatch_events_with_missing_inputs",
    "Valid events scored with a missing input value (null or NaN), each read as the value of the "
    "profile cell nearest its record on the fields present.",
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "querywatch_events_rejected",
    "Events refused before scoring, by reason code (engine.events.REASONS); each is dead-lettered.",
    ["reason"],
    registry=REGISTRY,
)
EVENT_PROCESSING_SECONDS = Histogram(
    "querywatch_event_processing_seconds",
    "Engine time to score one event, averaged over each consumer batch.",
    buckets=PROCESSING_BUCKETS,
    registry=REGISTRY,
)
OUTAGE = Gauge(
    "querywatch_outage",
    "1 while this consumer cannot reach a dependency (partitions paused, retrying), else 0.",
    ["dependency"],
    registry=REGISTRY,
)
LOG_REWOUND = Counter(
    "querywatch_log_rewound",
    "Times a partition's log was found to end below the stored offset (recreated or emptied topic).",
    ["topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "querywatch_consumer_lag_messages",
    "Messages between the consumer's position and the end of the partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
CHECKPOINTS = Counter(
    "querywatch_checkpoints",
    "Checkpoints written (offsets and client states committed together).",
    registry=REGISTRY,
)
ALERTS_OPENED = Counter(
    "querywatch_alerts_opened",
    "Extraction alerts opened by the engine, by severity.",
    ["severity"],
    registry=REGISTRY,
)
ALERTS_CLOSED = Counter(
    "querywatch_alerts_closed",
    "Alerts closed, by who closed them: 'engine' (risk fell) or 'analyst' (resolved).",
    ["by"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "querywatch_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered, retry, dead, refused (unsafe address).",
    ["outcome"],
    registry=REGISTRY,
)
ALERT_EVENTS = Counter(
    "querywatch_alert_events",
    "Alert events stored, by type (alert.opened, alert.updated, alert.closed).",
    ["type"],
    registry=REGISTRY,
)
ALERTS_SUPPRESSED = Counter(
    "querywatch_alert_events_suppressed",
    "Alert events stored but not delivered: trusted client, model in monitor mode, silence, page risk.",
    registry=REGISTRY,
)
WEBHOOK_BACKLOG = Gauge(
    "querywatch_webhook_backlog",
    "Deliveries waiting to be sent (pending or failed), as of the dispatcher's last cycle.",
    registry=REGISTRY,
)
LAST_CHECKPOINT = Gauge(
    "querywatch_last_checkpoint_timestamp_seconds",
    "Unix time of this process's last committed checkpoint (0: none yet).",
    registry=REGISTRY,
)
BUILD_INFO = Info("querywatch_build", "Version of querywatch and of the alert schema.", registry=REGISTRY)
CLIENTS_TRACKED = Gauge(
    "querywatch_clients_tracked",
    "Clients whose state the engine currently keeps in memory.",
    registry=REGISTRY,
)
WARMUP_EVENTS_HELD = Gauge(
    "querywatch_warmup_events_held",
    "Events this consumer holds until their model has a profile (a model warming up); they are "
    "scored once it has one.",
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "querywatch_api_request_seconds",
    "HTTP API latency by method, route template and status code.",
    ["method", "route", "status"],
    buckets=API_BUCKETS,
    registry=REGISTRY,
)


def _preset() -> None:
    """Create every labelled series at zero, so an alerting rule sees the first failure as
    an increase (a series that appears at 1 has no increase to see)."""
    from importlib.metadata import PackageNotFoundError, version

    from querywatch.detector.engine.events import REASONS
    from querywatch.detector.engine.outcomes import ALERT_SCHEMA_VERSION, EVENT_TYPES, SEVERITIES

    for reason in REASONS:
        EVENTS_REJECTED.labels(reason=reason)
    for severity in SEVERITIES:
        ALERTS_OPENED.labels(severity=severity)
    for by in ("engine", "analyst"):
        ALERTS_CLOSED.labels(by=by)
    for kind in EVENT_TYPES:
        ALERT_EVENTS.labels(type=kind)
    for outcome in ("delivered", "retry", "dead", "gone", "refused", "superseded", "unrecorded"):
        WEBHOOK_DELIVERIES.labels(outcome=outcome)
    try:
        release = version("querywatch")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        release = "unknown"
    BUILD_INFO.info({"version": release, "alert_schema": str(ALERT_SCHEMA_VERSION)})


_preset()


def render() -> tuple[bytes, str]:
    """The registry in the Prometheus text format, with its content type.

    >>> body, content_type = render()
    >>> b"querywatch_events_processed_total" in body and content_type.startswith("text/plain")
    True
    """
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


@contextmanager
def serve_metrics(host: str, port: int | None) -> Iterator[int | None]:
    """Serve the registry at ``http://host:port/metrics`` while the block runs, from a thread,
    without authentication (a scrape port for the internal network); yields the bound port
    (``port=0`` picks a free one). ``port=None`` serves nothing and yields None."""
    if port is None:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:  # said as serve says a taken port, not as a bare OSError
        raise QuerywatchError(
            f"the metrics port {host}:{port} cannot be listened on: {exc.strerror}",
            hint="choose another with --metrics-port N (or QUERYWATCH_METRICS_PORT; 0: any free port)",
        ) from None
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def metrics_port_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--metrics-port`` option of the long-running worker commands."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics at /metrics on this port (default: metrics_port)",
    )


def metrics_port(args: argparse.Namespace, default: int | None) -> int | None:
    """The port from ``--metrics-port``, else ``default`` (the ``metrics_port`` setting)."""
    return default if args.metrics_port is None else int(args.metrics_port)
