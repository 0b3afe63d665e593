"""`querywatch doctor` says whether an aggregator reads the summaries topic, on the real
broker: stopped, campaign detection stopped with no error anywhere and doctor said all ok."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from querywatch.detector.adapters.db.checkpoints import save_checkpoint
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker, transaction
from querywatch.detector.adapters.db.tables import PartitionOffsetRow, utcnow
from querywatch.detector.adapters.kafka.admin import ensure_summaries_topic
from querywatch.detector.cli.config import check_aggregator
from querywatch.detector.config import KafkaSettings, Settings
from tests.kafka.harness import migrated_database, produce, trace_lines

pytestmark = pytest.mark.kafka


def test_doctor_says_when_summaries_wait_for_an_aggregator(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    settings = Settings(kafka=kafka_settings, database=migrated_database(tmp_path))
    topic = settings.campaigns.summaries_topic_for(kafka_settings.topic)
    ensure_summaries_topic(kafka_settings, topic)
    assert check_aggregator(settings, 10.0).detail == f"no summary published to {topic} yet"

    summaries = kafka_settings.model_copy(update={"topic": topic})
    produce(summaries, list(trace_lines())[:3], one_per_batch=True)
    never = check_aggregator(settings, 10.0)
    assert not never.ok and never.detail == f"3 summaries in {topic} and no aggregator has read them"

    sessions = make_sessionmaker(make_engine(settings.database))
    group = settings.campaigns.aggregator_group_id
    with transaction(sessions) as session:
        save_checkpoint(
            session=session,
            group_id=group,
            topic=topic,
            partition=0,
            expected_offset=None,
            next_offset=3,
            client_states={},
        )
    assert check_aggregator(settings, 10.0).detail == f"up to date with {topic} (offset 3)"

    produce(summaries, list(trace_lines())[3:5], one_per_batch=True)
    assert check_aggregator(settings, 10.0).ok  # just behind: a running aggregator catches up
    with transaction(sessions) as session:
        session.execute(update(PartitionOffsetRow).values(updated_at=utcnow() - timedelta(minutes=10)))
    stopped = check_aggregator(settings, 10.0)
    assert not stopped.ok and stopped.detail.startswith(
        f"2 summaries behind {topic}'s end, last checkpoint 6"
    )
    assert stopped.hint is not None and "querywatch aggregate" in stopped.hint
