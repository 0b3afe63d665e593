"""A partition's event-time clock stored with its offset (``partition_offsets.clock``), on
SQLite and PostgreSQL: written with the first checkpoint and each later one that has a
clock, kept by one that has none (the aggregator's, a consumer's before any event)."""

from __future__ import annotations

from pathlib import Path

import pytest

from querywatch.detector.adapters.db.checkpoints import load_partition, save_checkpoint
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.guard import StreamClock
from tests.storage.databases import KINDS, migrated_database


@pytest.mark.parametrize("kind", KINDS)
def test_the_clock_comes_back_with_the_offset_and_a_checkpoint_without_one_keeps_it(
    kind: str, tmp_path: Path
) -> None:
    with migrated_database(kind, tmp_path) as settings:
        database = make_engine(settings.database)
        sessions = make_sessionmaker(database)
        clock = StreamClock(margin=60.0)
        clock.judge([Event(f"r{i}", 100.0 + i, f"acct-ü{i % 4}", "m", None) for i in range(8)])  # type: ignore[arg-type]
        moves = [(None, 8, clock.state()), (8, 9, None), (9, 12, {**clock.state(), "watermark": 130.0})]
        stored = []
        for expected, offset, state in moves:
            with transaction(sessions) as session:
                save_checkpoint(
                    session=session,
                    group_id="g",
                    topic="t",
                    partition=0,
                    expected_offset=expected,
                    next_offset=offset,
                    client_states={},
                    clock=state,
                )
            with transaction(sessions) as session:
                stored.append(load_partition(session=session, group_id="g", topic="t", partition=0))
        database.dispose()
    assert [s.next_offset for s in stored] == [8, 9, 12]
    assert stored[0].clock == stored[1].clock == clock.state()
    assert stored[2].clock is not None and stored[2].clock["watermark"] == 130.0
    back = StreamClock.from_state(stored[0].clock, margin=60.0)
    assert (back.watermark, back.now) == (clock.watermark, clock.now)
