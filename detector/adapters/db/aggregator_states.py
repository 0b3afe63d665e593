"""The campaign aggregator's checkpoint: its stage's state per model and the offset of the
summaries topic they cover, in one transaction.

The offset is the ``partition_offsets`` row of the aggregator's group on the summaries
topic's one partition, moved with the consumers' compare-and-set (``checkpoints``): an
aggregator that lost its partition without noticing cannot overwrite the state of the one
that took over; its write raises ``CheckpointConflict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.checkpoints import load_partition, save_checkpoint
from querywatch.detector.adapters.db.tables import AggregatorStateRow, utcnow


@dataclass(frozen=True, slots=True)
class StoredAggregator:
    """Where to resume the summaries topic (None: never checkpointed) and each model's state."""

    next_offset: int | None
    states: dict[str, bytes]


def load_aggregator(*, session: Session, group_id: str, topic: str, partition: int) -> StoredAggregator:
    """The stored offset (read first, as ``load_partition`` explains) and model states."""
    offset = load_partition(session=session, group_id=group_id, topic=topic, partition=partition).next_offset
    rows = session.execute(
        select(AggregatorStateRow.model_id, AggregatorStateRow.state).where(
            AggregatorStateRow.group_id == group_id
        )
    )
    return StoredAggregator(offset, {model_id: bytes(state) for model_id, state in rows})


def save_aggregator(
    *,
    session: Session,
    group_id: str,
    topic: str,
    partition: int,
    expected_offset: int | None,
    next_offset: int,
    states: Mapping[str, bytes],
) -> None:
    """Move the offset from ``expected_offset`` to ``next_offset`` and store the states of the
    models in ``states``, in the caller's transaction; ``CheckpointConflict`` if the stored
    offset moved (the caller rolls back)."""
    save_checkpoint(
        session=session,
        group_id=group_id,
        topic=topic,
        partition=partition,
        expected_offset=expected_offset,
        next_offset=next_offset,
        client_states={},
    )
    if not states:
        return
    session.execute(
        delete(AggregatorStateRow).where(
            AggregatorStateRow.group_id == group_id, AggregatorStateRow.model_id.in_(list(states))
        )
    )
    now = utcnow()
    session.execute(
        insert(AggregatorStateRow),
        [{"group_id": group_id, "model_id": m, "state": s, "updated_at": now} for m, s in states.items()],
    )
