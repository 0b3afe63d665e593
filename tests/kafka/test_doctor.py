"""`querywatch doctor` on the real broker: the topics it expects, the summaries topic included
while campaigns are on (consumers publish to it and the aggregator reads it)."""

from __future__ import annotations

import socket

import pytest

from querywatch.detector.adapters.kafka.admin import (
    BrokerUnreachable,
    admin_client,
    ensure_summaries_topic,
    ensure_topics,
)
from querywatch.detector.cli.config import check_kafka
from querywatch.detector.config import CampaignSettings, KafkaSettings, Settings

pytestmark = pytest.mark.kafka


def test_doctor_names_a_missing_summaries_topic_only_while_campaigns_are_on(
    kafka_settings: KafkaSettings,
) -> None:
    settings = Settings(kafka=kafka_settings)
    summaries = settings.campaigns.summaries_topic_for(kafka_settings.topic)
    ensure_topics(kafka_settings)

    missing = check_kafka(settings, timeout=10.0)
    assert not missing.ok and summaries in missing.detail
    off = Settings(kafka=kafka_settings, campaigns=CampaignSettings(enabled=False))
    assert check_kafka(off, timeout=10.0).ok

    ensure_summaries_topic(kafka_settings, summaries)
    assert check_kafka(settings, timeout=10.0).ok


def test_a_broker_that_never_answers_is_said_as_such(kafka_settings: KafkaSettings) -> None:
    """Every command that starts on the admin client (consume, produce, aggregate, simulate)
    ended in kafka-python's own ``KafkaTimeoutError: Unable to bootstrap``."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        nowhere = kafka_settings.model_copy(
            update={"bootstrap_servers": f"127.0.0.1:{closed.getsockname()[1]}"}
        )
        said = f"cannot reach Kafka at {nowhere.bootstrap_servers}: "
        with pytest.raises(BrokerUnreachable, match=said), admin_client(nowhere, bootstrap_timeout_ms=1000):
            pass
    with admin_client(kafka_settings) as admin:  # the real broker: connected
        assert isinstance(admin.list_topics(), list)


def test_doctor_says_a_summaries_topic_of_many_partitions(kafka_settings: KafkaSettings) -> None:
    """A broker that creates topics on first use made it with its default count after a
    restart: each aggregator read a share of the accounts, the standby active too, unsaid."""
    settings = Settings(kafka=kafka_settings)
    summaries = settings.campaigns.summaries_topic_for(kafka_settings.topic)
    ensure_topics(kafka_settings)
    ensure_topics(kafka_settings, (summaries,), partitions=3)
    check = check_kafka(settings, timeout=10.0)
    assert (
        not check.ok
        and check.detail == f"{summaries} has 3 partitions; the campaign stage reads one, in order"
    )
