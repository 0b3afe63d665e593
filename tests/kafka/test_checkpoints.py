from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db import migrate
from querywatch.detector.adapters.db.checkpoints import CheckpointConflict, load_partition, save_checkpoint
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.config import DatabaseSettings, Settings


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    settings = Settings(database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'qw.db'}"))
    migrate.upgrade(settings)
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
