"""The in-memory side of one assigned partition, and the stored form of a client's state.

A ``PartitionWork`` is everything the consumer holds about a partition between two
checkpoints: how far it read, what the database last stored, and the outcomes and dead
letters that the next checkpoint will commit together with the offset.

A client's stored state is the engine's ``export_client`` bytes *plus* the client's recent
request ids (``stream.dedup_per_client`` of them), so that a redelivered request is dropped
after a restart exactly as it would have been without one. Duplicates of a request come
from the same client, hence the same partition, and arrive close together (producer
retries), so a short per-client memory suffices and keeps checkpoints small.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from querywatch.detector.adapters.kafka.deadletters import DeadLetter
from querywatch.detector.engine.events import RequestIdFilter
from querywatch.detector.errors import QuerywatchError

#: Checkpoints written before the per-partition key held a partition's warm-up events here: a
#: NUL, which PostgreSQL's text refuses (a checkpoint with held events failed there), and the
#: same for every partition (states are keyed by id alone, so partitions overwrote each other).
LEGACY_HELD_EVENTS_KEY = "\x00held"


#: Prefix of every partition's key of held events (``held_events_key``).
HELD_EVENTS_PREFIX = "\x01held "


def held_events_key(partition: int) -> str:
    """Key of ``partition``'s held warm-up events among its stored client states: a control
    character (refused in client ids, so no client can have it; not NUL) and the partition.

    >>> ord(held_events_key(3)[0]), held_events_key(3)[1:]
    (1, 'held 3')
    """
    return f"{HELD_EVENTS_PREFIX}{partition}"


def held_chunk_key(partition: int, chunk: int) -> str:
    """Key of chunk ``chunk`` of ``partition``'s held events (chunk 0: ``held_events_key``).

    Each checkpoint stores the events held since the one before as a new chunk, which takes
    in the chunks before it no larger than it (``PartitionWork._held_plan``). Rewritten
    whole at every checkpoint, a warm-up of n events wrote about n² / (2 × the events
    between checkpoints): a partition holding 80,000 events (``detection.warmup_events``
    held on four times) wrote 680,000 at one checkpoint per 5,000 events, 640 million at
    one per 5 (a slow model, a checkpoint every ``checkpoint_every_seconds``); chunks write
    240,000 and 565,000, in at most 4 and 13 rows at once
    (``benchmarks/bench_warmup_checkpoints.py``).

    >>> held_chunk_key(3, 0) == held_events_key(3), held_chunk_key(3, 2)[1:]
    (True, 'held 3/2')
    """
    return held_events_key(partition) if chunk == 0 else f"{later_chunks_prefix(partition)}{chunk}"


def later_chunks_prefix(partition: int) -> str:
    """What the keys of ``partition``'s held-event chunks after the first start with (no other
    partition's key does: ``held_events_key(31)`` does not start with that of 3 and a slash)."""
    return f"{held_events_key(partition)}/"


def held_chunk_keys(keys: Iterable[str], partition: int) -> list[str]:
    """Those of ``keys`` that are chunks of ``partition``'s held events, in chunk order.

    >>> held_chunk_keys([held_chunk_key(3, 1), "a", held_chunk_key(31, 0), held_chunk_key(3, 0)], 3)[1][1:]
    'held 3/1'
    """
    first, later = held_events_key(partition), later_chunks_prefix(partition)
    chunks = [key for key in keys if key == first or key.startswith(later)]
    return sorted(chunks, key=lambda key: 0 if key == first else int(key.removeprefix(later)))


#: A partition of a topic: (topic, partition).
TopicPartitionKey = tuple[str, int]

_MAGIC = b"QWC1"
_HEADER = struct.Struct(">4sI")


class CorruptClientState(QuerywatchError):
    """A stored client state is not in the format this querywatch writes."""


def pack_client_state(engine_state: bytes, recent: RequestIdFilter) -> bytes:
    """The stored form of a client: the engine's bytes and the client's recent request ids.

    >>> seen = RequestIdFilter(4); _ = seen.is_new("r1")
    >>> state, again = unpack_client_state(pack_client_state(b"engine", seen), 4)
    >>> state, again.is_new("r1"), again.is_new("r2")
    (b'engine', False, True)
    """
    ids = json.dumps(recent.state(), separators=(",", ":")).encode()
    return _HEADER.pack(_MAGIC, len(engine_state)) + engine_state + ids


def unpack_client_state(blob: bytes, dedup_per_client: int) -> tuple[bytes, RequestIdFilter]:
    """Split a stored client state into the engine's bytes and a filter of the client's
    last ``dedup_per_client`` request ids."""
    if len(blob) < _HEADER.size:
        raise CorruptClientState("client state is truncated")
    magic, size = _HEADER.unpack_from(blob)
    if magic != _MAGIC or _HEADER.size + size > len(blob):
        raise CorruptClientState("client state has an unknown format or is truncated")
    engine_state = blob[_HEADER.size : _HEADER.size + size]
    try:
        ids = json.loads(blob[_HEADER.size + size :])
    except ValueError as exc:
        raise CorruptClientState(f"client state has unreadable request ids: {exc}") from None
    return engine_state, RequestIdFilter.from_state(list(ids), dedup_per_client)


