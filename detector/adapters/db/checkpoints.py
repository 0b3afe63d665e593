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
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from querywatch.detector.adapters.db.inserts import InsertIfAbsent
from querywatch.detector.adapters.db.tables import Base, ClientStateRow, PartitionOffsetRow, utcnow
from querywatch.detector.errors import QuerywatchError

#: Ids per ``IN (...)`` list, well below SQLite's limit on bound parameters.
_CHUNK = 500

# Built once: a checkpoint runs these every second or so, and building a statement (its
# clauses, an IN list's every element coerced) cost more than executing it.
_STATES = Base.metadata.tables[ClientStateRow.__tablename__]
_OFFSETS = Base.metadata.tables[PartitionOffsetRow.__tablename__]
_MOVE_OFFSET = (
    update(_OFFSETS)
    .where(
        _OFFSETS.c.group_id == bindparam("b_group_id"),
        _OFFSETS.c.topic == bindparam("b_topic"),
        _OFFSETS.c.partition == bindparam("b_partition"),
        _OFFSETS.c.next_offset == bindparam("b_expected"),
    )
    .values(next_offset=bindparam("b_new"), updated_at=bindparam("b_now"))
)
#: A partition's first offset: nothing inserted if one is stored already.
_FIRST_OFFSET = InsertIfAbsent(_OFFSETS, _OFFSETS.c.next_offset)
_DELETE_STATES = delete(_STATES).where(_STATES.c.client_id.in_(bindparam("ids", expanding=True)))
_LOAD_STATES = select(_STATES.c.client_id, _STATES.c.state).where(
    _STATES.c.group_id == bindparam("group_id"), _STATES.c.client_id.in_(bindparam("ids", expanding=True))
)


class CheckpointConflict(QuerywatchError):
    """Another consumer moved this partition's offset since we read it: we no longer own it."""

    def __init__(self, message: str, *, topic: str, partition: int) -> None:
        super().__init__(message)
        #: The partition refused, (topic, partition).
        self.key = (topic, partition)


@dataclass(frozen=True, slots=True)
class PartitionCheckpoint:
    """What one partition's checkpoint stores: its offset moved from ``expected_offset``
    (None: never stored) to ``next_offset``, client states to write and clients to drop."""

    topic: str
    partition: int
    expected_offset: int | None
    next_offset: int
    client_states: Mapping[str, bytes]
    dropped_clients: Collection[str] = ()
    #: The partition's event-time clock (``StreamClock.state``; None: none yet, a stored
    #: one is kept).
    clock: Mapping[str, Any] | None = None
    #: A digest of the record at ``next_offset - 1`` (``partitions.record_digest``); None:
    #: unknown (the stored one is kept only if the offset stays).
    last_digest: str | None = None


@dataclass(frozen=True, slots=True)
class StoredPartition:
    """What the database holds for one partition: where to resume, its event-time clock
    and the clients' states."""

    next_offset: int | None
    client_states: dict[str, bytes]
    clock: dict[str, Any] | None = None
    last_digest: str | None = None


def load_partition(
    *,
    session: Session,
    group_id: str,
    topic: str,
    partition: int,
    only: Collection[str] | None = None,
    only_prefix: str | None = None,
) -> StoredPartition:
    """The stored offset (None if never checkpointed) and client states of one partition
    (``only`` those of these ids, and of ids that start with ``only_prefix``, when given).

    The offset is read first: a checkpoint commits offset and states together, so states
    read afterwards are at least as new, and a mix is caught by the compare-and-set of the
    next checkpoint.
    """
    stored = session.execute(
        select(
            PartitionOffsetRow.next_offset, PartitionOffsetRow.clock, PartitionOffsetRow.last_digest
        ).where(
            PartitionOffsetRow.group_id == group_id,
            PartitionOffsetRow.topic == topic,
            PartitionOffsetRow.partition == partition,
        )
    ).first()
    offset, clock, digest = (None, None, None) if stored is None else stored
    query = select(ClientStateRow.client_id, ClientStateRow.state).where(
        ClientStateRow.group_id == group_id,
        ClientStateRow.topic == topic,
        ClientStateRow.partition == partition,
    )
    if only is not None:
        wanted: ColumnElement[bool] = ClientStateRow.client_id.in_(_storable(session, only))
        if only_prefix is not None:
            wanted = or_(wanted, ClientStateRow.client_id.startswith(only_prefix, autoescape=True))
        query = query.where(wanted)
    states = {client_id: bytes(state) for client_id, state in session.execute(query)}
    return StoredPartition(offset, states, clock, digest)


def stored_offset(
    *, session: Session, group_id: str, topic: str, partition: int
) -> tuple[int, datetime] | None:
    """A partition's stored offset and when it was last moved (None: never checkpointed)."""
    row = session.execute(
        select(PartitionOffsetRow.next_offset, PartitionOffsetRow.updated_at).where(
            PartitionOffsetRow.group_id == group_id,
            PartitionOffsetRow.topic == topic,
            PartitionOffsetRow.partition == partition,
        )
    ).one_or_none()
    return None if row is None else (int(row[0]), row[1])


