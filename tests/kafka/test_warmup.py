"""A model warming up holds only its own events: on the real broker, every other model and
partition checkpoints as if it were not there, and its held events survive a restart. A
trusted profile awaiting live answers is held and completed the same way."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from querywatch.detector.adapters.db.checkpoints import load_partition
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.shared_profiles import DatabaseProfileStore
from querywatch.detector.adapters.db.tables import ModelProfileRow
from querywatch.detector.adapters.kafka.partitions import held_events_key
from querywatch.detector.config import DetectionSettings, KafkaSettings, Settings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
from querywatch.detector.engine.reference import unpack_events
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.simulate.victim import MODEL_ID, load_victim
from querywatch.models.profile import ReferenceProfile
from tests.kafka.harness import (
    consume_everything,
    consumer_settings,
    end_offsets,
    migrated_database,
    produce,
    replay_expectation,
    trace_lines,
    trace_truth,
)

pytestmark = pytest.mark.kafka

NEW_MODEL_EVENT = json.dumps(
    {
        "request_id": "never-seen-1",
        "ts": 1_700_000_000,
        "client_id": "acct-new-model",
        "model_id": "never-seen-v1",
        "input": [0.5, 0.25, 0.125],
    },
    separators=(",", ":"),
).encode()


def _held(settings: Settings) -> dict[int, list[str]]:
    """Partition -> request ids of the held events its checkpoint stores."""
    database = make_engine(settings.database)
    sessions = make_sessionmaker(database)
    held = {}
    try:
        for partition in end_offsets(settings.kafka):
            with transaction(sessions) as session:
                stored = load_partition(
                    session=session,
                    group_id=settings.kafka.group_id,
                    topic=settings.kafka.topic,
                    partition=partition,
                )
            blob = stored.client_states.get(held_events_key(partition))
            if blob is not None:
                held[partition] = [e.request_id for e in unpack_events(blob)]
    finally:
        database.dispose()
    return held


def test_one_event_of_a_never_seen_model_delays_no_checkpoint(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    lines = trace_lines()
    expected = replay_expectation(lines, settings.detection, tmp_path)
    # The new model's event comes first, so every later event of its partition follows it.
    produce(kafka_settings, [NEW_MODEL_EVENT, *lines])

    # consume_everything returns once every partition's checkpoint covers its end offset:
    # the partition of the held event too.
    result = consume_everything(settings)
    assert result.alerts == expected.alerts
    assert result.clients == expected.clients
    assert result.dead_letters == []
    held = _held(settings)
    assert list(held.values()) == [["never-seen-1"]]

    # A restart takes the held event back from the checkpoint: the next checkpoint of its
    # partition stores it again, with the model's next event (same client, same partition).
    produce(kafka_settings, [NEW_MODEL_EVENT.replace(b"never-seen-1", b"never-seen-2")])
    consume_everything(settings)
    assert list(_held(settings).values()) == [["never-seen-1", "never-seen-2"]]


def test_a_trusted_profile_awaiting_live_answers_is_completed_once_in_the_database(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """``querywatch profile`` without ``--served``: the group's consumer holds the model's
    first events, stores the completed profile as the next version for the whole group, and
    alerts the thieves beyond the file's profile as replay does with the same pending profile."""
    victim = load_victim()
    detection = DetectionSettings(warmup_events=2000, max_event_bytes=4096)
    own = victim.serve(victim.train)
    pending = build_profile(
        own.inputs,
        model_id=MODEL_ID,
        settings=detection,
        labels=own.labels.tolist(),
        scores=own.scores,
        live_answers=True,
    )
    settings = Settings(kafka=kafka_settings, database=migrated_database(tmp_path), detection=detection)
    database = make_engine(settings.database)
    DatabaseProfileStore(make_sessionmaker(database)).put(pending)
    lines = trace_lines()
    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"\n".join(lines) + b"\n")
    replayed = MemoryProfileStore([pending])
    report = replay(trace, Detector(detection, replayed))
    produce(kafka_settings, lines)

    result = consume_everything(settings)
    # Every event scored once. Which events make the warm-up sample depends on how the
    # partitions interleave, so the live answers, and the boundary evidence built on them,
    # may differ from replay's; the thieves whose inputs lie beyond the file's profile are
    # alerted whatever the answers say.
    assert result.clients == {c.client_id: c.queries for c in report.clients.values()}
    beyond = {c.client_id for c in report.clients.values() if c.first_alert_query is not None} & {
        c for c, t in trace_truth().items() if t["family"] == "random"
    }
    assert beyond and beyond <= {c for _, c, _ in result.alerts}
    with transaction(make_sessionmaker(database)) as session:
        rows = session.scalars(
            select(ModelProfileRow)
            .where(ModelProfileRow.model_id == MODEL_ID)
            .order_by(ModelProfileRow.version)
        ).all()
        stored = [(row.version, ReferenceProfile.from_bytes(bytes(row.blob))) for row in rows]
    database.dispose()
    assert [(version, p.answers) for version, p in stored] == [(1, "pending"), (2, "live")]
    assert stored[1][1].ood_threshold == pending.ood_threshold and stored[1][1].margin_threshold > 0
