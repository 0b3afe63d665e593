"""Create the topics querywatch reads and writes, if they do not exist yet.

Production clusters often forbid auto-creation; creating the topics explicitly (with the
configured partition count) also makes the number of consumers that can share the work
visible: at most one consumer per partition of the inference-log topic is busy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from querywatch.detector.adapters.kafka.client_config import connection_kwargs
from querywatch.detector.config import KafkaSettings
from querywatch.detector.errors import QuerywatchError


class BrokerUnreachable(QuerywatchError):
    """No broker of ``kafka.bootstrap_servers`` answered (or let querywatch in) when a
    command started: said as such, not as the client library's own exception."""


def broker_failure(exc: BaseException, settings: KafkaSettings) -> BrokerUnreachable | None:
    """``exc`` said as a broker that cannot be reached, if it is one: a producer or consumer that
    never bootstrapped raises kafka-python's own timeout, as the admin client does."""
    return _unreachable(exc, settings) if isinstance(exc, KafkaTimeoutError | KafkaConnectionError) else None


def _unreachable(exc: BaseException, settings: KafkaSettings) -> BrokerUnreachable:
    return BrokerUnreachable(
        f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}",
        hint="check QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS and the security settings; "
        "`querywatch doctor` tests the connection",
    )


@contextmanager
def admin_client(settings: KafkaSettings, role: str = "admin", **options: Any) -> Iterator[KafkaAdminClient]:
    """A connected admin client, closed on exit; ``BrokerUnreachable`` if none answers.

    kafka-python raises several unrelated types for one unreachable broker (a timeout, no
    brokers available, a connection error), all of them ``KafkaError``.
    """
    try:
        admin = KafkaAdminClient(**connection_kwargs(settings, role=role), **options)
    except KafkaError as exc:  # whatever kind: nothing was asked of the cluster yet
        raise _unreachable(exc, settings) from None
    try:
        yield admin
    finally:
        admin.close()


def querywatch_topics(settings: KafkaSettings) -> tuple[str, ...]:
    """The inference-log topic, the dead-letter topic and the alerts topic."""
    return (settings.topic, settings.dead_letter_topic, settings.alerts_topic)


def ensure_topics(
    settings: KafkaSettings,
    topics: tuple[str, ...] | None = None,
    *,
    partitions: int | None = None,
    configs: dict[str, str] | None = None,
) -> list[str]:
    """Create any of ``topics`` (default: querywatch's three) that is missing; return those created.

    Existing topics are left as they are (their partition count and ``configs`` are not changed).
    """
    wanted = topics if topics is not None else querywatch_topics(settings)
    count = partitions if partitions is not None else settings.partitions
    with admin_client(settings) as admin:
        existing = set(admin.list_topics())
        missing = [t for t in dict.fromkeys(wanted) if t not in existing]
        created = []
        for topic in missing:
            try:
                admin.create_topics([NewTopic(topic, count, 1, topic_configs=configs or {})])
                created.append(topic)
            except TopicAlreadyExistsError:  # another consumer created it a moment ago
                pass
        return created


def ensure_summaries_topic(settings: KafkaSettings, topic: str) -> list[str]:
    """Create the summaries topic if it is missing: one partition (one aggregator reads it in
    order) and compacted (a (model, client)'s latest summary is what the aggregator needs)."""
    return ensure_topics(settings, (topic,), partitions=1, configs={"cleanup.policy": "compact"})


def partition_count(settings: KafkaSettings, topic: str) -> int:
    """How many partitions ``topic`` has (0 if it does not exist)."""
    with admin_client(settings) as admin:
        described = admin.describe_topics([topic])
    return sum(len(t.get("partitions") or []) for t in described if t.get("error_code", 0) == 0)


def topic_end(settings: KafkaSettings, topic: str, *, timeout: float) -> int:
    """The end offset of ``topic``'s partition 0 (the summaries topic has one)."""
    millis = int(timeout * 1000)
    try:
        consumer = KafkaConsumer(
            **connection_kwargs(settings, role="doctor"), request_timeout_ms=max(millis, 1000)
        )
    except KafkaError as exc:
        raise _unreachable(exc, settings) from None
    try:
        partition = TopicPartition(topic, 0)
        return int(consumer.end_offsets([partition])[partition])
    finally:
        consumer.close()


def missing_topics(settings: KafkaSettings, *, timeout: float, extra: tuple[str, ...] = ()) -> list[str]:
    """querywatch's topics and ``extra`` ones that do not exist; raises if no broker answers
    within ``timeout`` s."""
    millis = int(timeout * 1000)
    with admin_client(settings, "doctor", request_timeout_ms=millis, bootstrap_timeout_ms=millis) as admin:
        existing = set(admin.list_topics())
    return [t for t in (*querywatch_topics(settings), *extra) if t not in existing]
