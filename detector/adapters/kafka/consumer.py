"""``querywatch consume``: a member of a Kafka consumer group that drives the engine.

Kafka distributes the work: N copies with the same ``group_id`` split the partitions of
the inference-log topic, and Kafka moves partitions when a copy joins, leaves or dies. The
database is the state store: each partition's offset is committed in the same transaction
as its outcomes and client states (see ``querywatch.detector.adapters.kafka.processor``), so after a crash or
a move the next owner resumes at the exact offset that matches the state it loads.

Why the database and not a changelog topic (Kafka Streams / Quix style)? The outcomes must
land in the database anyway (API, dashboard, webhook outbox); one transaction for outcomes,
state and offset gives exactly-once with no second system to keep consistent, and the
Kafka-side commit becomes informational (for lag tools). A changelog topic would need
Kafka transactions spanning produce and database, which do not exist.

Threading: kafka-python 3 runs rebalance callbacks on its IO thread while the processing
thread is blocked inside ``poll()`` or ``close()``; the listener can therefore use the
processor (no concurrent access) but must not call blocking consumer methods such as
``commit()``. It checkpoints and loads state through the database only, and positions
partitions with ``seek`` (non-blocking).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from querywatch.detector.adapters.kafka.client_config import consumer_kwargs
from querywatch.detector.adapters.kafka.outages import RETRYABLE, Outage, dependency_of
from querywatch.detector.adapters.kafka.owner import PartitionOwner
from querywatch.detector.adapters.kafka.partitions import TopicPartitionKey
from querywatch.detector.adapters.kafka.rewind import RewindWatch, paused_for_rewind
from querywatch.detector.config import KafkaSettings, OutageSettings
from querywatch.detector.errors import QuerywatchError
from querywatch.detector.logging import LogLimiter
from querywatch.detector.metrics import CONSUMER_LAG

log = logging.getLogger(__name__)

#: Longest wait in one poll, in ms: bounds how late a stop request or a due checkpoint is seen.
POLL_TIMEOUT_MS = 200


def _keys(partitions: Iterable[TopicPartition]) -> list[TopicPartitionKey]:
    return sorted((tp.topic, tp.partition) for tp in partitions)


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Checkpoint on revoke, drop on loss, load and seek on assignment (on the IO thread; the
    aggregator only queues the load there, for the loop: ``Aggregator.assign``)."""

    def __init__(self, consumer: KafkaConsumer, processor: PartitionOwner, start_from: str) -> None:
        self._consumer = consumer
        self._processor = processor
        self._start_from = start_from

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        keys = _keys(revoked)
        if keys:  # a member's first join revokes nothing: no line for it
            log.info("partitions revoked (a rebalance under way, or closing): %s", keys)
            self._processor.revoke(keys)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        keys = _keys(assigned)
        log.info("partitions assigned: %s", keys)
        self._processor.assign(keys)
        apply_seeks(self._consumer, self._processor, self._start_from)

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        keys = _keys(lost)
        log.warning("partitions lost (membership expired): %s", keys)
        self._processor.lose(keys)


def apply_seeks(consumer: KafkaConsumer, processor: PartitionOwner, start_from: str) -> None:
    """Position partitions where the database says to resume; one never stored starts at its
    beginning, or at its end if ``start_from`` is ``latest`` (until its first checkpoint)."""
    seeks, processor.seeks = processor.seeks, {}
    assigned = consumer.assignment()
    for (topic, partition), offset in seeks.items():
        tp = TopicPartition(topic, partition)
        if tp not in assigned:
            continue
        if offset is None and start_from == "latest":
            consumer.seek_to_end(tp)
        elif offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


def subscribe(
    settings: KafkaSettings, processor: PartitionOwner, *, heartbeats_per_session: int = 3
) -> KafkaConsumer:
    """A consumer-group member subscribed to ``settings.topic`` (the inference-log topic, or
    the summaries topic for the aggregator), driving ``processor``; ``heartbeats_per_session``
    as ``consumer_kwargs`` says."""
    consumer = KafkaConsumer(**consumer_kwargs(settings, heartbeats_per_session=heartbeats_per_session))
    consumer.subscribe(
        [settings.topic], listener=_RebalanceListener(consumer, processor, settings.start_from)
    )
    return consumer


def run(
    consumer: KafkaConsumer,
    processor: PartitionOwner,
    stop: threading.Event,
    *,
    max_records: int,
    start_from: str = "earliest",
    outages: OutageSettings | None = None,
    checkpoint_when_idle: bool = False,
) -> None:
    """Poll, score and checkpoint until ``stop`` is set; then checkpoint and leave the group.

    With ``checkpoint_when_idle``, a poll that finds nothing new checkpoints every partition
    with progress: the consumer has caught up, so the time is free, and its last events are
    stored at once instead of at the next periodic checkpoint.

    A database or broker error never ends the loop: it is an outage (see
    ``querywatch.detector.adapters.kafka.outages``). Partitions are paused while it lasts,
    the failed step is retried with backoff, and the loop keeps polling so the consumer
    stays in its group. On stop the batch in hand is finished, every partition is
    checkpointed (if the database is there) and the consumer closes, which leaves the group
    at once (no wait for a session timeout).
    """
    outages = outages or OutageSettings()
    outage = Outage(max_delay=outages.retry_max_seconds, remind_every=outages.remind_every_seconds)
    rewinds = RewindWatch(on_rewind=outages.on_log_rewind, remind_every=outages.remind_every_seconds)
    lag = Lag()
    unassigned = Unassigned(remind_every=outages.remind_every_seconds)
    try:
        while not stop.is_set():
            batch = _poll(consumer, max_records)
            processor.process(record for records in batch.values() for record in records)
            if outage.ready():
                _store(consumer, processor, outage, idle=checkpoint_when_idle and not batch)
            apply_seeks(consumer, processor, start_from)
            rewinds.check(consumer, processor)
            lag.record(consumer, processor)
            unassigned.check(consumer)
        try:
            commit_to_kafka(consumer, processor.checkpoint(), wait=True)
        except RETRYABLE as exc:  # the next owner redoes the events since the stored checkpoint
            log.error("stopping without a final checkpoint (%s unavailable): %s", dependency_of(exc), exc)
    finally:
        consumer.close()


