"""A real Kafka-compatible broker (Tansu, memory only) on a free loopback port, per test session.

Each test uses its own topics and group id (``kafka_settings``), so tests never see each
other's messages although they share the broker.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.config import KafkaSettings

_names = itertools.count()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def kafka_settings(broker: EmbeddedBroker) -> KafkaSettings:
    """Settings of a fresh topic set and group, with timeouts short enough for quick rebalances."""
    n = next(_names)
    tag = f"t{os.getpid()}-{n}"
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        topic=f"events-{tag}",
        dead_letter_topic=f"dead-{tag}",
        alerts_topic=f"alerts-{tag}",
        group_id=f"group-{tag}",
        partitions=4,
        max_poll_records=200,
        max_poll_interval_ms=6000,
        session_timeout_ms=6000,
        checkpoint_every_events=300,
        checkpoint_every_seconds=1.0,
    )
