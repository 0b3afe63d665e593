from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer

from querywatch.detector.adapters.kafka.admin import ensure_topics, partition_count
from querywatch.detector.adapters.kafka.broker import BrokerError, EmbeddedBroker, free_port
from querywatch.detector.adapters.kafka.client_config import connection_kwargs, producer_kwargs
from querywatch.detector.adapters.kafka.producer import produce_lines
from querywatch.detector.config import KafkaSettings

pytestmark = pytest.mark.kafka


def test_topics_are_created_once_with_the_configured_partitions(kafka_settings: KafkaSettings) -> None:
    created = ensure_topics(kafka_settings)
    assert sorted(created) == sorted(
        {kafka_settings.topic, kafka_settings.dead_letter_topic, kafka_settings.alerts_topic}
    )
    assert ensure_topics(kafka_settings) == []
    assert partition_count(kafka_settings, kafka_settings.topic) == 4


def test_a_clients_events_land_in_one_partition_in_order(kafka_settings: KafkaSettings) -> None:
    ensure_topics(kafka_settings)
    lines = [json.dumps({"client_id": f"c{i % 5}", "n": i}).encode() for i in range(100)] + [b"\xff not json"]
    producer = KafkaProducer(**producer_kwargs(kafka_settings))
    try:
        assert produce_lines(producer, kafka_settings.topic, lines) == 101
    finally:
        producer.close()
    consumer = KafkaConsumer(
        kafka_settings.topic, **connection_kwargs(kafka_settings, role="check"), auto_offset_reset="earliest"
    )
    seen: dict[str, list[tuple[int, int]]] = {}
    raw = []
    try:
        while len(raw) < 101:
            for records in consumer.poll(1000).values():
                raw.extend(r.value for r in records)
                for r in records:
                    if r.key is not None:
                        seen.setdefault(r.key.decode(), []).append((r.partition, json.loads(r.value)["n"]))
    finally:
        consumer.close()
    assert sorted(raw) == sorted(lines)
    for client, hits in seen.items():
        assert len({p for p, _ in hits}) == 1, client
        assert [n for _, n in hits] == sorted(n for _, n in hits)


def test_a_broker_that_cannot_listen_is_reported() -> None:
    port = free_port()
    with EmbeddedBroker(port=port), pytest.raises(BrokerError):
        EmbeddedBroker(port=port).start(timeout_s=5)
