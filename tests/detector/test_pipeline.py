"""The one pipeline loop, driven without a broker: an in-memory source and fake ports."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.checkpoints import load_partition, save_checkpoint
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import DeadLetterRow
from querywatch.detector.adapters.kafka.partitions import (
    LEGACY_HELD_EVENTS_KEY,
    CorruptClientState,
    held_chunk_key,
    held_chunk_keys,
    held_events_key,
    pack_client_state,
)
from querywatch.detector.adapters.kafka.processor import Record, StreamProcessor
from querywatch.detector.adapters.sinks import stored_sinks
from querywatch.detector.config import StreamSettings
from querywatch.detector.engine.events import Event, RequestIdFilter, parse_event
from querywatch.detector.engine.profiles import build_profile
from querywatch.detector.engine.reference import pack_events, unpack_events
from querywatch.detector.errors import ConfigError
from querywatch.detector.metrics import REGISTRY
from querywatch.detector.pipeline.loop import Message, Pipeline
from querywatch.detector.pipeline.replay import _Dedup, replay
from querywatch.detector.pipeline.sinks import Sinks
from tests.detector.test_engine import DIM, SETTINGS, _benign, _profiled_engine
from tests.kafka.harness import migrated_database
from tests.storage.databases import KINDS
from tests.storage.databases import migrated_database as storage_database


def _line(request_id: str, client: str, x: Sequence[float], model: str = "m", ts: float = 0.0) -> bytes:
    event = {
        "request_id": request_id,
        "ts": ts,
        "client_id": client,
        "model_id": model,
        "input": [float(v) for v in x],
        "prediction": {"label": 1, "scores": [0.2, 0.8]},
    }
    return json.dumps(event).encode()


def _lines(client: str, n: int, seed: int = 0) -> list[bytes]:
    X = _benign(np.random.default_rng(seed), n)
    return [_line(f"{client}-{i}", client, x, ts=float(i)) for i, x in enumerate(X)]


def test_refusals_carry_the_callers_references_and_dedup_is_the_callers_scope() -> None:
    seen = RequestIdFilter(100)
    pipeline: Pipeline[int] = Pipeline(
        _profiled_engine(),
        is_new=lambda e, _ref: seen.is_new(e.request_id),
        forget=lambda e: seen.forget(e.request_id),
    )
    good = _lines("a", 5)
    messages = [Message(v, "s", i) for i, v in enumerate(good)]
    messages += [
        Message(b"{not json", "s", 100),
        Message(None, "s", 101),
        Message(10**7, "s", 102),
        Message(good[0], "s", 103),  # a redelivery
        Message(_line("x", "a", [0.5] * 3), "s", 104),  # wrong dimension for model m
    ]
    step = pipeline.step(messages)
    assert sorted((ref, e.reason) for ref, e, *_ in step.refused) == [
        (100, "not_json"),
        (101, "not_json"),
        (102, "oversized"),
        (104, "wrong_dimension"),
    ]
    assert step.duplicates == 1 and step.events == 6 and len(step.result.outcomes) == 5
    assert sorted(seen.state()) == [
        f"a-{i}" for i in range(5)
    ]  # the refused "x" forgotten: it may come again


def test_refusals_name_the_client_the_message_names_else_its_key() -> None:
    """A refused event counts against its client: the one its fields name (also when the
    event is refused after decoding), else the Kafka key the serving tier set."""
    pipeline: Pipeline[int] = Pipeline(_profiled_engine(), is_new=lambda e, _r: True, forget=lambda e: None)
    infinite = _line("n", "thief", [0.5, 0.5]).replace(b"0.5]", b"Infinity]")
    messages = [
        Message(infinite, "s", 1),
        Message(_line("w", "thief", [0.5] * 3, model="m"), "s", 2),  # refused after decoding
        Message(b'{"client_id": "ignored\\u0000", "input": [', "s", 3, key=b"keyed"),
        Message(b"\xff", "s", 4, key=b"\xff"),
    ]
    refused = sorted(
        (ref, e.reason, client, model) for ref, e, client, model in pipeline.step(messages).refused
    )
    assert refused == [
        (1, "non_finite", "thief", "m"),
        (2, "wrong_dimension", "thief", "m"),
        (3, "not_json", "keyed", None),
        (4, "not_utf8", None, None),
    ]


def test_per_client_dedup_lets_two_clients_share_a_request_id() -> None:
    filters: dict[str, RequestIdFilter] = {}

    def per_client(event: Event, _ref: int) -> bool:
        return filters.setdefault(event.client_id, RequestIdFilter(10)).is_new(event.request_id)

    pipeline: Pipeline[int] = Pipeline(_profiled_engine(), is_new=per_client, forget=lambda e: None)
    x = [0.5] * DIM
    step = pipeline.step(Message(_line("same", c, x), "s", i) for i, c in enumerate(["a", "b", "a"]))
    assert step.duplicates == 1 and len(step.result.outcomes) == 2


def test_end_of_stream_refuses_a_warm_up_that_cannot_build_with_the_messages_references() -> None:
    pipeline: Pipeline[int] = Pipeline(_profiled_engine(), is_new=lambda e, r: True, forget=lambda e: None)
    held = pipeline.step([Message(_line("n1", "c", [0.1, 0.2], model="new"), "s", 7)])
    assert [e.request_id for e in held.result.held] == ["n1"] and held.refused == []
    end = pipeline.finish()
    assert [(ref, e.reason) for ref, e, *_ in end.refused] == [(7, "no_profile")]


def test_held_events_taken_back_from_a_checkpoint_and_then_refused_are_reported_not_lost() -> None:
    """A consumer gives the engine back its partition's held events outside any step: no
    message of the pipeline brought them. Adopted into a profile of another width that
    another consumer stored, they are refused, and the step says which, with why."""
    engine = _profiled_engine()
    taken_back = [parse_event(_line(f"n{i}", "c", [0.1, 0.2], model="new")) for i in range(3)]
    assert len(engine.process_batch(taken_back).held) == 3
    other_width = build_profile(_benign(np.random.default_rng(1), 3000), model_id="new", settings=SETTINGS)
    engine.profiles.put(other_width)
    pipeline: Pipeline[int] = Pipeline(engine, is_new=lambda e, r: True, forget=lambda e: None)
    step = pipeline.step([Message(_line("n9", "d", [0.5] * DIM, model="new"), "s", 9)])
    assert step.refused == [] and engine.pending_warmup() == 0
    assert [(e.request_id, error.reason) for e, error in step.unreferenced] == [
        (f"n{i}", "wrong_dimension") for i in range(3)
    ]
    assert [o.update.client_id for o in step.result.outcomes] == ["d"]


class _Outputs:
    """The Kafka outputs, in memory: an outcome sink and the dead-letter port."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = []
        self.letters: list[Any] = []
        self.committed_batches = 0
        self.flushed_after: list[int] = []  # committed batches at each flush

    def write(self, outcomes: Sequence[Any], tx: object) -> None:
        self.outcomes += outcomes

    def committed(self, tx: object) -> None:
        self.committed_batches += 1

    def flush(self) -> None:
        self.flushed_after.append(self.committed_batches)

    def send_dead_letters(self, letters: Sequence[Any]) -> None:
        self.letters += letters

    def send_summaries(self, summaries: Sequence[Any]) -> None:
        assert not summaries  # this engine emits none