def record_digest(value: bytes | None) -> str:
    """A short digest of a record's value: the stored checkpoint's last record, compared with
    the record found at its offset later (a log replaced since has another there).

    >>> record_digest(b'{"a": 1}') == record_digest(b'{"a": 1}') != record_digest(b'{"a": 2}')
    True
    """
    return hashlib.blake2b(value or b"", digest_size=16).hexdigest()


@dataclass
class PartitionWork:
    """One assigned partition between two checkpoints.

    ``stored_offset`` is what the database holds (the compare-and-set expectation, None if
    never checkpointed); ``next_offset`` is one past the last message processed (the stored
    offset once loaded; None until the first message of a partition never checkpointed).
    Outcomes and dead letters wait here until the checkpoint commits them.
    """

    topic: str
    partition: int
    stored_offset: int | None
    started_at: float
    dedup_per_client: int
    next_offset: int | None = None
    recent: dict[str, RequestIdFilter] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    evicted: set[str] = field(default_factory=set)
    outcomes: list[Any] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: Client summaries for the summaries topic, sent with the checkpoint of their events.
    summaries: list[Any] = field(default_factory=list)
    #: Lowest offset received below the stored checkpoint (a sign the log went backwards).
    below_floor: int | None = None
    events_since_checkpoint: int = 0
    held: list[Any] = field(default_factory=list)
    """Events of this partition the reference stage holds (a model warming up): stored with
    the checkpoint, so that its offset may move past them."""
    #: Events in each stored chunk of ``held``, in order (chunk i under ``held_chunk_key``):
    #: they hold its first events, unless ``held_rewrite`` (events were let go, or the stored
    #: keys are not this release's chunks), when the next checkpoint stores them anew.
    held_sizes: list[int] = field(default_factory=list)
    held_rewrite: bool = False
    #: The value of the last record processed, whose digest the next checkpoint stores.
    last_value: bytes | None = None
    #: (offset, digest) of the record the stored checkpoint ended at, read again after the
    #: seek to check that the log is the one checkpointed (``record_digest``); None once seen.
    witness: tuple[int, str] | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def has_progress(self) -> bool:
        """Whether a checkpoint would store anything new."""
        moved = self.next_offset is not None and self.next_offset != self.stored_offset
        return moved or bool(
            self.dirty or self.evicted or self.outcomes or self.dead_letters or self.held_pending()
        )

    def held_pending(self) -> bool:
        """Whether the held events differ from what the stored chunks hold."""
        return self.held_rewrite or len(self.held) > sum(self.held_sizes)

    def _held_plan(self) -> list[int]:
        """The chunks' sizes after the next checkpoint. New events make a chunk that takes in
        the chunks before it while they are no larger than it (a binary counter): a warm-up
        of n held events keeps at most about log2(n) chunks and writes each event about as
        many times (a chunk per checkpoint would leave a slow model thousands of rows)."""
        if self.held_rewrite:
            return [len(self.held)] if self.held else []
        sizes = list(self.held_sizes)
        new = len(self.held) - sum(sizes)
        if new <= 0:
            return sizes
        while sizes and sizes[-1] <= new:
            new += sizes.pop()
        return [*sizes, new]

    def held_checkpoint(self, pack: Callable[[list[Any]], bytes]) -> tuple[dict[str, bytes], set[str]]:
        """The chunk the next checkpoint writes (``pack`` makes its bytes) and the chunk keys
        it drops: those past the chunks ``_held_plan`` keeps."""
        plan = self._held_plan()
        if plan == self.held_sizes and not self.held_rewrite:
            return {}, set()
        keys = [held_chunk_key(self.partition, i) for i in range(max(len(plan), len(self.held_sizes)))]
        written = {keys[len(plan) - 1]: pack(self.held[sum(plan[:-1]) :])} if plan else {}
        return written, set(keys[len(plan) :])

    def recent_requests(self, client_id: str) -> RequestIdFilter:
        filt = self.recent.get(client_id)
        if filt is None:
            filt = self.recent[client_id] = RequestIdFilter(self.dedup_per_client)
        return filt

    def committed(self, now: float) -> None:
        """The checkpoint of everything pending was committed at ``now``."""
        self.stored_offset = self.next_offset if self.next_offset is not None else self.stored_offset
        self.dirty.clear()
        self.evicted.clear()
        self.outcomes = []
        self.dead_letters = []
        self.summaries = []
        self.events_since_checkpoint = 0
        self.held_sizes, self.held_rewrite = self._held_plan(), False
        self.last_value = None
        self.started_at = now
