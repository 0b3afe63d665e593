"""The outcome sinks of a process, assembled in one place (see ``pipeline.sinks``).

The consumer writes through ``consumer_sinks``: the Kafka outputs, then ``stored_sinks``
(the database, the delivery outbox and the alert log line). Whatever else stores outcomes
(tests, benchmarks) goes through ``store_outcomes``, the same stored sinks in the caller's
transaction, so no second path writes outcomes to the database.
"""

from __future__ import annotations

from collections.abc import Sequence

from querywatch.detector.adapters.db.outbox import OutboxSink
from querywatch.detector.adapters.db.outcome_store import DatabaseSink, OutcomeTx, SavedOutcomes
from querywatch.detector.adapters.db.session import Session, on_commit
from querywatch.detector.adapters.delivery.ecs import AlertLogSink
from querywatch.detector.adapters.kafka.outputs import OutputProducer
from querywatch.detector.engine.outcomes import Outcome
from querywatch.detector.engine.policy import Thresholds
from querywatch.detector.pipeline.sinks import OutcomeSink, Sinks


def stored_sinks(thresholds: Thresholds | None = None) -> list[OutcomeSink[OutcomeTx]]:
    """Database, then outbox (it queues what the database sink stored), then the log line."""
    return [DatabaseSink(thresholds), OutboxSink(), AlertLogSink()]


def consumer_sinks(outputs: OutputProducer, thresholds: Thresholds | None = None) -> Sinks[OutcomeTx]:
    """Kafka first (sent before the database writes; the checkpoint awaits the broker's
    acknowledgement before it commits), then the stored sinks."""
    return Sinks([outputs, *stored_sinks(thresholds)])


def store_outcomes(
    *, session: Session, outcomes: Sequence[Outcome], thresholds: Thresholds | None = None
) -> SavedOutcomes:
    """Write ``outcomes`` through the stored sinks in ``session``'s transaction (flushed, not
    committed); their ``committed`` step runs when the caller commits it."""
    sinks = Sinks(stored_sinks(thresholds))
    tx = OutcomeTx(session)
    sinks.write(outcomes, tx)
    on_commit(session, lambda: sinks.committed(tx))
    return tx.saved