def _processor(
    sessions: sessionmaker[Session],
    outputs: _Outputs,
    *,
    lazy: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> StreamProcessor:
    """A consumer's processor of group "g" over ``sessions``, writing to ``outputs``; ``lazy``:
    clients' states are loaded on their next event (a resident cap), else with their partition."""
    engine = _profiled_engine()
    if not lazy:
        engine.max_resident = None
    return StreamProcessor(
        engine=engine,
        sessions=sessions,
        outputs=outputs,
        sinks=Sinks([outputs, *stored_sinks()]),
        group_id="g",
        checkpoint_every_events=10,
        checkpoint_every_seconds=60.0,
        max_event_bytes=4096,
        clock=clock,
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_consumer_loop_checkpoints_records_of_an_in_memory_source(kind: str, tmp_path: Path) -> None:
    # PostgreSQL too: its text refuses a NUL, which the held events' key once had.
    with storage_database(kind, tmp_path) as settings:
        sql = make_engine(settings.database)
        sessions = make_sessionmaker(sql)
        outputs = _Outputs()
        processor = _processor(sessions, outputs)
        processor.assign([("t", 0)])
        values = [*_lines("a", 20), b"garbage", _lines("a", 1)[0], _line("n1", "b", [0.1, 0.2], model="new")]
        processor.process(Record("t", 0, offset, None, v) for offset, v in enumerate(values))
        assert processor.checkpoint() == {("t", 0): len(values)}
        assert len(outputs.outcomes) == 20 and [d.reason for d in outputs.letters] == ["not_json"]
        assert outputs.committed_batches == 1 and outputs.flushed_after == [0]  # acknowledged, then committed
        with transaction(sessions) as session:
            stored = load_partition(session=session, group_id="g", topic="t", partition=0)
        assert stored.next_offset == len(values) and set(stored.client_states) == {"a", held_events_key(0)}
        sql.dispose()


def test_partitions_due_together_commit_together_but_a_refused_one_does_not_hold_back_the_rest(
    tmp_path: Path,
) -> None:
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    outputs = _Outputs()
    processor = _processor(sessions, outputs)
    processor.assign([("t", 0), ("t", 1)])
    processor.process(Record("t", p, o, None, v) for p in (0, 1) for o, v in enumerate(_lines(f"c{p}", 5)))
    assert processor.checkpoint() == {("t", 0): 5, ("t", 1): 5} and outputs.committed_batches == 1

    processor.process(
        Record("t", p, 5 + o, None, v) for p in (0, 1) for o, v in enumerate(_lines(f"d{p}", 5))
    )
    with transaction(sessions) as session:  # another consumer took partition 0 and moved it on
        save_checkpoint(
            session=session,
            group_id="g",
            topic="t",
            partition=0,
            expected_offset=5,
            next_offset=7,
            client_states={},
        )
    assert processor.checkpoint() == {("t", 1): 10}
    assert processor.seeks[("t", 0)] == 7  # reloaded from the other consumer's checkpoint
    with transaction(sessions) as session:
        assert load_partition(session=session, group_id="g", topic="t", partition=1).next_offset == 10


def _held_gauge() -> float | None:
    return REGISTRY.get_sample_value("querywatch_warmup_events_held")


def _taken_back(
    sessions: sessionmaker[Session], held: list[bytes]
) -> tuple[StreamProcessor, _Outputs, list[float]]:
    """A consumer holds ``held`` (events of a model with no profile) on partition ("t", 0)
    and checkpoints; a new owner takes the partition over: (it, its outputs, its clock)."""
    earlier = _processor(sessions, _Outputs())
    earlier.assign([("t", 0)])
    earlier.process(Record("t", 0, o, None, v) for o, v in enumerate(held))
    earlier.checkpoint()
    now = [0.0]
    outputs = _Outputs()
    later = _processor(sessions, outputs, clock=lambda: now[0])
    later.assign([("t", 0)])
    return later, outputs, now


def test_held_events_of_a_silent_model_are_scored_once_another_consumer_stored_its_profile(
    tmp_path: Path,
) -> None:
    """A consumer took over a partition whose checkpoint holds a warm-up's events; the model's
    clients there fell silent and another consumer stored its profile. Within
    ``checkpoint_every_seconds`` the held events are scored and checkpointed, no new record
    of the partition needed."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    held = [
        _line(f"n{i}", "b", x, model="new", ts=float(i))
        for i, x in enumerate(_benign(np.random.default_rng(3), 6))
    ]
    later, outputs, now = _taken_back(sessions, held)
    assert later.engine.pending_warmup() == 6 == _held_gauge()
    later.engine.profiles.put(
        build_profile(_benign(np.random.default_rng(4), 3000), model_id="new", settings=SETTINGS)
    )
    now[0] = 59.0
    later.process([])
    assert later.engine.pending_warmup() == 6  # looked for at most every checkpoint_every_seconds
    now[0] = 61.0
    later.process([])
    assert later.engine.pending_warmup() == 0 == _held_gauge()
    assert later.checkpoint() == {("t", 0): 6}
    assert [o.update.client_id for o in outputs.outcomes] == ["b"] * 6
    with transaction(sessions) as session:
        stored = load_partition(session=session, group_id="g", topic="t", partition=0)
    assert set(stored.client_states) == {"b"} and stored.next_offset == 6


def test_a_revoked_partitions_held_events_leave_nothing_behind_in_memory(tmp_path: Path) -> None:
    """The engine drops a revoked partition's held events (the next owner takes them back
    from the checkpoint); the pipeline's references to them go too, or a consumer whose
    partitions move while a model warms up would keep them for as long as it runs."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    processor = _processor(sessions, _Outputs())
    processor.assign([("t", 0), ("t", 1)])
    held = [_line(f"n{i}", f"c{p}", [0.1, 0.2], model="new", ts=float(i)) for p in (0, 1) for i in range(3)]
    processor.process(Record("t", k // 3, k % 3, None, v) for k, v in enumerate(held))
    assert processor.engine.pending_warmup() == 6 == len(processor.pipeline._held)
    processor.revoke([("t", 0)])
    assert processor.engine.pending_warmup() == 3 == len(processor.pipeline._held)
    kept = processor.partitions[("t", 1)].held
    assert {processor.pipeline._held[id(e)][1][0].partition for e in kept} == {1}


def test_held_events_taken_back_and_refused_are_dead_lettered_re_encoded_with_the_checkpoint(
    tmp_path: Path,
) -> None:
    """Held events a new owner took back from a checkpoint have no record: refused once the
    profile another consumer stored came (of another width), they are dead-lettered as
    re-encoded events that read back to themselves, sent and stored with the checkpoint."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    held = [_line(f"n{i}", "b", [0.1, 0.2 + i], model="new", ts=float(i)) for i in range(3)]
    later, outputs, now = _taken_back(sessions, held)
    later.engine.profiles.put(
        build_profile(_benign(np.random.default_rng(4), 3000), model_id="new", settings=SETTINGS)
    )
    now[0] = 61.0
    later.process([])
    assert later.checkpoint() == {("t", 0): 3} and later.engine.pending_warmup() == 0
    assert [(d.source, d.reason, d.key) for d in outputs.letters] == [("t/0/-1", "wrong_dimension", b"b")] * 3
    back = [parse_event(d.raw) for d in outputs.letters]
    assert [(e.request_id, e.ts, e.input.tolist(), e.label) for e in back] == [
        (f"n{i}", float(i), [0.1, 0.2 + i], 1) for i in range(3)
    ]
    with transaction(sessions) as session:
        rows = session.execute(select(DeadLetterRow.source, DeadLetterRow.detail, DeadLetterRow.raw)).all()
        stored = load_partition(session=session, group_id="g", topic="t", partition=0)
    assert [(source, bytes(raw)) for source, _, raw in rows] == [("t/0/-1", d.raw) for d in outputs.letters]
    assert all("re-encoded" in detail for _, detail, _ in rows) and set(stored.client_states) == set()


def test_a_refused_event_re_driven_once_its_cause_is_gone_is_scored_not_dropped_as_a_redelivery(
    tmp_path: Path,
) -> None:
    """Events stamped two days ahead of their partition are dead-lettered (``future_timestamp``)
    until the stream moves on; the operator re-drives them (their original bytes, new
    offsets). Their request ids was remembered before the guard refused it: unless a
    refusal forgets it, the re-driven events are redeliveries and silently dropped."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    outputs = _Outputs()
    processor = _processor(sessions, outputs)
    processor.assign([("t", 0)])
    X = _benign(np.random.default_rng(5), 40)
    now = [_line(f"{c}-{i}", c, X[3 * i + k], ts=float(i)) for i in range(4) for k, c in enumerate("abc")]
    ahead = _line("a-ahead", "a", X[20], ts=2 * 86400.0)
    later = [_line(f"{c}-late", c, X[21 + k], ts=2 * 86400.0 + k) for k, c in enumerate("abc")]
    values = [*now, ahead, *later]
    processor.process(Record("t", 0, offset, None, v) for offset, v in enumerate(values))
    assert processor.checkpoint() == {("t", 0): len(values)}
    # The stream moved on at the third client ahead; the events that showed it are refused.
    assert [d.reason for d in outputs.letters] == ["future_timestamp"] * 3
    assert [json.loads(d.raw)["request_id"] for d in outputs.letters] == ["a-ahead", "a-late", "b-late"]
    scored = len(outputs.outcomes)
    processor.process(Record("t", 0, len(values) + i, None, d.raw) for i, d in enumerate(outputs.letters))
    assert processor.checkpoint() == {("t", 0): len(values) + 3}
    assert [(o.update.client_id, o.update.queries) for o in outputs.outcomes[scored:]] == [
        ("a", 5),
        ("a", 6),
        ("b", 5),
    ]


def test_held_events_stored_under_the_earlier_key_move_to_their_partitions_own(tmp_path: Path) -> None:
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))

    def stored() -> dict[str, bytes]:
        with transaction(sessions) as session:
            return load_partition(session=session, group_id="g", topic="t", partition=0).client_states

    # Written as before the per-partition key (SQLite could store its NUL).
    held = parse_event(_line("n1", "b", [0.1, 0.2], model="new"))
    with transaction(sessions) as session:
        save_checkpoint(
            session=session,
            group_id="g",
            topic="t",
            partition=0,
            expected_offset=None,
            next_offset=1,
            client_states={LEGACY_HELD_EVENTS_KEY: pack_events([held])},
        )
    assert set(stored()) == {LEGACY_HELD_EVENTS_KEY}

    later = _processor(sessions, _Outputs())
    later.assign([("t", 0)])
    later.process([Record("t", 0, 1, None, _line("n2", "b", [0.2, 0.1], model="new"))])
    later.checkpoint()
    assert set(stored()) == {held_events_key(0)}
    assert [e.request_id for e in unpack_events(stored()[held_events_key(0)])] == ["n1", "n2"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lazy", [True, False], ids=["on its next event", "with its partition"])
def test_each_checkpoint_stores_the_events_held_since_the_last_one(
    kind: str, tmp_path: Path, lazy: bool
) -> None:
    # A warm-up's held events are stored as chunks (``held_chunk_key``): rewritten whole at
    # every checkpoint, a warm-up of n events wrote about n^2 / (2 x the events between
    # checkpoints). New events make a chunk that takes in the chunks before it no larger
    # than it (a binary counter), so a slow model keeps few rows. A restart takes the chunks
    # back in order; a completed warm-up drops them all.
    with storage_database(kind, tmp_path) as settings:
        sql = make_engine(settings.database)
        sessions = make_sessionmaker(sql)
        rng = np.random.default_rng(3)

        def stored() -> dict[str, list[str]]:
            with transaction(sessions) as session:
                states = load_partition(session=session, group_id="g", topic="t", partition=0).client_states
            return {
                key: [e.request_id for e in unpack_events(states[key])] for key in held_chunk_keys(states, 0)
            }

        def held(offset: int, n: int) -> list[Record]:
            return [
                Record(
                    "t", 0, offset + i, None, _line(f"n{offset + i}", f"c{i % 4}", rng.random(2), model="new")
                )
                for i in range(n)
            ]

        def names(start: int, stop: int) -> list[str]:
            return [f"n{i}" for i in range(start, stop)]

        first = _processor(sessions, _Outputs(), lazy=lazy)
        first.assign([("t", 0)])
        for offset, n in ((0, 8), (8, 4), (12, 2)):
            first.process(held(offset, n))
            first.checkpoint()
        chunks = {
            held_chunk_key(0, 0): names(0, 8),
            held_chunk_key(0, 1): names(8, 12),
            held_chunk_key(0, 2): names(12, 14),
        }
        assert stored() == chunks
        first.checkpoint()  # nothing new held: nothing written
        assert stored() == chunks

        second = _processor(sessions, _Outputs(), lazy=lazy)
        second.assign([("t", 0)])
        second.process(held(14, 1))
        second.checkpoint()
        assert stored() == {**chunks, held_chunk_key(0, 3): ["n14"]}
        second.process(held(15, 3))  # 3 takes in 1, then 2, 4 and 8: one chunk of all 18
        second.checkpoint()
        assert stored() == {held_chunk_key(0, 0): names(0, 18)}
        assert second.engine.pending_warmup() == 18

        outputs = _Outputs()
        third = _processor(sessions, outputs, lazy=lazy)
        third.assign([("t", 0)])
        third.process(held(18, SETTINGS.warmup_events - 18))  # the warm-up completes: its events are let go
        third.checkpoint()
        assert stored() == {}
        assert len(outputs.outcomes) == SETTINGS.warmup_events
        sql.dispose()


@pytest.mark.parametrize("lazy", [True, False], ids=["on its next event", "with its partition"])
@pytest.mark.parametrize(
    ("blob", "says"),
    [
        (pack_client_state(b"QWC9" + bytes(40), RequestIdFilter(4)), "not a querywatch client state"),
        (b"QWC1", "truncated"),
    ],
    ids=["a format this release does not write", "a damaged row"],
)
def test_a_stored_state_this_release_cannot_read_stops_the_partition_with_where_and_what_to_do(
    blob: bytes, says: str, lazy: bool, tmp_path: Path
) -> None:
    """A newer release's state (or a damaged row) is not scored afresh, which would drop the
    client's evidence without a word: taking the partition fails, naming the client, the
    partition and the group, with what to do."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    writer = _processor(sessions, _Outputs())
    writer.assign([("t", 3)])
    writer.process(Record("t", 3, o, None, v) for o, v in enumerate(_lines("readable", 5)))
    writer.checkpoint()
    with transaction(sessions) as session:
        stored = load_partition(session=session, group_id="g", topic="t", partition=3)
        save_checkpoint(
            session=session,
            group_id="g",
            topic="t",
            partition=3,
            expected_offset=stored.next_offset,
            next_offset=stored.next_offset,
            client_states={"newer": blob},
        )
    reader = _processor(sessions, _Outputs(), lazy=lazy)
    with pytest.raises(CorruptClientState) as caught:
        reader.assign([("t", 3)])
        reader.process([Record("t", 3, 5, None, _lines("newer", 1)[0])])
    message = str(caught.value)
    assert "'newer'" in message and "t/3" in message and "'g'" in message and says in message
    assert caught.value.hint is not None and "client_states" in caught.value.hint


def _trace(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_replay_dedups_per_client_by_default_or_over_the_whole_trace(tmp_path: Path) -> None:
    x = [0.5] * DIM
    path = _trace(tmp_path, [_line("same", "a", x), _line("same", "b", x), _line("same", "a", x)])
    per_client = replay(path, _profiled_engine())
    whole = replay(path, _profiled_engine(), stream=StreamSettings(dedup_scope="stream"))
    assert (per_client.events, per_client.duplicates) == (2, 1)
    assert (whole.events, whole.duplicates) == (1, 2)


def test_a_new_owner_judges_event_times_by_the_clock_its_predecessor_stored(tmp_path: Path) -> None:
    """The partition's event-time clock is stored with its checkpoint: a consumer that takes
    the partition over refuses an event two days ahead even when it comes alone in its first
    batch, as the old owner would have (from a first batch's median alone it was admitted,
    and the watermark jumped two days)."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    X = _benign(np.random.default_rng(7), 13)
    now = [_line(f"{c}-{i}", c, X[3 * i + k], ts=float(i)) for i in range(4) for k, c in enumerate("abc")]
    earlier = _processor(sessions, _Outputs())
    earlier.assign([("t", 0)])
    earlier.process(Record("t", 0, o, None, v) for o, v in enumerate(now))
    assert earlier.checkpoint() == {("t", 0): len(now)}

    outputs = _Outputs()
    later = _processor(sessions, outputs)
    later.assign([("t", 0)])
    ahead = _line("a-ahead", "a", X[12], ts=2 * 86400.0)
    later.process([Record("t", 0, len(now), None, ahead)])
    assert later.checkpoint() == {("t", 0): len(now) + 1}
    assert [d.reason for d in outputs.letters] == ["future_timestamp"]
    assert later.guard.state(("t", 0)) == earlier.guard.state(("t", 0))  # the watermark stayed at 3.0


@pytest.mark.parametrize("scope", ["client", "stream"])
def test_replay_judges_again_an_event_it_refused_when_it_comes_again_as_the_consumer_does(
    tmp_path: Path, scope: str
) -> None:
    """The same line twice: first stamped ahead of a stream that has not moved on (refused),
    then again, batches later (2,048 lines a batch), once it has: judged again and scored,
    not dropped as a redelivery, as a consumer does with a re-driven dead letter."""
    X = _benign(np.random.default_rng(6), 40)
    now = [_line(f"n-{i}", "abc"[i % 3], X[i % 40], ts=float(i)) for i in range(2100)]
    ahead = _line("a-ahead", "a", X[20], ts=2 * 86400.0)
    later = [_line(f"f-{i}", f"f{i}", X[i % 40], ts=2 * 86400.0 + i) for i in range(2100)]
    path = _trace(tmp_path, [*now, ahead, *later, ahead])
    report = replay(path, _profiled_engine(), stream=StreamSettings(dedup_scope=scope))
    # The stream moves on at the third client ahead: "a-ahead" and "f-0" showed it, refused.
    assert report.rejected["future_timestamp"] == 2 and report.duplicates == 0
    assert report.clients["a"].queries == 701


def test_replays_dedup_remembers_ids_across_batches_and_shares_the_reports_id_string(tmp_path: Path) -> None:
    x = [0.5] * DIM
    # Client "acct-a" in the first batch, again past it (2,048 lines a batch): 12 ids, then
    # redeliveries of the newest and of the oldest it still remembers (the ordered dict past 8).
    filler = [_line(f"f-{i}", f"c{i}", x, ts=1.0) for i in range(2100)]
    a = [_line(f"a-{i}", "acct-a", x, ts=2.0 + i) for i in range(12)]
    path = _trace(tmp_path, [a[0], *filler, *a[1:], a[11], a[0], a[11]])
    report = replay(path, _profiled_engine(), stream=StreamSettings(dedup_per_client=12))
    assert (report.clients["acct-a"].queries, report.duplicates) == (12, 3)
    seen = report.clients["acct-a"].seen
    assert seen is not None and list(seen)[-1] == "a-11" and len(seen) == 12
    event = parse_event(a[1])
    first = report.clients["acct-a"].client_id
    assert event.client_id == first and event.client_id is not first
    dedup = _Dedup(StreamSettings(), 100, report.clients)
    assert not dedup.is_new(event, 0)  # a-1 was seen
    assert event.client_id is first  # what the engine keeps of it shares the one string


def test_replay_evicts_idle_clients_as_the_consumer_does(tmp_path: Path) -> None:
    day = 86400.0
    x = [0.5] * DIM
    early = [_line(f"old-{i}", "old", x, ts=float(i)) for i in range(3)]
    late = [_line(f"new-{i}", f"c{i % 3}", x, ts=10 * day + i) for i in range(3000)]  # 2 batches on
    path = _trace(tmp_path, early + late)
    engine = _profiled_engine(SETTINGS.model_copy(update={"idle_evict_seconds": day}))
    report = replay(path, engine)
    assert "old" not in engine.client_ids() and report.clients["old"].queries == 3
    kept = _profiled_engine(SETTINGS.model_copy(update={"idle_evict_seconds": day}))
    replay(path, kept, stream=StreamSettings(evict_idle=False))
    assert "old" in kept.client_ids()


def test_a_consumer_refuses_a_dedup_scope_its_partitions_cannot_share(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dedup_scope"):
        StreamProcessor(
            engine=_profiled_engine(),
            sessions=make_sessionmaker(make_engine(migrated_database(tmp_path))),
            outputs=_Outputs(),
            sinks=Sinks([]),
            group_id="g",
            checkpoint_every_events=10,
            checkpoint_every_seconds=60.0,
            max_event_bytes=4096,
            stream=StreamSettings(dedup_scope="stream"),
        )


def test_an_assignment_says_where_the_partition_resumes_in_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A partition never checkpointed is said to have no checkpoint (it read "resume at None"),
    a checkpointed one the offset its new owner resumes at."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    X = _benign(np.random.default_rng(7), 3)
    lines = [_line(f"a-{i}", "a", X[i], ts=float(i)) for i in range(3)]
    earlier = _processor(sessions, _Outputs())
    with caplog.at_level(logging.INFO, logger="querywatch.detector.adapters.kafka.processor"):
        earlier.assign([("t", 0)])
        earlier.process(Record("t", 0, o, None, v) for o, v in enumerate(lines))
        earlier.checkpoint()
        _processor(sessions, _Outputs()).assign([("t", 0)])
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("assigned t/0")]
    assert said == [
        "assigned t/0: client states load on each client's next event, no checkpoint yet "
        "(kafka.start_from says where it starts)",
        "assigned t/0: client states load on each client's next event, resuming at offset 3",
    ]


def test_events_held_for_a_warm_up_are_said_then_and_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A consumer fed fewer events than a warm-up takes held them all and said nothing."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    X = _benign(np.random.default_rng(7), 4)
    lines = [_line(f"a-{i}", "a", X[i], model="new-model", ts=float(i)) for i in range(4)]
    now = [0.0]
    processor = _processor(sessions, _Outputs(), clock=lambda: now[0])
    processor.assign([("t", 0)])
    with caplog.at_level(logging.INFO, logger="querywatch.detector.adapters.kafka.processor"):
        for offset, (at, line) in enumerate(zip((0.0, 30.0, 61.0, 62.0), lines, strict=True)):
            now[0] = at
            processor.process([Record("t", 0, offset, None, line)])
    said = [r.getMessage() for r in caplog.records if "held for its warm-up" in r.getMessage()]
    assert len(said) == 2  # at 0 s and 61 s; not at 30 s, nor at 62 s
    assert said[0].startswith("new-model: 1 events held for its warm-up")
    assert said[1] != said[0] and said[1].startswith("new-model: ")
    assert f"the first {SETTINGS.warmup_events} (QUERYWATCH_DETECTION__WARMUP_EVENTS; up to 4" in said[0]
    assert "--model-id new-model --out DIR, then QUERYWATCH_DETECTION__PROFILE_DIR=DIR" in said[0]


def test_events_held_to_complete_a_trusted_profile_are_not_said_to_await_a_warm_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trusted file of inputs alone waits for the model's answers: the log told an operator
    who had set QUERYWATCH_DETECTION__PROFILE_DIR to give the model a profile directory."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    processor = _processor(sessions, _Outputs())
    trusted = build_profile(
        _benign(np.random.default_rng(4), 3000), model_id="new", settings=SETTINGS, live_answers=True
    )
    processor.engine.profiles.put(trusted)
    processor.assign([("t", 0)])
    with caplog.at_level(logging.INFO, logger="querywatch.detector.adapters.kafka.processor"):
        processor.process(
            [Record("t", 0, 0, None, _line("n0", "c", _benign(np.random.default_rng(5), 1)[0], model="new"))]
        )
    (said,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("new: ")]
    assert said.startswith("new: 1 events held until the model's answers to the first")
    assert "complete its trusted profile" in said and "PROFILE_DIR" not in said


def test_a_new_owner_reads_the_checkpoints_last_record_again_to_find_a_replaced_log(tmp_path: Path) -> None:
    """A broker emptied (or a topic recreated) and filled past the stored offset before a
    consumer restarted: the offsets alone looked right, and the new log's first events (up to
    the stored offset) were skipped, with no error line and no metric."""
    sessions = make_sessionmaker(make_engine(migrated_database(tmp_path)))
    first, replaced = _lines("a", 8, seed=1), _lines("b", 8, seed=2)
    earlier = _processor(sessions, _Outputs())
    earlier.assign([("t", 0)])
    earlier.process(Record("t", 0, o, None, v) for o, v in enumerate(first[:5]))
    assert earlier.checkpoint() == {("t", 0): 5}

    same = _processor(sessions, _Outputs())
    same.assign([("t", 0)])
    assert same.seeks[("t", 0)] == 4  # the checkpoint's last record, read again
    same.process(Record("t", 0, o, None, first[o]) for o in (4, 5))
    work = same.partitions[("t", 0)]
    assert (work.below_floor, work.next_offset) == (None, 6)  # the same log: on from 5

    other = _processor(sessions, _Outputs())
    other.assign([("t", 0)])
    other.process(Record("t", 0, o, None, replaced[o]) for o in (4, 5, 6))
    work = other.partitions[("t", 0)]
    assert (work.below_floor, work.next_offset) == (4, 5)  # another record there: judged, nothing read


def test_answers_without_scores_count_only_events_scored(tmp_path: Path) -> None:
    """Labels-only events of a model whose warm-up could not make a profile were refused
    (`no_profile`) and still counted as answers without scores: "60 of 0" in the summary."""
    X = _benign(np.random.default_rng(8), 12)

    def labelled(request_id: str, client: str, model: str, x: np.ndarray, ts: float) -> str:
        event = json.loads(_line(request_id, client, x, model=model, ts=ts))
        return json.dumps({**event, "prediction": {"label": 1}})

    lines = [labelled(f"r{i}", "c", "tiny", x, float(i)) for i, x in enumerate(X)]
    scored = [labelled(f"s{i}", "d", "m", x, float(i)) for i, x in enumerate(X[:5])]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines + scored) + "\n")
    report = replay(path, _profiled_engine())
    assert report.rejected == {"no_profile": 12}
    assert (report.events, report.unscored) == (5, 5)
