"""What the outcome-sink seam costs per event (``pipeline/sinks.py``).

Two figures, each measured interleaved (A, B, A, B, ...) in the same run:

1. **The seam alone**: a checkpoint-sized batch handed to ``Sinks`` holding the consumer's
   four sinks as no-ops, divided by the events of the batch: the price of the interface
   itself (dispatch, the shared transaction object).
2. **Storing through the sinks vs. the same functions called by hand**: the database
   sink, the outbox sink and the log sink on SQLite (one transaction per batch, one in
   ten updates opening an alert, one webhook endpoint), against ``save_outcomes`` followed
   by ``enqueue_deliveries`` for each paging event and the log line: what the consumer
   pays per event for going through the interface.

    python benchmarks/bench_sinks.py [--batch 5000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.db.outbox import enqueue_deliveries
from querywatch.detector.adapters.db.outcome_store import OutcomeTx, save_outcomes
from querywatch.detector.adapters.db.session import Session, make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import WebhookEndpointRow
from querywatch.detector.adapters.delivery.ecs import AlertLogSink
from querywatch.detector.adapters.sinks import stored_sinks
from querywatch.detector.engine.outcomes import (
    ALERT_OPENED,
    Alert,
    AlertEvent,
    Outcome,
    RiskUpdate,
    alert_id_for,
)
from querywatch.detector.pipeline.sinks import Sinks
from tests.storage.databases import settings_for


class _NoOp:
    def write(self, outcomes: Sequence[Outcome], tx: object) -> None:
        pass

    def committed(self, tx: object) -> None:
        pass


def batch_of(n: int, round_: int) -> list[Outcome]:
    """``n`` updates of distinct clients; one in ten opens an alert."""
    out = []
    for i in range(n):
        client = f"c{round_}-{i}"
        update = RiskUpdate(client, "digits-v1", 1.8e9 + i, 100, 0.95 if i % 10 == 0 else 0.1, ("coverage",))
        event = None
        if i % 10 == 0:
            alert = Alert(
                alert_id_for(client, "digits-v1", 1, update.ts),
                client,
                "digits-v1",
                update.ts,
                100,
                0.95,
                "high",
                (),
                {},
            )
            event = AlertEvent(ALERT_OPENED, 1, update.ts, alert)
        out.append(Outcome(update, event))
    return out


def seam_alone(batch: list[Outcome], rounds: int) -> tuple[float, float]:
    """(ns per event through Sinks, ns per event of the bare loop over the same no-ops)."""
    sinks: Sinks[object] = Sinks([_NoOp(), _NoOp(), _NoOp(), _NoOp()])
    bare = list(sinks.sinks)
    through, direct = [], []
    repeat = 2000
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            tx = object()
            sinks.write(batch, tx)
            sinks.committed(tx)
        through.append(time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(repeat):
            tx = object()
            for sink in bare:
                sink.write(batch, tx)
            for sink in bare:
                sink.committed(tx)
        direct.append(time.perf_counter() - started)
    per = 1e9 / (repeat * len(batch))
    return statistics.median(through) * per, statistics.median(direct) * per


def by_hand(session: Session, outcomes: list[Outcome]) -> Callable[[], None]:
    saved = save_outcomes(session=session, outcomes=outcomes)
    for stored in saved.events:
        if stored.pages:
            enqueue_deliveries(session=session, alert=stored.alert, event=stored.event)
    tx = OutcomeTx(session, saved)
    return lambda: AlertLogSink().committed(tx)


def through_sinks(session: Session, outcomes: list[Outcome]) -> Callable[[], None]:
    sinks = Sinks(stored_sinks())
    tx = OutcomeTx(session)
    sinks.write(outcomes, tx)
    return lambda: sinks.committed(tx)


def stored(size: int, rounds: int) -> tuple[list[float], list[float]]:
    """µs per event storing through the sinks and by hand, per round."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(f"sqlite:///{tmp}/bench.db")
        upgrade(settings)
        engine = make_engine(settings.database)
        sessions = make_sessionmaker(engine)
        with transaction(sessions) as session:
            session.add(
                WebhookEndpointRow(url="https://example.test/hook", secret="whsec_x", min_severity="low")
            )
        times: dict[str, list[float]] = {"sinks": [], "hand": []}
        for round_ in range(rounds):
            for name, write in (("sinks", through_sinks), ("hand", by_hand))[:: 1 if round_ % 2 else -1]:
                outcomes = batch_of(size, 2 * round_ + (name == "hand"))
                started = time.perf_counter()
                with transaction(sessions) as session:
                    after = write(session, outcomes)
                after()
                times[name].append((time.perf_counter() - started) * 1e6 / size)
        engine.dispose()
    return times["sinks"], times["hand"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch", type=int, default=5000, help="outcomes per checkpoint (the default checkpoint)"
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("querywatch.alerts").setLevel(logging.WARNING)  # the line is built, not printed
    through, direct = seam_alone(batch_of(args.batch, -1), args.rounds)
    print(f"outcome sinks, batches of {args.batch:,} outcomes, {args.rounds} interleaved rounds")
    print(f"  the seam alone (4 no-op sinks): {through:.3f} ns/event through Sinks, {direct:.3f} bare loop")
    sinks, hand = stored(args.batch, args.rounds)
    ms, mh = statistics.median(sinks), statistics.median(hand)
    print(
        f"  stored on SQLite (database + outbox + log): {ms:.1f} us/event through the sinks, "
        f"{mh:.1f} by hand (ratio {ms / mh:.3f}; per round: "
        + ", ".join(f"{a / b:.2f}" for a, b in zip(sinks, hand, strict=True))
        + ")"
    )


if __name__ == "__main__":
    main()
