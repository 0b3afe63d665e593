"""A topic written with any compression codec is read: the codecs kafka-python needs are installed."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer

from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.client_config import connection_kwargs, producer_kwargs
from querywatch.detector.adapters.kafka.producer import client_key
from querywatch.detector.config import KafkaSettings
from tests.kafka.harness import WAIT_S, trace_lines

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("codec", ["gzip", "zstd", "lz4", "snappy"])
def test_a_topic_compressed_with_each_codec_is_consumed_back(
    codec: str, kafka_settings: KafkaSettings
) -> None:
    lines = list(trace_lines())[:300]
    ensure_topics(kafka_settings)
    producer = KafkaProducer(**producer_kwargs(kafka_settings), compression_type=codec)
    try:
        for line in lines:
            producer.send(kafka_settings.topic, key=client_key(line), value=line)
        producer.flush()
    finally:
        producer.close()
    consumer = KafkaConsumer(
        kafka_settings.topic,
        **connection_kwargs(kafka_settings, role="test-codec"),
        auto_offset_reset="earliest",
    )
    read: list[bytes] = []
    try:
        for _ in range(int(WAIT_S * 2)):
            for records in consumer.poll(500).values():
                read += [r.value for r in records]
            if len(read) >= len(lines):
                break
    finally:
        consumer.close()
    assert sorted(read) == sorted(lines)
