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
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.checkpoints import load_partition, save_checkpoint
from querywatch.detector.adapters.db.tables import AggregatorStateRow, utcnow


@dataclass(frozen=True, slots=True)
class StoredStates:
    """The stored version of every model's state (its ``updated_at``: a checkpoint that
    rewrites a state rewrites it) and the states the caller did not hold at that version."""

    versions: dict[str, datetime]
    states: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class StoredAggregator:
    """Where to resume the summaries topic (None: never checkpointed) and the model states."""

    next_offset: int | None
    stored: StoredStates


def load_states(*, session: Session, group_id: str, held: Mapping[str, datetime]) -> StoredStates:
    """The versions of the group's model states, and the states whose version differs from
    ``held`` (model -> the version the caller holds): a standby that keeps the stored state
    decoded reads only what changed since. A state rewritten between the two reads comes
    with its newer version."""
    versions = dict(
        session.execute(
            select(AggregatorStateRow.model_id, AggregatorStateRow.updated_at).where(
                AggregatorStateRow.group_id == group_id
            )
        )
        .tuples()
        .all()
    )
    wanted = [m for m, version in versions.items() if held.get(m) != version]
    states: dict[str, bytes] = {}
    if wanted:
        row = AggregatorStateRow
        rows = session.execute(
            select(row.model_id, row.updated_at, row.state).where(
                row.group_id == group_id, row.model_id.in_(wanted)
            )
        )
        for model_id, version, state in rows:
            versions[model_id], states[model_id] = version, bytes(state)
    return StoredStates(versions, states)


def load_aggregator(
    *, session: Session, group_id: str, topic: str, partition: int, held: Mapping[str, datetime]
) -> StoredAggregator:
    """The stored offset (read first, as ``load_partition`` explains) and the model states
    that differ from ``held`` (``load_states``)."""
    offset = load_partition(session=session, group_id=group_id, topic=topic, partition=partition).next_offset
    return StoredAggregator(offset, load_states(session=session, group_id=group_id, held=held))


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
