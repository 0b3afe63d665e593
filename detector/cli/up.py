"""``querywatch up [--demo]``: the whole service on one machine, stopped cleanly by Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from querywatch.detector.cli.checks import free_port, port_number, writable_file
from querywatch.detector.cli.parsers import add_command
from querywatch.detector.config import DatabaseSettings, Settings
from querywatch.detector.errors import ConfigError
from querywatch.detector.logging import configure_logging

if TYPE_CHECKING:
    from querywatch.detector.cli.allinone import Started

log = logging.getLogger(__name__)

#: The demo's own SQLite file, used when no database is configured; emptied at each start.
DEMO_DATABASE = Path("querywatch-demo.db")


def demo_database(settings: Settings, *, keep: bool) -> Settings:
    """The settings of a demo run: its own fresh SQLite file unless a database is configured.

    A configured database (``QUERYWATCH_DATABASE__URL``) is used as it is and never emptied.
    """
    if settings.database.url != DatabaseSettings().url:
        return settings
    if not keep:
        for leftover in (DEMO_DATABASE, Path(f"{DEMO_DATABASE}-wal"), Path(f"{DEMO_DATABASE}-shm")):
            leftover.unlink(missing_ok=True)
    database = settings.database.model_copy(update={"url": f"sqlite:///{DEMO_DATABASE}"})
    return settings.model_copy(update={"database": database})


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "up",
        summary="run everything on this machine: broker (embedded unless configured), database, consumer, "
        "webhook dispatcher and API",
        description="Start querywatch in one process. Without QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS an "
        "embedded, memory-only broker is started; the database (SQLite by default) is migrated; a new "
        "admin API key is printed. Ctrl-C stops everything.",
    )
    parser.add_argument("--host", help="API host (default: api.host)")
    parser.add_argument("--port", type=port_number, help="API port (default: api.port; 0 picks a free one)")
    parser.add_argument(
        "--demo", action="store_true", help="also replay simulated traffic with model thieves"
    )
    parser.add_argument("--seed", type=int, default=None, help="demo: random seed")
    parser.add_argument("--benign", type=int, default=None, help="demo: benign clients")
    parser.add_argument("--attackers", type=int, default=None, help="demo: attacking clients")
    parser.add_argument("--rate", type=float, default=None, help="demo: events per second")
    parser.add_argument("--truth", type=Path, help="demo: write who is who (role, family) to this JSON file")
    parser.add_argument(
        "--keep",
        action="store_true",
        help=f"demo: keep the demo database ({DEMO_DATABASE}) of the last run instead of starting afresh",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if (args.rate is not None and args.rate <= 0) or (args.benign or 0) < 0 or (args.attackers or 0) < 0:
        raise ConfigError("--rate must be > 0 events/s, --benign and --attackers >= 0")
    api = settings.api.model_copy(
        update={
            "host": args.host or settings.api.host,
            "port": settings.api.port if args.port is None else args.port,
        }
    )
    settings = settings.model_copy(update={"api": api})
    free_port(api.host, api.port)  # before the broker starts and an admin key is created
    if args.truth is not None:
        writable_file(args.truth, "truth file")
    if args.demo:
        settings = demo_database(settings, keep=args.keep)
    configure_logging(settings)
    from querywatch.detector.cli.allinone import AllInOne
    from querywatch.detector.simulate.demo import DemoPlan

    for name in ("seed", "benign", "attackers", "rate"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(DemoPlan, name))
    plan = DemoPlan(
        seed=args.seed, benign=args.benign, attackers=args.attackers, rate=args.rate, truth_path=args.truth
    )
    app = AllInOne(settings, demo=plan if args.demo else None)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on %s", signal.Signals(signum).name)
        app.stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        started = app.start()
        print(_banner(started, demo=args.demo), flush=True)
        app.wait()
    finally:
        stuck = app.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stuck:
        print(f"querywatch: {', '.join(stuck)} did not stop in time", file=sys.stderr)
    return 1 if app.failed or stuck else 0


def _banner(started: Started, *, demo: bool) -> str:
    broker = "embedded, memory only" if started.embedded_broker else "configured"
    lines = [
        "querywatch is up.",
        f"  API            {started.api_url}    (OpenAPI docs: {started.docs_url})",
        f"  Dashboard      {started.dashboard_url}",
        f"  Metrics        {started.metrics_url}    (send the key as X-API-Key)",
        f"  Kafka          {started.bootstrap_servers}    ({broker})",
        f"  Database       {started.database_url}",
        f"  Admin API key  {started.admin_key}",
        f"                 (shown once; e.g. curl -H 'X-API-Key: <key>' {started.api_url}/v1/alerts)",
    ]
    if demo:
        lines.append(
            "  Demo           simulated clients are querying digits-v1; first alerts within a minute"
        )
    if started.demo_webhook_url:
        lines.append(
            f"  Webhooks       alerts go to the demo's receiver {started.demo_webhook_url}"
            f"    (deliveries: {started.dashboard_url}#/webhooks)"
        )
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)
