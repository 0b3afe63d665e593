"""The hostile-input suite through the real consumer, on SQLite and PostgreSQL.

Each case is dead-lettered with its reason; every other event is stored exactly as a
replay of the clean trace stores it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from querywatch.detector.config import InputSettings, Settings
from querywatch.detector.engine.events import parse_event
from tests.hostile.cases import SUITE_MAX_DIM, cases
from tests.kafka.harness import (
    consume_everything,
    detection_settings,
    produce,
    replay_expectation,
    trace_lines,
)
from tests.storage.databases import KINDS, migrated_database

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("kind", KINDS)
def test_the_hostile_suite_is_dead_lettered_and_the_rest_stored_exactly(
    kind: str, kafka_settings, tmp_path: Path
) -> None:
    detection = detection_settings(tmp_path / "profiles")
    clean = list(trace_lines())
    middle = len(clean) // 2
    event = json.loads(clean[middle])
    suite = cases(
        event["model_id"],
        len(event["input"]),
        parse_event(clean[middle]).ts,
        len(event["prediction"]["scores"]),
    )
    produce(kafka_settings, clean[:middle] + [c.raw for c in suite] + clean[middle:])
    inputs = InputSettings(max_input_dim=SUITE_MAX_DIM, oversized_inputs="reject")
    with migrated_database(kind, tmp_path) as base:
        settings = Settings(kafka=kafka_settings, database=base.database, detection=detection, inputs=inputs)
        result = consume_everything(settings)
    expected = replay_expectation(clean, detection, tmp_path)
    assert result.clients == expected.clients and result.alerts == expected.alerts != []
    assert sorted(reason for reason, _ in result.dead_letters) == sorted(c.reason for c in suite)
    assert not any(c.startswith("hostile") for c in result.clients)
