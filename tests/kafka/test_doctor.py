"""`querywatch doctor` on the real broker: the topics it expects, the summaries topic included
while campaigns are on (consumers publish to it and the aggregator reads it)."""

from __future__ import annotations

import pytest

from querywatch.detector.adapters.kafka.admin import ensure_summaries_topic, ensure_topics
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
