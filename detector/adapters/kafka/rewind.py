"""A partition whose log went backwards: found, reported, paused (or read again).

The stored offset of a partition says where its next event is. If the topic is deleted
and recreated, or an in-memory broker restarts empty, the log starts again at 0: the
stored offset is then past the end, and Kafka's offset reset hands out the new events
from the start, which the consumer would skip as already stored. Nothing would say so.

A rewind is seen either way: the partition's end in the last fetch response (its high
watermark) is below the stored offset (Tansu answers a fetch past the end with no records
and no error), or records below the stored offset arrive after the consumer sought to it
(Kafka finds the offset out of range and the offset reset moves the consumer back). It is
counted in ``querywatch_log_rewound_total``, logged as an error (and reminded every
minute), and, by default, the partition is paused: the operator decides. With
``outages.on_log_rewind=restart`` the partition is read again from its new start; its
client states are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from querywatch.detector.adapters.kafka.owner import PartitionOwner
from querywatch.detector.adapters.kafka.partitions import TopicPartitionKey
from querywatch.detector.logging import LogLimiter
from querywatch.detector.metrics import LOG_REWOUND

log = logging.getLogger(__name__)


def paused_for_rewind(processor: PartitionOwner) -> set[TopicPartition]:
    """Partitions paused because their log went backwards (an outage's end keeps them paused)."""
    return {TopicPartition(t, p) for t, p in processor.rewound}


class RewindWatch:
    """Checks owned partitions for a rewound log after every poll."""

    def __init__(
        self,
        *,
        on_rewind: str = "pause",
        remind_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_rewind = on_rewind
        self._reminders = LogLimiter(remind_every, clock)

    def check(self, consumer: KafkaConsumer, processor: PartitionOwner) -> None:
        for key in list(processor.rewound):
            if key not in processor.partitions:
                processor.rewound.discard(key)  # moved to another consumer, which will see it too
            elif self._reminders.allow(key) is not None:
                log.error(
                    "%s/%d is still paused: its log went backwards; set "
                    "QUERYWATCH_OUTAGES__ON_LOG_REWIND=restart to read it again from its start",
                    *key,
                )
        for key, work in list(processor.partitions.items()):
            if key in processor.rewound:
                continue
            stored = work.next_offset if work.next_offset is not None else work.stored_offset
            if stored is None:
                continue
            end = consumer.highwater(TopicPartition(*key))  # from the last fetch response
            if work.below_floor is None and (end is None or end >= stored):
                continue
            work.below_floor = None
            self._rewound(consumer, processor, key, stored, end)

    def _rewound(
        self,
        consumer: KafkaConsumer,
        processor: PartitionOwner,
        key: TopicPartitionKey,
        stored: int,
        end: int | None,
    ) -> None:
        topic, partition = key
        tp = TopicPartition(topic, partition)
        start = consumer.beginning_offsets([tp]).get(tp, 0)
        if self.on_rewind == "restart":
            log.error(
                "%s/%d went backwards (log now %s..%s, stored offset %d): reading it again from %d "
                "(outages.on_log_rewind=restart)",
                topic,
                partition,
                start,
                end,
                stored,
                start,
            )
            processor.partitions[key].next_offset = start
            consumer.seek(tp, start)
            LOG_REWOUND.labels(topic=topic, partition=str(partition)).inc()
            return
        processor.rewound.add(key)
        self._reminders.restart(key)
        consumer.pause(tp)
        log.error(
            "%s/%d went backwards (log now %s..%s, stored offset %d; topic recreated or broker "
            "emptied?): partition paused, nothing read from it is stored; set "
            "QUERYWATCH_OUTAGES__ON_LOG_REWIND=restart and restart to read it again from %s",
            topic,
            partition,
            start,
            end,
            stored,
            start,
        )
        LOG_REWOUND.labels(topic=topic, partition=str(partition)).inc()
