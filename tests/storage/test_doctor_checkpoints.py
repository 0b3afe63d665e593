"""`querywatch doctor` on what the database holds: models warming up (their held events) and
client states of another consumer group, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from querywatch.detector.adapters.db.checkpoints import save_checkpoint
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.shared_profiles import DatabaseProfileStore
from querywatch.detector.adapters.kafka.partitions import held_chunk_key, held_events_key
from querywatch.detector.cli.config import check_groups, check_warmup
from querywatch.detector.config import DetectionSettings, KafkaSettings, Settings
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import build_profile
from querywatch.detector.engine.reference import pack_events
from tests.storage.databases import KINDS, migrated_database


def _events(model_id: str, n: int, client: str = "c") -> list[Event]:
    return [Event(f"{model_id}-{i}", float(i), client, model_id, np.zeros(3), None, None) for i in range(n)]


def _checkpoint(settings: Settings, group_id: str, partition: int, states: dict[str, bytes]) -> None:
    """A consumer of ``group_id`` checkpoints ``partition`` of topic "t" for the first time."""
    database = make_engine(settings.database)
    with transaction(make_sessionmaker(database)) as session:
        save_checkpoint(
            session=session,
            group_id=group_id,
            topic="t",
            partition=partition,
            expected_offset=None,
            next_offset=10,
            client_states=states,
        )
    database.dispose()


@pytest.mark.parametrize("kind", KINDS)
def test_doctor_counts_held_warm_up_events_and_names_another_groups_states(kind: str, tmp_path: Path) -> None:
    with migrated_database(kind, tmp_path) as settings:
        settings = settings.model_copy(update={"kafka": KafkaSettings(group_id="g")})
        assert check_warmup(settings).detail == "no model warming up"
        assert check_groups(settings).ok

        # Partition 0's events in two chunks (two checkpoints held some): one partition still.
        held = {0: [*_events("new", 5), *_events("rare", 2)], 3: _events("new", 4, client="d")}
        for partition, events in held.items():
            _checkpoint(
                settings,
                "g",
                partition,
                {
                    held_chunk_key(partition, 0): pack_events(events[:3]),
                    held_chunk_key(partition, 1): pack_events(events[3:]),
                    f"a{partition}": b"x",
                },
            )
        warmup = check_warmup(settings)
        assert warmup.ok and warmup.detail.startswith(
            "'new': 9 events held (partitions 0, 3); 'rare': 2 events held (partitions 0)"
        )
        assert check_groups(settings).detail == "6 client states, all of group 'g'"

        # 'rare' has a trusted file of inputs alone: its events wait for answers, not a warm-up
        database = make_engine(settings.database)
        X = np.random.default_rng(0).normal(size=(600, 3))
        settings_small = DetectionSettings(codebook_size=8, pca_components=2)
        pending = build_profile(X, model_id="rare", settings=settings_small, live_answers=True)
        DatabaseProfileStore(make_sessionmaker(database)).put(pending)
        database.dispose()
        assert check_warmup(settings).detail.startswith(
            "'new': 9 events held (partitions 0, 3); "
            "'rare': 2 events held (partitions 0), its trusted profile awaiting their answers"
        )

        _checkpoint(settings, "former", 1, {"b": b"y"})
        groups = check_groups(settings)
        assert not groups.ok and "'former' (1 stored)" in groups.detail and groups.hint is not None
        assert "'rare': 2" in check_warmup(settings).detail  # another group's held events are not this one's

        _checkpoint(settings, "g", 7, {held_events_key(7): b"\xc1 not msgpack"})
        damaged = check_warmup(settings)
        assert not damaged.ok and "partition 7 (group 'g') cannot be read" in damaged.detail and damaged.hint
