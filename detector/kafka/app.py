"""Build the consumer from the one Settings object and run it until stopped.

Used by ``querywatch consume``, by ``querywatch up`` and by the integration tests, so all
three run the same wiring: migrated database, topics, output producer, processor, group
membership.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from detector.config import Settings
from detector.engine import Engine
from detector.kafka.admin import ensure_topics
from detector.kafka.consumer import run, subscribe
from detector.kafka.outputs import OutputProducer
from detector.kafka.processor import EngineLike, StreamProcessor
from detector.kafka.shared_profiles import DatabaseProfileStore
from detector.profiles import DirectoryProfileStore, ProfileStore
from detector.storage.db import check_migrated, make_engine, make_sessionmaker

log = logging.getLogger(__name__)

EngineFactory = Callable[[], EngineLike]


def consume(
    settings: Settings, *, stop: threading.Event, engine_factory: EngineFactory | None = None
) -> None:
    """Consume the inference-log topic as a member of ``settings.kafka.group_id`` until ``stop``.

    Raises ``DatabaseNotMigrated`` before joining the group if the schema is not current,
    and ``ConfigError`` if no brokers are configured.
    """
    kafka = settings.kafka
    database = make_engine(settings.database)
    try:
        check_migrated(database)
        sessions = make_sessionmaker(database)
        ensure_topics(kafka)
        outputs = OutputProducer(kafka)
        try:
            processor = StreamProcessor(
                engine_factory=engine_factory or default_engine_factory(settings, sessions),
                sessions=sessions,
                outputs=outputs,
                group_id=kafka.group_id,
                checkpoint_every_events=kafka.checkpoint_every_events,
                checkpoint_every_seconds=kafka.checkpoint_every_seconds,
                max_event_bytes=settings.detection.max_event_bytes,
            )
            consumer = subscribe(kafka, processor)
            log.info("consuming %s as group %s", kafka.topic, kafka.group_id)
            run(consumer, processor, stop, max_records=kafka.max_poll_records)
        finally:
            outputs.close()
    finally:
        database.dispose()


def default_engine_factory(settings: Settings, sessions: sessionmaker[Session]) -> EngineFactory:
    """Engines with the configured detection settings and profiles.

    Profiles come from ``detection.profile_dir`` when it is set (reproducible: the same as
    ``querywatch replay --profile``), else from the database, shared by the whole group.
    """
    store: ProfileStore
    if settings.detection.profile_dir:
        store = DirectoryProfileStore(settings.detection.profile_dir)
    else:
        store = DatabaseProfileStore(sessions)
    return lambda: Engine(settings.detection, store)
