"""Checkpoints: a partition's next offset and its clients' engine states, in one transaction.

The database, not Kafka, is the truth about how far a partition was processed. Writing the
offset in the same transaction as the outcomes and client states it covers is what makes
the consumer exactly-once towards the database: after a crash the partition resumes at the
offset that matches the stored state, so nothing is lost and nothing is counted twice.

Ownership is fenced optimistically: a checkpoint only moves the offset *from the value the
writer last saw* (compare-and-set). A consumer that lost a partition without noticing (a
"zombie" after a long pause) therefore cannot overwrite the new owner's progress; its write
raises ``CheckpointConflict`` and it rewinds to what is stored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.tables import ClientStateRow, PartitionOffsetRow, utcnow
from querywatch.detector.errors import QuerywatchError

#: Ids per ``IN (...)`` list, well below SQLite's limit on bound parameters.
_CHUNK = 500


class CheckpointConflict(QuerywatchError):
    """Another consumer moved this partition's offset since we read it: we no longer own it."""


@dataclass(frozen=True, slots=True)
class StoredPartition:
    """What the database holds for one partition: where to resume and the clients' states."""

    next_offset: int | None
    client_states: dict[str, bytes]


def load_partition(
    *, session: Session, group_id: str, topic: str, partition: int, only: Collection[str] | None = None
) -> StoredPartition:
    """The stored offset (None if never checkpointed) and client states of one partition
    (``only`` those of these ids, when given).

    The offset is read first: a checkpoint commits offset and states together, so states
    read afterwards are at least as new, and a mix is caught by the compare-and-set of the
    next checkpoint.
    """
    offset = session.scalar(
        select(PartitionOffsetRow.next_offset).where(
            PartitionOffsetRow.group_id == group_id,
            PartitionOffsetRow.topic == topic,
            PartitionOffsetRow.partition == partition,
        )
    )
    query = select(ClientStateRow.client_id, ClientStateRow.state).where(
        ClientStateRow.group_id == group_id,
        ClientStateRow.topic == topic,
        ClientStateRow.partition == partition,
    )
    if only is not None:
        if session.get_bind().dialect.name == "postgresql":  # its text holds no NUL: no stored id has one
            only = [key for key in only if "\x00" not in key]
        query = query.where(ClientStateRow.client_id.in_(only))
    return StoredPartition(offset, {client_id: bytes(state) for client_id, state in session.execute(query)})


def load_client_states(*, session: Session, group_id: str, client_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored states of those of ``client_ids`` that have one, whatever their partition
    (a client spilled past the resident cap comes back on its next event)."""
    states: dict[str, bytes] = {}
    for start in range(0, len(client_ids), _CHUNK):
        rows = session.execute(
            select(ClientStateRow.client_id, ClientStateRow.state).where(
                ClientStateRow.group_id == group_id,
                ClientStateRow.client_id.in_(client_ids[start : start + _CHUNK]),
            )
        )
        states.update((client_id, bytes(state)) for client_id, state in rows)
    return states


def save_checkpoint(
    *,
    session: Session,
    group_id: str,
    topic: str,
    partition: int,
    expected_offset: int | None,
    next_offset: int,
    client_states: Mapping[str, bytes],
    dropped_clients: Iterable[str] = (),
) -> None:
    """Move the partition from ``expected_offset`` to ``next_offset`` and store client states.

    Runs inside the caller's transaction (with the outcomes the checkpoint covers); raises
    ``CheckpointConflict`` if the stored offset is not ``expected_offset``, after which
    the caller must roll back.
    """
    _move_offset(
        session=session,
        group_id=group_id,
        topic=topic,
        partition=partition,
        expected=expected_offset,
        new=next_offset,
    )
    now = utcnow()
    dropped = [c for c in dropped_clients if c not in client_states]
    # Delete-then-insert is a portable upsert (SQLite and PostgreSQL alike), and it also
    # moves a client whose events now land in another partition.
    stale = [*dropped, *client_states]
    for start in range(0, len(stale), _CHUNK):
        session.execute(
            delete(ClientStateRow).where(ClientStateRow.client_id.in_(stale[start : start + _CHUNK]))
        )
    if client_states:
        session.execute(
            insert(ClientStateRow),
            [
                {
                    "client_id": client_id,
                    "group_id": group_id,
                    "topic": topic,
                    "partition": partition,
                    "state": state,
                    "updated_at": now,
                }
                for client_id, state in client_states.items()
            ],
        )


def _move_offset(
    *, session: Session, group_id: str, topic: str, partition: int, expected: int | None, new: int
) -> None:
    key = (group_id, topic, partition)
    if expected is None:
        try:
            with session.begin_nested():
                session.execute(
                    insert(PartitionOffsetRow).values(
                        group_id=group_id,
                        topic=topic,
                        partition=partition,
                        next_offset=new,
                        updated_at=utcnow(),
                    )
                )
        except IntegrityError:
            raise CheckpointConflict(f"{key}: another consumer checkpointed this partition first") from None
        return
    result = session.execute(
        update(PartitionOffsetRow)
        .where(
            PartitionOffsetRow.group_id == group_id,
            PartitionOffsetRow.topic == topic,
            PartitionOffsetRow.partition == partition,
            PartitionOffsetRow.next_offset == expected,
        )
        .values(next_offset=new, updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise CheckpointConflict(f"{key}: the stored offset is no longer {expected}")