def _poll(consumer: KafkaConsumer, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
    """One poll. kafka-python raises its own error from a poll whose rebalance callback
    raised: the callback's own error, if querywatch's (a stored state it cannot read), is
    raised instead, so that the command ends on what to do, not on "callback throws"."""
    try:
        batch: dict[TopicPartition, list[ConsumerRecord]] = consumer.poll(
            timeout_ms=POLL_TIMEOUT_MS, max_records=max_records
        )
    except KafkaError as exc:
        if isinstance(exc.__cause__, QuerywatchError):
            raise exc.__cause__ from None
        raise
    return batch


def _store(consumer: KafkaConsumer, processor: PartitionOwner, outage: Outage, *, idle: bool) -> None:
    """Load what is pending and checkpoint what is due (when ``idle``, every partition with
    progress); an error pauses every partition."""
    try:
        processor.load_unloaded()
        due = processor.due()
        if idle:
            due = [w for w in processor.partitions.values() if w.has_progress()]
        if due:
            commit_to_kafka(consumer, processor.checkpoint(due))
    except RETRYABLE as exc:
        outage.failed(exc)
        consumer.pause(*consumer.assignment())
        return
    if outage.recovered():
        consumer.resume(*(consumer.paused() - paused_for_rewind(processor)))


def commit_to_kafka(
    consumer: KafkaConsumer, offsets: dict[TopicPartitionKey, int], *, wait: bool = False
) -> None:
    """Mirror stored offsets to Kafka for lag tools; best effort, the database is the truth.

    The loop does not wait for the broker's answer (a round trip per checkpoint, in which it
    would score nothing); ``wait`` is for the last commit, before the consumer closes.
    """
    if not offsets:
        return
    kafka_offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
    try:
        if wait:
            consumer.commit(kafka_offsets)
        else:
            consumer.commit_async(kafka_offsets, callback=_commit_failed)
    except KafkaError as exc:
        _commit_failed(kafka_offsets, exc)


def _commit_failed(_offsets: object, response: object) -> None:
    """kafka-python's commit callback: ``response`` is an exception if the commit failed."""
    if isinstance(response, Exception):
        log.info("informational Kafka commit failed (a rebalance is likely under way): %s", response)


class Unassigned:
    """Says, every ``remind_every`` seconds, that this member owns no partition: a group with
    more members than the topic has partitions (a standby, as meant), or a member the group
    has not taken back yet (a broker restarted; it rejoins by itself). It said nothing, and
    an operator read a silent consumer as a working one."""

    def __init__(self, remind_every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since = clock()
        self._reminder = LogLimiter(remind_every, clock)
        self._reminder.restart()

    def check(self, consumer: KafkaConsumer) -> None:
        now = self._clock()
        if consumer.assignment():
            self._since = now
            self._reminder.restart()
            return
        if self._reminder.allow() is not None:
            topics = ", ".join(sorted(consumer.subscription() or ())) or "its topic"
            log.info(
                "this consumer has owned no partition of %s for %.0f s: the group has as many members "
                "as partitions already (it is a standby), or it waits to be taken back into the group "
                "(after a broker restart it rejoins by itself)",
                topics,
                now - self._since,
            )


class Lag:
    """``querywatch_consumer_lag_messages`` of the partitions owned. A fetch response carries a
    partition's end, but a paused partition (an outage, a rewound log) is not fetched: its
    end is asked for at most every ``paused_every`` seconds (it read 0 while events piled
    up). A partition no longer owned loses its series."""

    def __init__(self, paused_every: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.paused_every = paused_every
        self._clock = clock
        self._asked_at = -paused_every
        self._shown: set[tuple[str, int]] = set()

    def record(self, consumer: KafkaConsumer, processor: PartitionOwner) -> None:
        owned = dict(processor.partitions)
        ends = {key: consumer.highwater(TopicPartition(*key)) for key in owned}
        held = consumer.paused()
        paused = [tp for tp in map(TopicPartition._make, owned) if tp in held]
        if paused and self._clock() - self._asked_at >= self.paused_every:
            self._asked_at = self._clock()
            with contextlib.suppress(KafkaError):  # the broker is away too: the next round asks again
                asked = consumer.end_offsets(paused)
                ends.update({(tp.topic, tp.partition): end for tp, end in asked.items()})
        for key, work in owned.items():
            end = ends.get(key)
            if end is not None and work.next_offset is not None:
                CONSUMER_LAG.labels(topic=key[0], partition=str(key[1])).set(max(0, end - work.next_offset))
        for topic, partition in self._shown - set(owned):
            CONSUMER_LAG.remove(topic, str(partition))
        self._shown = set(owned)


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (call from the main thread)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the batch, checkpointing and leaving the group", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
