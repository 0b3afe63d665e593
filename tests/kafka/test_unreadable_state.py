"""A stored client state this release cannot read ends ``consume`` on what to do, on a real
broker: the partition is not taken and the client is not scored afresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from querywatch.detector.adapters.db.checkpoints import save_checkpoint
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.kafka.partitions import CorruptClientState, pack_client_state
from querywatch.detector.config import ResidencySettings
from querywatch.detector.engine.events import RequestIdFilter
from tests.kafka.harness import WAIT_S, ThreadedConsumer, consumer_settings, wait_for

pytestmark = pytest.mark.kafka


def test_a_state_it_cannot_read_ends_the_consumer_naming_the_client_and_what_to_do(
    kafka_settings, tmp_path: Path
) -> None:
    # No resident cap: states load with their partition, in kafka-python's rebalance callback,
    # whose errors it logs and replaces with its own.
    settings = consumer_settings(kafka_settings, tmp_path).model_copy(
        update={"residency": ResidencySettings(max_resident_clients=0)}
    )
    database = make_engine(settings.database)
    newer = pack_client_state(b"QWC9" + bytes(40), RequestIdFilter(4))  # a format this release never wrote
    with transaction(make_sessionmaker(database)) as session:
        for partition in range(kafka_settings.partitions):
            save_checkpoint(
                session=session,
                group_id=kafka_settings.group_id,
                topic=kafka_settings.topic,
                partition=partition,
                expected_offset=None,
                next_offset=0,
                client_states={f"newer-{partition}": newer},
            )
    database.dispose()
    consumer = ThreadedConsumer(settings).start()
    wait_for(lambda: consumer.error is not None, "the consumer to stop on the unreadable state", WAIT_S)
    with pytest.raises(CorruptClientState) as caught:
        consumer.close()
    message = str(caught.value)
    assert "'newer-" in message and kafka_settings.topic in message and kafka_settings.group_id in message
    assert "not a querywatch client state" in message
    assert caught.value.hint is not None and "client_states" in caught.value.hint
