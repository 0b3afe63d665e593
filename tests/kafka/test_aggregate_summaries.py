"""Consumers publish their client summaries to the summaries topic (one partition, keyed by
model and client), acknowledged with the checkpoint of the events they sum up."""

from __future__ import annotations

from pathlib import Path

import pytest

from querywatch.detector.adapters.kafka.admin import partition_count
from querywatch.detector.adapters.kafka.outputs import summary_key
from querywatch.detector.config import KafkaSettings
from querywatch.detector.engine.summaries import FIRST_DOUBLING, ClientSummary
from tests.kafka.harness import consume_everything, consumer_settings, produce, read_topic, trace_lines

pytestmark = pytest.mark.kafka


def test_consume_publishes_every_clients_summaries_keyed_by_model_and_client(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = consumer_settings(kafka_settings, tmp_path)
    topic = settings.campaigns.summaries_topic_for(kafka_settings.topic)
    produce(kafka_settings, trace_lines())
    result = consume_everything(settings)

    assert partition_count(kafka_settings, topic) == 1
    messages = read_topic(kafka_settings.bootstrap_servers, topic)
    summaries = [ClientSummary.from_bytes(m.value) for m in messages]
    keys = [summary_key(s.model_id, s.client_id) for s in summaries]
    assert [m.key for m in messages] == keys
    published = {s.client_id for s in summaries}
    assert {c for c, q in result.clients.items() if q >= FIRST_DOUBLING} <= published <= set(result.clients)
    assert all(s.queries <= result.clients[s.client_id] for s in summaries)
    for client in published:  # in the order they were emitted
        mine = [s.queries for s in summaries if s.client_id == client]
        assert mine == sorted(mine)
