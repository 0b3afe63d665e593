"""What the consumer-group loop (``consumer.run``) drives: the owner of assigned partitions.

The event consumer's ``StreamProcessor`` and the campaign aggregator's ``Aggregator`` are
both one: they load a partition's stored state and offset on assignment (queuing a seek),
process records, say which partitions' checkpoints are due, checkpoint them (offset and
state in one database transaction), and forget partitions that are revoked or lost. One
loop, one rebalance listener and one seek rule therefore serve both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from querywatch.detector.adapters.kafka.partitions import PartitionWork, TopicPartitionKey
from querywatch.detector.adapters.kafka.processor import Record


class PartitionOwner(Protocol):
    """The partitions a group member owns and the work it does on them."""

    #: Owned partitions.
    partitions: dict[TopicPartitionKey, PartitionWork]
    #: Partitions to seek before the next poll: offset, or None for the beginning.
    seeks: dict[TopicPartitionKey, int | None]
    #: Partitions paused because their log went backwards (``rewind``).
    rewound: set[TopicPartitionKey]

    def assign(self, keys: Iterable[TopicPartitionKey]) -> None: ...

    def revoke(self, keys: Iterable[TopicPartitionKey]) -> None: ...

    def lose(self, keys: Iterable[TopicPartitionKey]) -> None: ...

    def load_unloaded(self) -> None: ...

    def process(self, records: Iterable[Record]) -> None: ...

    def due(self) -> list[PartitionWork]: ...

    def checkpoint(self, works: Iterable[PartitionWork] | None = None) -> dict[TopicPartitionKey, int]: ...
