"""Outcome sinks: every place the engine's outcomes go, behind one interface.

The consumer's checkpoint hands a partition's outcomes to its ``Sinks`` in one place: each
sink's ``write`` runs, in order, inside the checkpoint's transaction ``tx``, and once the
transaction committed each sink's ``committed`` runs. The consumer's sinks are the Kafka
outputs (first: they send, and the checkpoint waits for the broker's acknowledgement before
it commits, so the topics get every outcome at least once), the database (client rows,
risk history, alert events and their decisions), the delivery outbox (rows for the alert
events that page, in the same transaction as the events) and the alert log line. What must
only count what really happened (metrics, log lines) goes in ``committed``: a transaction
that rolls back leaves no trace there.

The pipeline knows nothing of Kafka or SQL: ``tx`` is whatever the sinks share (the
adapters' is a database session and what the database sink stored in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from querywatch.detector.engine.outcomes import Outcome

Tx = TypeVar("Tx")
Tx_contra = TypeVar("Tx_contra", contravariant=True)


class OutcomeSink(Protocol[Tx_contra]):
    """One destination of outcomes."""

    def write(self, outcomes: Sequence[Outcome], tx: Tx_contra) -> None:
        """Write ``outcomes`` as part of ``tx`` (raise to roll the whole checkpoint back)."""

    def committed(self, tx: Tx_contra) -> None:
        """``tx`` committed: count or announce what ``write`` did."""


class Sinks(Generic[Tx]):
    """The sinks of one process, written in the order given.

    >>> class Log:
    ...     def __init__(self, name): self.name = name
    ...     def write(self, outcomes, tx): tx.append((self.name, len(outcomes)))
    ...     def committed(self, tx): tx.append((self.name, "committed"))
    >>> tx = []
    >>> sinks = Sinks([Log("kafka"), Log("database")])
    >>> sinks.write([], tx); sinks.committed(tx); tx
    [('kafka', 0), ('database', 0), ('kafka', 'committed'), ('database', 'committed')]
    """

    def __init__(self, sinks: Sequence[OutcomeSink[Tx]]) -> None:
        self.sinks = tuple(sinks)

    def write(self, outcomes: Sequence[Outcome], tx: Tx) -> None:
        for sink in self.sinks:
            sink.write(outcomes, tx)

    def committed(self, tx: Tx) -> None:
        for sink in self.sinks:
            sink.committed(tx)
