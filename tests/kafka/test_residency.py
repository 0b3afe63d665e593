"""A consumer capped at 5 resident clients, fed 50 clients: the same decisions as one without a cap,
across a restart, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from querywatch.detector.adapters.db.session import make_engine
from querywatch.detector.adapters.db.tables import ClientStateRow
from querywatch.detector.config import KafkaSettings, ResidencySettings, Settings
from querywatch.detector.simulate import generate_trace
from tests.kafka.harness import (
    ThreadedConsumer,
    consume_everything,
    detection_settings,
    produce,
    stored,
    wait_until_stored,
)
from tests.storage.databases import KINDS, migrated_database

pytestmark = pytest.mark.kafka

CAP = 5


@pytest.mark.parametrize("kind", KINDS)
def test_a_capped_consumer_decides_as_an_uncapped_one_across_a_restart(
    kind: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    events, truth = generate_trace(3, benign=44, attackers=6, scale=0.1, hours=6)
    assert len(truth) == 50
    lines = [json.dumps(e, separators=(",", ":")).encode() for e in events]
    half = len(lines) // 2
    detection = detection_settings(tmp_path / "profiles")
    produce(kafka_settings, lines[:half])
    (tmp_path / "capped").mkdir()
    (tmp_path / "uncapped").mkdir()
    with (
        migrated_database(kind, tmp_path / "capped") as capped_base,
        migrated_database(kind, tmp_path / "uncapped") as uncapped_base,
    ):
        capped = Settings(
            kafka=kafka_settings.model_copy(update={"group_id": f"{kafka_settings.group_id}-capped"}),
            database=capped_base.database,
            detection=detection,
            residency=ResidencySettings(max_resident_clients=CAP),
        )
        database = make_engine(capped.database)
        first = ThreadedConsumer(capped).start()
        try:
            wait_until_stored(database, capped.kafka)
        finally:
            first.close()
        assert first.app.processor.engine.resident() <= CAP
        produce(kafka_settings, lines[half:])
        second = ThreadedConsumer(capped).start()  # a restart: spilled clients come from the table
        try:
            wait_until_stored(database, capped.kafka)
        finally:
            second.close()
        assert second.app.processor.engine.resident() <= CAP
        with database.connect() as c:
            assert c.scalar(select(func.count()).select_from(ClientStateRow)) == 50
        result = stored(database)
        database.dispose()

        uncapped = Settings(
            kafka=kafka_settings.model_copy(update={"group_id": f"{kafka_settings.group_id}-uncapped"}),
            database=uncapped_base.database,
            detection=detection,
            residency=ResidencySettings(max_resident_clients=None),
        )
        expected = consume_everything(uncapped)
    assert result.alerts == expected.alerts != []
    assert result.clients == expected.clients and len(result.clients) == 50
    assert result.risks == expected.risks
    assert result.history == expected.history
