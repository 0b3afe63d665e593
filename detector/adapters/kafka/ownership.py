"""Owning partitions of a consumer group: what the event consumer (``StreamProcessor``) and
the campaign aggregator (``Aggregator``) do alike when partitions come and go.

A newly assigned partition's stored state and offset are loaded (``_load``, which queues a
seek); one that cannot be loaded (the database is away) waits in ``unloaded``, its records
skipped, until ``load_unloaded`` succeeds. A revoked partition is checkpointed, then
forgotten; a lost one is forgotten (its pending work is redone by its next owner from the
stored checkpoint). Each member says what loading, checkpointing and forgetting mean for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from querywatch.detector.adapters.kafka.outages import RETRYABLE
from querywatch.detector.adapters.kafka.partitions import PartitionWork, TopicPartitionKey

log = logging.getLogger(__name__)


class OwnedPartitions:
    """The partitions a group member owns; subclasses give ``_load``, ``_checkpoint``, ``_forget``."""

    def __init__(self) -> None:
        self.partitions: dict[TopicPartitionKey, PartitionWork] = {}
        #: Partitions to seek before the next poll: {(topic, partition): offset or None=beginning}.
        self.seeks: dict[TopicPartitionKey, int | None] = {}
        #: Assigned partitions whose stored state could not be loaded yet (database away).
        self.unloaded: set[TopicPartitionKey] = set()
        #: Partitions paused because their log went backwards (see ``adapters.kafka.rewind``).
        self.rewound: set[TopicPartitionKey] = set()

    def _load(self, key: TopicPartitionKey) -> None:
        raise NotImplementedError

    def _checkpoint(self, work: PartitionWork) -> bool:
        raise NotImplementedError

    def _forget(self, work: PartitionWork) -> None:
        raise NotImplementedError

    def assign(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Load the stored state of newly assigned partitions; queue a seek to their offsets."""
        for key in keys:
            if key in self.partitions:
                continue
            try:
                self._load(key)
            except RETRYABLE as exc:
                self.unloaded.add(key)
                log.warning("cannot load %s/%d yet (retried): %s", *key, type(exc).__name__)

    def load_unloaded(self) -> None:
        """Load the partitions ``assign`` could not; raise if the database is still away."""
        for key in sorted(self.unloaded):
            self._load(key)
            self.unloaded.discard(key)

    def revoke(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Checkpoint partitions that move to another member, then forget them."""
        keys = list(keys)
        for work in [self.partitions[k] for k in keys if k in self.partitions]:
            try:
                self._checkpoint(work)
            except RETRYABLE as exc:  # the next owner redoes the work from the stored checkpoint
                log.warning("%s/%d left without a checkpoint: %s", work.topic, work.partition, exc)
            self._forget(work)
        self.unloaded.difference_update(keys)

    def lose(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Forget partitions taken away without notice; their pending work is redone elsewhere."""
        keys = list(keys)
        self.unloaded.difference_update(keys)
        for work in [self.partitions[k] for k in keys if k in self.partitions]:
            self._forget(work)
