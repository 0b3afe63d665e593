"""A model warming up holds only its own events: on the real broker, every other model and
partition checkpoints as if it were not there, and its held events survive a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from querywatch.detector.adapters.db.checkpoints import load_partition
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.kafka.partitions import held_events_key
from querywatch.detector.config import KafkaSettings, Settings
from querywatch.detector.engine.reference import unpack_events
from tests.kafka.harness import (
    consume_everything,
    consumer_settings,
    end_offsets,
    produce,
    replay_expectation,
    trace_lines,
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