def load_client_states(*, session: Session, group_id: str, client_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored states of those of ``client_ids`` that have one, whatever their partition
    (a client spilled past the resident cap comes back on its next event)."""
    states: dict[str, bytes] = {}
    for start in range(0, len(client_ids), _CHUNK):
        rows = session.execute(
            _LOAD_STATES, {"group_id": group_id, "ids": client_ids[start : start + _CHUNK]}
        )
        states.update((client_id, bytes(state)) for client_id, state in rows)
    return states


def groups_with_states(*, session: Session) -> dict[str, int]:
    """Consumer groups whose client states this database holds, with how many each."""
    query = select(ClientStateRow.group_id, func.count()).group_by(ClientStateRow.group_id)
    return {group: int(count) for group, count in session.execute(query)}


def load_states_keyed(*, session: Session, group_id: str, prefixes: Sequence[str]) -> list[tuple[int, bytes]]:
    """(partition, state) of the group's stored states whose key starts with one of
    ``prefixes`` (the held events of warm-ups, which are keyed by partition)."""
    prefixes = _storable(session, prefixes)
    if not prefixes:
        return []
    query = select(ClientStateRow.partition, ClientStateRow.state).where(
        ClientStateRow.group_id == group_id,
        or_(*(ClientStateRow.client_id.startswith(prefix, autoescape=True) for prefix in prefixes)),
    )
    return [(int(partition), bytes(state)) for partition, state in session.execute(query)]


def _storable(session: Session, keys: Iterable[str]) -> list[str]:
    """Those of ``keys`` the database can hold: PostgreSQL's text holds no NUL, so no stored
    key there has one (an earlier release's held-events key did, on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        return [key for key in keys if "\x00" not in key]
    return list(keys)


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
    clock: Mapping[str, Any] | None = None,
) -> None:
    """``save_checkpoints`` of one partition."""
    checkpoint = PartitionCheckpoint(
        topic, partition, expected_offset, next_offset, client_states, tuple(dropped_clients), clock
    )
    save_checkpoints(session=session, group_id=group_id, checkpoints=[checkpoint])


def save_checkpoints(*, session: Session, group_id: str, checkpoints: Sequence[PartitionCheckpoint]) -> None:
    """Move each partition's offset from its ``expected_offset`` to its ``next_offset`` and
    store its client states.

    Runs inside the caller's transaction (with the outcomes the checkpoints cover); raises
    ``CheckpointConflict`` (its ``key`` the partition) if a stored offset is not the one
    expected, after which the caller must roll back. The states of all the partitions are
    written with one delete and one insert, as if each partition's were written in turn: a
    client stored (or dropped) by two of them ends as the later one says.
    """
    now = utcnow()
    for checkpoint in checkpoints:
        _move_offset(session=session, group_id=group_id, checkpoint=checkpoint, now=now)
    final: dict[str, PartitionCheckpoint | None] = {}  # client -> the checkpoint that stores it
    for checkpoint in checkpoints:
        final.update(dict.fromkeys(checkpoint.dropped_clients))
        final.update(dict.fromkeys(checkpoint.client_states, checkpoint))
    # Delete-then-insert is a portable upsert (SQLite and PostgreSQL alike), and it also
    # moves a client whose events now land in another partition.
    stale = list(final)
    for start in range(0, len(stale), _CHUNK):
        session.execute(_DELETE_STATES, {"ids": stale[start : start + _CHUNK]})
    rows = [
        {
            "client_id": client_id,
            "group_id": group_id,
            "topic": checkpoint.topic,
            "partition": checkpoint.partition,
            "state": checkpoint.client_states[client_id],
            "updated_at": now,
        }
        for client_id, checkpoint in final.items()
        if checkpoint is not None
    ]
    if rows:
        session.execute(insert(_STATES), rows)


def _move_offset(*, session: Session, group_id: str, checkpoint: PartitionCheckpoint, now: datetime) -> None:
    topic, partition = checkpoint.topic, checkpoint.partition
    key = (group_id, topic, partition)
    if checkpoint.expected_offset is None:
        # A partition's first offset: inserted unless another consumer's is there.
        values = {"group_id": group_id, "topic": topic, "partition": partition}
        first: dict[str, Any] = {"next_offset": checkpoint.next_offset, "updated_at": now}
        if checkpoint.clock is not None:
            first["clock"] = checkpoint.clock
        if checkpoint.last_digest is not None:
            first["last_digest"] = checkpoint.last_digest
        if _FIRST_OFFSET(session, {**values, **first}) is None:
            first_by = f"{key}: another consumer checkpointed this partition first"
            raise CheckpointConflict(first_by, topic=topic, partition=partition)
        return
    moved = {
        "b_group_id": group_id,
        "b_topic": topic,
        "b_partition": partition,
        "b_expected": checkpoint.expected_offset,
        "b_new": checkpoint.next_offset,
        "b_now": now,
    }
    # None keeps the stored clock; a digest describes the record before the stored offset, so
    # an offset that moves takes the one given, or none (a stale one would mismatch at once).
    kept = {"clock": checkpoint.clock, "last_digest": checkpoint.last_digest}
    moves = checkpoint.next_offset != checkpoint.expected_offset
    given = {name: v for name, v in kept.items() if v is not None or (name == "last_digest" and moves)}
    statement = (
        _MOVE_OFFSET.values({name: bindparam(f"b_{name}") for name in given}) if given else _MOVE_OFFSET
    )
    result = session.execute(statement, {**moved, **{f"b_{name}": value for name, value in given.items()}})
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise CheckpointConflict(
            f"{key}: the stored offset is no longer {checkpoint.expected_offset}",
            topic=topic,
            partition=partition,
        )
