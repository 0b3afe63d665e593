"""``querywatch dispatch``: deliver the webhook outbox until SIGTERM or Ctrl-C.

Run as many as you like against one PostgreSQL database: they share the due deliveries
without sending one twice. ``querywatch up`` runs one inside the all-in-one process.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType
from typing import Any

from querywatch.detector.adapters.db.session import check_migrated, make_engine, make_sessionmaker
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import Settings
from querywatch.detector.errors import EXIT_RUNTIME
from querywatch.detector.logging import configure_logging
from querywatch.detector.metrics import metrics_port, metrics_port_argument, serve_metrics

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    dispatch = add_command(
        subparsers,
        "dispatch",
        summary="send alert webhooks from the outbox (retries, backoff, signatures)",
        description="Deliver pending alert webhooks until SIGTERM or Ctrl-C; "
        "the deliveries in flight are finished before the process exits.",
    )
    dispatch.add_argument("--once", action="store_true", help="send what is due now, then exit")
    metrics_port_argument(dispatch)
    dispatch.set_defaults(run=run_dispatch)


def _once(dispatcher: Dispatcher) -> int:
    """Send what is due, say how it went, and fail (exit 1) when deliveries were attempted
    and none arrived: a cron job that only ever logged "N attempted" hid a receiver that
    refused everything, or an SSRF guard that refused every send."""
    sent = dispatcher.run_once()
    done = ", ".join(f"{n} {outcome}" for outcome, n in sorted(dispatcher.outcomes.items()))
    if sent and not dispatcher.outcomes["delivered"]:
        hint = (
            " (refused: the SSRF guard; a private receiver of yours needs QUERYWATCH_WEBHOOKS__ALLOW_HOSTS"
            " in the dispatcher's environment too)"
            if dispatcher.outcomes["refused"]
            else ""
        )
        log.error("webhook dispatch: %d attempted, none delivered: %s%s", sent, done, hint)
        return EXIT_RUNTIME
    log.info("webhook dispatch: %d attempted%s", sent, f": {done}" if done else "")
    return 0


def run_dispatch(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings)
    engine = make_engine(settings.database)
    try:
        check_migrated(engine)
        dispatcher = Dispatcher(settings, make_sessionmaker(engine))
        if args.once:
            return _once(dispatcher)
        stop = threading.Event()

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: finishing the deliveries in flight", signum)
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        log.info(
            "webhook dispatcher started",
            extra={
                "retry_schedule": settings.webhooks.retry_schedule,
                "timeout": settings.webhooks.timeout_seconds,
            },
        )
        with serve_metrics(settings.metrics_host, metrics_port(args, settings.metrics_port)):
            dispatcher.run_forever(stop)
        log.info("webhook dispatcher stopped")
        return 0
    finally:
        engine.dispose()
