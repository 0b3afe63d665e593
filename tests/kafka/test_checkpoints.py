from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.checkpoints import (
    CheckpointConflict,
    PartitionCheckpoint,
    load_partition,
    save_checkpoint,
    save_checkpoints,
)
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.guard import StreamClock
from tests.storage.databases import KINDS, migrated_database


@pytest.fixture(params=KINDS)
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with migrated_database(str(request.param), tmp_path) as settings:
        engine = make_engine(settings.database)
        yield make_sessionmaker(engine)
        engine.dispose()


def _save(sessions: sessionmaker[Session], expected: int | None, new: int, **kw: object) -> None:
    with transaction(sessions) as session:
        save_checkpoint(
            session=session,
            group_id="g",
            topic="t",
            partition=3,
            expected_offset=expected,
            next_offset=new,
            client_states=kw.get("states", {}),  # type: ignore[arg-type]
            dropped_clients=kw.get("dropped", ()),  # type: ignore[arg-type]
            clock=kw.get("clock"),  # type: ignore[arg-type]
        )


def _load(sessions: sessionmaker[Session], partition: int = 3) -> tuple[int | None, dict[str, bytes]]:
    with transaction(sessions) as session:
        stored = load_partition(session=session, group_id="g", topic="t", partition=partition)
    return stored.next_offset, stored.client_states


def test_a_partition_never_checkpointed_has_no_offset(sessions: sessionmaker[Session]) -> None:
    assert _load(sessions) == (None, {})


def test_offsets_and_states_round_trip_and_move_forward(sessions: sessionmaker[Session]) -> None:
    _save(sessions, None, 10, states={"a": b"1", "b": b"2"})
    _save(sessions, 10, 25, states={"a": b"3"}, dropped=["b"])
    assert _load(sessions) == (25, {"a": b"3"})
    assert _load(sessions, partition=4) == (None, {})


def test_a_stale_writer_is_fenced_off_and_changes_nothing(sessions: sessionmaker[Session]) -> None:
    _save(sessions, None, 10, states={"a": b"1"})
    _save(sessions, 10, 20, states={"a": b"new"})
    with pytest.raises(CheckpointConflict):
        _save(sessions, 10, 15, states={"a": b"zombie"})
    with pytest.raises(CheckpointConflict):
        _save(sessions, None, 5, states={"a": b"zombie"})
    assert _load(sessions) == (20, {"a": b"new"})


def test_many_clients_fit_in_one_checkpoint(sessions: sessionmaker[Session]) -> None:
    states = {f"c{i}": bytes([i % 256]) for i in range(2000)}
    _save(sessions, None, 1, states=states)
    _save(sessions, 1, 2, states=states)
    assert _load(sessions) == (2, states)


def test_partitions_checkpointed_together_each_store_their_offset_and_states(
    sessions: sessionmaker[Session],
) -> None:
    _save(sessions, None, 10, states={"a": b"1", "gone": b"2"})
    with transaction(sessions) as session:
        save_checkpoints(
            session=session,
            group_id="g",
            checkpoints=[
                PartitionCheckpoint("t", 3, 10, 12, {"a": b"3"}, {"gone"}),
                PartitionCheckpoint("t", 4, None, 7, {"b": b"4"}),
            ],
        )
    assert _load(sessions, 3) == (12, {"a": b"3"})
    assert _load(sessions, 4) == (7, {"b": b"4"})


def test_a_client_two_partitions_store_ends_as_the_later_one_says(sessions: sessionmaker[Session]) -> None:
    # As if each partition's checkpoint were written in turn: a client whose events moved
    # to another partition is stored (or dropped) by the later one.
    with transaction(sessions) as session:
        save_checkpoints(
            session=session,
            group_id="g",
            checkpoints=[
                PartitionCheckpoint("t", 3, None, 5, {"moved": b"old", "dropped": b"x"}),
                PartitionCheckpoint("t", 4, None, 6, {"moved": b"new"}, {"dropped"}),
            ],
        )
    assert _load(sessions, 3) == (5, {})
    assert _load(sessions, 4) == (6, {"moved": b"new"})


def test_a_conflict_names_its_partition_and_the_transaction_stores_nothing(
    sessions: sessionmaker[Session],
) -> None:
    _save(sessions, None, 10, states={"a": b"1"})
    with pytest.raises(CheckpointConflict) as refused, transaction(sessions) as session:
        save_checkpoints(
            session=session,
            group_id="g",
            checkpoints=[
                PartitionCheckpoint("t", 4, None, 3, {"b": b"2"}),
                PartitionCheckpoint("t", 3, 9, 20, {"a": b"zombie"}),
            ],
        )
    assert refused.value.key == ("t", 3)
    assert (_load(sessions, 3), _load(sessions, 4)) == ((10, {"a": b"1"}), (None, {}))


def test_the_event_time_clock_comes_back_with_the_offset_and_a_checkpoint_without_one_keeps_it(
    sessions: sessionmaker[Session],
) -> None:
    """``partition_offsets.clock``: written with the first checkpoint and each later one that
    has a clock, kept by one that has none (the aggregator's, a consumer's before any event)."""
    clock = StreamClock(margin=60.0)
    clock.judge([Event(f"r{i}", 100.0 + i, f"acct-ü{i % 4}", "m", None) for i in range(8)])  # type: ignore[arg-type]
    stored = []
    for expected, new, state in [
        (None, 8, clock.state()),
        (8, 9, None),
        (9, 12, {**clock.state(), "watermark": 130.0}),
    ]:
        _save(sessions, expected, new, clock=state)
        with transaction(sessions) as session:
            stored.append(load_partition(session=session, group_id="g", topic="t", partition=3))
    assert [s.next_offset for s in stored] == [8, 9, 12]
    assert stored[0].clock == stored[1].clock == clock.state()
    assert stored[2].clock is not None and stored[2].clock["watermark"] == 130.0
    back = StreamClock.from_state(stored[0].clock, margin=60.0)
    assert (back.watermark, back.now) == (clock.watermark, clock.now)
