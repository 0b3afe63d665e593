"""The consumer's work, without Kafka: decode → validate → dedup → score → checkpoint.

``StreamProcessor`` owns the engine and the partitions assigned to this process. Records
come in as plain values (``Record``); a checkpoint commits, in one database transaction,
the outcomes and dead letters of the messages it covers, the states of the clients they
touched and each partition's next offset (the partitions due together share the
transaction: one round of queries and one commit). The outcomes go through the
outcome sinks (``pipeline.sinks``; see ``adapters.sinks`` for the consumer's), the first
of which sends them to Kafka; the checkpoint waits for the broker's acknowledgement of
everything it sent (dead letters and summaries too) after its database writes and before
the commit, so the topics get everything at least once while the database gets it
exactly once, and the round trip overlaps the writes.

Warm-up: events of a model without a profile are held by the engine's reference stage.
Each partition stores the events of it that are held with its checkpoint (each checkpoint
those held since the one before, as a chunk: ``held_chunk_key``), so its offset moves past
them and no partition, model or restart waits for a model that is warming up; the
partition's next owner takes them back.

Residency: past the engine's cap (``residency.max_resident_clients``) the least recently
active clients are spilled at a checkpoint: the checkpoints of their partitions, in the
same round, store their state (as for any client), then they leave memory. The spilled
clients of a batch come back before it is scored, with one query for all of them
(``_restore``); with a cap, a partition's clients are loaded on their next event, not when
it is assigned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple, Protocol

from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.checkpoints import (
    CheckpointConflict,
    PartitionCheckpoint,
    load_client_states,
    load_partition,
    save_checkpoints,
)
from querywatch.detector.adapters.db.dead_letters import save_dead_letters
from querywatch.detector.adapters.db.outcome_store import OutcomeTx
from querywatch.detector.adapters.db.session import SessionFactory, transaction
from querywatch.detector.adapters.kafka.deadletters import DeadLetter, encoded, reject
from querywatch.detector.adapters.kafka.outages import RETRYABLE
from querywatch.detector.adapters.kafka.ownership import OwnedPartitions
from querywatch.detector.adapters.kafka.partitions import (
    LEGACY_HELD_EVENTS_KEY,
    CorruptClientState,
    PartitionWork,
    TopicPartitionKey,
    held_chunk_key,
    held_chunk_keys,
    held_events_key,
    later_chunks_prefix,
    pack_client_state,
    record_digest,
    unpack_client_state,
)
from querywatch.detector.config import InputSettings, StreamSettings
from querywatch.detector.config.detection import WARMUP_WAIT
from querywatch.detector.engine.detector import BatchResult, Detector
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.profiles import thin_warmup
from querywatch.detector.engine.reference import pack_events, unpack_events
from querywatch.detector.engine.summaries import ClientSummary
from querywatch.detector.errors import ConfigError, InvalidEvent
from querywatch.detector.logging import LogLimiter
from querywatch.detector.metrics import (
    CHECKPOINTS,
    CLIENTS_TRACKED,
    EVENT_PROCESSING_SECONDS,
    EVENTS_GAPPED,
    EVENTS_PROCESSED,
    EVENTS_UNSCORED,
    LAST_CHECKPOINT,
    WARMUP_EVENTS_HELD,
)
from querywatch.detector.pipeline.loop import Message, Pipeline, Step
from querywatch.detector.pipeline.sinks import Sinks

log = logging.getLogger(__name__)

#: Bytes of an oversized message kept in its dead letter (its source offset finds the rest).
OVERSIZED_HEAD = 65536
#: Seconds between two lines saying that a model's events still wait for its warm-up.
WARMUP_REMINDER_SECONDS = 60.0
#: Seconds between two warnings that a model's answers name classes its profile does not know.
UNKNOWN_CLASSES_REMINDER_SECONDS = 3600.0
#: The offset a dead letter of a held event taken back from a checkpoint names (``_reject_held``).
HELD_OFFSET = -1


class Record(NamedTuple):
    """The parts of a Kafka message the processor needs, by the names of kafka-python's
    ``ConsumerRecord``, which the consumer loop hands over as it is (a copy of each message
    would cost about a microsecond)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class CheckpointOutput(Protocol):
    """Where the consumer sends dead letters and client summaries (``OutputProducer``, also
    the first outcome sink)."""

    def send_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    def send_summaries(self, summaries: Sequence[ClientSummary]) -> None: ...

    def flush(self) -> None:
        """Wait for the acknowledgement of everything sent (raise if anything failed)."""


class StreamProcessor(OwnedPartitions):
    """Scores the records of the partitions it owns and checkpoints them to the database."""

    def __init__(
        self,
        *,
        engine: Detector,
        sessions: SessionFactory,
        outputs: CheckpointOutput,
        sinks: Sinks[OutcomeTx],
        group_id: str,
        checkpoint_every_events: int,
        checkpoint_every_seconds: float,
        max_event_bytes: int,
        inputs: InputSettings | None = None,
        stream: StreamSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        campaigns: InProcessCampaigns | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        #: The campaign stage, when it runs in this process (``querywatch up``).
        self.campaigns = campaigns
        self._sessions = sessions
        self._outputs = outputs
        self._sinks = sinks
        self.group_id = group_id
        self._every_events = checkpoint_every_events
        self._every_seconds = checkpoint_every_seconds
        self._max_event_bytes = max_event_bytes
        self._stream = stream = stream or StreamSettings()
        if stream.dedup_scope != "client":
            raise ConfigError(
                "stream.dedup_scope must be 'client' for a consumer: its partitions share no memory "
                "of request ids ('stream' is for replay)"
            )
        #: With a resident cap, clients are loaded on their next event (``_restore``).
        self._lazy = engine.max_resident is not None
        self.pipeline: Pipeline[tuple[PartitionWork, Record]] = Pipeline(
            self.engine,
            is_new=self._is_new,
            forget=self._forget_request,
            restore=self._restore_batch if self._lazy else None,
            inputs=inputs,
            max_event_bytes=max_event_bytes,
        )
        self.guard = self.pipeline.guard
        self._clock = clock
        self._owner: dict[str, PartitionWork] = {}  # client_id -> its partition
        #: Partitions where an alert opened since their last checkpoint: checkpointed at once.
        self._urgent: set[TopicPartitionKey] = set()
        #: Models warming up and models answering unknown classes, each said at most once a period.
        self._warmups = LogLimiter(WARMUP_REMINDER_SECONDS, clock)
        self._unknown = LogLimiter(UNKNOWN_CLASSES_REMINDER_SECONDS, clock)
        #: When ``_adopt_stored`` looks next for profiles other consumers stored (clock time).
        self._adopt_after = clock() + checkpoint_every_seconds

    # -- partition ownership (``OwnedPartitions``: assign, load_unloaded, revoke, lose) -------

    def _load(self, key: TopicPartitionKey) -> None:
        """Load a partition's stored offset, client states and held events. A partition
        whose spilled clients cannot be restored later is loaded again the same way
        (``process``)."""
        topic, partition = key
        with transaction(self._sessions) as session:
            stored = load_partition(
                session=session,
                group_id=self.group_id,
                topic=topic,
                partition=partition,
                only=(held_events_key(partition), LEGACY_HELD_EVENTS_KEY) if self._lazy else None,
                only_prefix=later_chunks_prefix(partition) if self._lazy else None,
            )
        # Processed up to its stored offset: what the partition's held events give once
        # taken back (below) is checkpointed there, with no new record needed.
        work = PartitionWork(
            topic,
            partition,
            stored.next_offset,
            self._clock(),
            self._stream.dedup_per_client,
            next_offset=stored.next_offset,
        )
        if stored.clock is not None:
            try:
                self.guard.resume(key, stored.clock)
            except ValueError as exc:  # judged from its first batch, as before clocks were stored
                log.warning("%s/%d: stored event-time clock ignored: %s", topic, partition, exc)
        keys = held_chunk_keys(stored.client_states, partition)
        chunks = [unpack_events(stored.client_states.pop(key)) for key in keys]
        work.held_sizes = [len(chunk) for chunk in chunks]
        legacy = stored.client_states.pop(LEGACY_HELD_EVENTS_KEY, None)
        if legacy is not None:  # an earlier checkpoint's key: moves to this partition's
            chunks = chunks or [unpack_events(legacy)]
            work.evicted.add(LEGACY_HELD_EVENTS_KEY)
            work.held_rewrite = True
        if keys != [held_chunk_key(partition, i) for i in range(len(keys))]:  # not chunks 0, 1, …
            work.evicted.update(keys)
            work.held_sizes, work.held_rewrite = [], True
        events = [event for chunk in chunks for event in chunk]
        if self._lazy and events:  # their clients' other models may be spilled
            self._restore({event.client_id: work for event in events})
        for client_id, blob in stored.client_states.items():
            with self._reading(key, client_id):
                engine_state, recent = unpack_client_state(blob, self._stream.dedup_per_client)
                self.engine.import_client(client_id, engine_state)
            work.recent[client_id] = recent
            self._owner[client_id] = work
        self.partitions[work.key] = work
        self.seeks[work.key] = stored.next_offset
        if stored.next_offset and stored.last_digest is not None:  # read its last record again
            work.witness = (stored.next_offset - 1, stored.last_digest)
            self.seeks[work.key] = stored.next_offset - 1
        CLIENTS_TRACKED.set(len(self._owner))
        if events:
            self._resume_held(work, events)
        start = (
            "no checkpoint yet (kafka.start_from says where it starts)"
            if stored.next_offset is None
            else f"resuming at offset {stored.next_offset}"
        )
        loaded = (  # with a resident cap, a client's state loads on its next event: none is lost
            "client states load on each client's next event"
            if self._lazy
            else f"{len(stored.client_states)} client states loaded"
        )
        log.info("assigned %s/%d: %s, %s", topic, partition, loaded, start)
        self._log_fresh_parts(f"assigned {topic}/{partition}")

    def _forget(self, work: PartitionWork) -> None:
        for client_id in work.recent:
            if self._owner.get(client_id) is work:
                del self._owner[client_id]
                self.engine.drop_client(client_id)
        self.pipeline.let_go(work.held)
        self.partitions.pop(work.key, None)
        self.seeks.pop(work.key, None)
        self.guard.forget(work.key)
        CLIENTS_TRACKED.set(len(self._owner))
        WARMUP_EVENTS_HELD.set(self.engine.pending_warmup())

    def _rewind(self, work: PartitionWork) -> None:
        """Drop what is in memory for ``work`` and reload it from its stored checkpoint."""
        self._forget(work)
        self.assign([work.key])

    def _resume_held(self, work: PartitionWork, events: list[Event]) -> None:
        """Give the engine back the held events a partition's checkpoint stored."""
        for event in events:
            self._owner[event.client_id] = work
            work.recent_requests(event.client_id)
        step = self.pipeline.take_back(events)
        self._refuse(step)  # e.g. the profile built elsewhere has another dimension
        self._route(step.result)
        still = {id(e) for e in step.result.held}
        work.held = [e for e in events if id(e) in still]
        work.held_rewrite = work.held_rewrite or len(work.held) != len(events)

    # -- processing ------------------------------------------------------------------------

    def process(self, records: Iterable[Record]) -> None:
        """Decode, validate and dedup ``records`` of owned partitions, then score them as one batch.

        Scoring the batch at once lets the engine vectorize the work shared by its events;
        each client's events keep their order (one client, one partition).
        """
        self._adopt_stored()
        messages: list[Message[tuple[PartitionWork, Record]]] = []
        append = messages.append
        key, work = None, None  # the partition of the record before: a poll groups them
        for record in records:
            if key is None or record.partition != key[1] or record.topic != key[0]:
                key = (record.topic, record.partition)
                work = self.partitions.get(key)
            if work is None or work.below_floor is not None:
                continue  # no longer ours, or its log went backwards: nothing more until judged
            offset = record.offset
            if work.witness is not None and offset >= work.witness[0]:
                witness, work.witness = work.witness, None
                if offset == witness[0]:  # the checkpoint's last record, read again to compare
                    if record_digest(record.value) != witness[1]:
                        work.below_floor = offset  # another record there: the log was replaced
                    continue
            floor = work.next_offset if work.next_offset is not None else work.stored_offset
            if floor is not None and offset < floor:
                # Covered by the stored checkpoint; after a seek to it, only a log that went
                # backwards (recreated, emptied) hands these out: ``rewind`` judges that.
                work.below_floor = min(offset, work.below_floor or offset)
                continue
            work.next_offset = offset + 1
            work.last_value = record.value
            work.events_since_checkpoint += 1
            append(Message(record.value, key, (work, record), record.key))
        try:
            step = self.pipeline.step(messages)
        except RETRYABLE as exc:  # spilled clients not restored: redo the partitions from their checkpoints
            for key in {message.ref[0].key for message in messages}:
                self._forget(self.partitions[key])
                self.unloaded.add(key)
            log.warning("cannot restore spilled clients yet (retried): %s", type(exc).__name__)
            return
        self._refuse(step)
        self._count(step)
        if not step.events:
            return
        # Per event, averaged over the batch: timing each event would itself cost microseconds.
        EVENT_PROCESSING_SECONDS.observe(step.score_seconds / step.events)
        for event in step.result.held:
            work = step.refs[id(event)][0]
            work.held.append(event)
        self._route(step.result)

    @staticmethod
    def _count(step: Step[tuple[PartitionWork, Record]]) -> None:
        """Count what ``step`` scored without scores or with missing inputs: held events too,
        when their model's profile came (here or from another consumer, ``_adopt_stored``)."""
        EVENTS_UNSCORED.inc(step.unscored)
        EVENTS_GAPPED.inc(step.result.gapped)

    def _refuse(self, step: Step[tuple[PartitionWork, Record]]) -> None:
        """Dead-letter the records ``step`` refused, and the refused events no record brought."""
        for (work, record), error, client_id, model_id in step.refused:
            self._reject(work, record, error, client_id, model_id)
        self._reject_held(step.unreferenced)

    def _adopt_stored(self) -> None:
        """While events are held, every ``checkpoint_every_seconds``: score those of models
        whose profile another consumer of the group stored since (``Detector.adopt_stored``),
        whether or not another event of the model comes here."""
        now = self._clock()
        if now < self._adopt_after or not self.engine.pending_warmup():
            return
        self._adopt_after = now + self._every_seconds
        try:
            step = self.pipeline.adopt_stored()
        except RETRYABLE as exc:  # the profile store is out: the next turn looks again
            log.warning("cannot look for profiles stored by other consumers yet: %s", type(exc).__name__)
            return
        self._refuse(step)
        self._count(step)
        self._route(step.result)

    def _is_new(self, event: Event, source: tuple[PartitionWork, Record]) -> bool:
        """Whether ``event`` is not a redelivery (``stream.dedup_scope`` = client: stored
        with its checkpoint)."""
        work = source[0]
        if not work.recent_requests(event.client_id).is_new(event.request_id):
            return False
        self._owner[event.client_id] = work
        return True

    def _forget_request(self, event: Event) -> None:
        """Undo ``_is_new`` for an event refused after it (``Pipeline.forget``)."""
        work = self._owner.get(event.client_id)
        if work is not None:
            work.recent_requests(event.client_id).forget(event.request_id)

    def _restore_batch(self, batch: list[tuple[Event, tuple[PartitionWork, Record]]]) -> None:
        self._restore({event.client_id: work for event, (work, _) in batch})

    def _restore(self, works: dict[str, PartitionWork]) -> None:
        """Bring back the spilled ones of these clients (each with its partition) from the
        checkpoint table, in one query.

        A client its partition has seen since it was assigned (its request ids are here)
        or evicted since its last checkpoint was not spilled, so it is not looked for. A state
        idle long enough to have been evicted stays out (``Detector.restore``).
        """
        wanted = [
            c for c in self.engine.absent(works) if c not in works[c].recent and c not in works[c].evicted
        ]
        if not wanted:
            return
        with transaction(self._sessions) as session:
            blobs = load_client_states(session=session, group_id=self.group_id, client_ids=wanted)
        recent = {}
        now = self.guard.eviction_time()
        idle_before = None
        if now is not None and self._stream.evict_idle:
            idle_before = now - self.engine.settings.idle_evict_seconds
        restored = []
        for client_id, blob in blobs.items():
            with self._reading(works[client_id].key, client_id):
                state, recent[client_id] = unpack_client_state(blob, self._stream.dedup_per_client)
                restored += self.engine.restore({client_id: state}, idle_before)
        for client_id in restored:
            work = works[client_id]
            work.recent[client_id] = recent[client_id]
            self._owner[client_id] = work
        CLIENTS_TRACKED.set(len(self._owner))
        self._log_fresh_parts("spilled clients brought back")

    def _log_fresh_parts(self, where: str) -> None:
        """Say which parts of the client states just loaded started fresh, and in how many
        (``Detector.take_fresh_parts``): stored by a release without them, or in a shape this
        one no longer reads. The rest of each state, its evidence among it, loaded."""
        fresh = self.engine.take_fresh_parts()
        if fresh:
            parts = ", ".join(f"{part} in {n}" for part, n in sorted(fresh.items()))
            log.info(
                "%s: stored client states with parts starting fresh (another release's): %s",
                where,
                parts,
            )

    @contextmanager
    def _reading(self, key: TopicPartitionKey, client_id: str) -> Iterator[None]:
        """Reading the stored state of ``client_id`` on partition ``key``: a state this release
        cannot read raises an error naming where it is and what to do. The partition is not
        taken: scoring the client afresh would drop its evidence without a word."""
        try:
            yield
        except (CorruptClientState, ValueError) as exc:
            topic, partition = key
            raise CorruptClientState(
                f"the stored state of client {client_id!r} on {topic}/{partition} "
                f"(group {self.group_id!r}) cannot be read: {exc}",
                hint="a newer release wrote it, or it is damaged: run a release that reads it, or "
                "delete that client's row of the client_states table (its evidence is lost; it "
                "starts afresh)",
            ) from None

    def _route(self, result: BatchResult) -> None:
        """Outcomes and summaries to their clients' partitions (summaries to the in-process
        campaign stage when there is one); held events of completed warm-ups let go, and
        the count of those still held published (a model that stays warming up shows).
        Scored events are counted here, where every path that scores ends: a step's
        ``events`` less its ``rejected`` goes below zero when a warm-up that cannot build a
        profile refuses what earlier steps held, and a counter refuses a negative step."""
        EVENTS_PROCESSED.inc(len(result.outcomes))
        for outcome in result.outcomes:  # after a warm-up, also outcomes of earlier batches
            client_id = outcome.update.client_id
            owner = self._owner[client_id]
            owner.outcomes.append(outcome)
            owner.dirty.add(client_id)
            if outcome.event is not None:  # an alert event is stored (and sent) now, not later
                self._urgent.add(owner.key)
        if self.campaigns is not None:
            self.campaigns.take(result.summaries)
        else:  # to the summaries topic with their partition's next checkpoint
            for summary in result.summaries:
                self._owner[summary.client_id].summaries.append(summary)
        if result.completed:
            done = set(result.completed)
            for model_id in done:
                profile = self.engine.profile_in_use(model_id)
                if profile is not None and (warning := thin_warmup(profile)):
                    log.warning("%s", warning, extra={"model_id": model_id})
            for work in self.partitions.values():
                if work.held:
                    kept = [e for e in work.held if e.model_id not in done]
                    if len(kept) != len(work.held):
                        work.held, work.held_rewrite = kept, True
        WARMUP_EVENTS_HELD.set(self.engine.pending_warmup())
        self._say_warmups()
        self._say_unknown_classes()

    def _say_unknown_classes(self) -> None:
        """Answers naming classes the profile does not know, said when first seen and then
        hourly: they read as no class, and every client's extraction estimate stays at 0."""
        for model_id, warning in self.engine.unknown_classes().items():
            if self._unknown.allow(model_id) is not None:
                log.warning("%s", warning, extra={"model_id": model_id})

    def _say_warmups(self) -> None:
        """A model whose events wait for its warm-up is said when its first are held, and
        then once a minute while they wait: a consumer fed fewer events than a warm-up takes
        scored nothing, and said nothing, for as long as no more came."""
        held = self.engine.reference.held_by_model()
        self._warmups.keep_only(held)  # a model warming up again is said at once
        for model_id, count in held.items():
            if self._warmups.allow(model_id) is None:
                continue
            reference = self.engine.reference
            if reference.awaits_answers(model_id):
                log.info(
                    "%s: %d events held until the model's answers to the first %d "
                    "(QUERYWATCH_DETECTION__WARMUP_EVENTS) complete its trusted profile, a file of "
                    "inputs alone; then they are scored. A profile made with the answers scores "
                    "from the first event (querywatch profile --served on logged events)",
                    model_id,
                    count,
                    reference.settings.warmup_events,
                    extra={"model_id": model_id},
                )
                continue
            log.info(
                "%s: %d events held for its warm-up, which builds its profile from the first %d "
                "(QUERYWATCH_DETECTION__WARMUP_EVENTS; up to %d times as many while a few clients "
                "send most of them) and then scores them; to score from the "
                "first event, give it a profile made with the model's answers (querywatch profile "
                "--input LOGGED.jsonl --served --model-id %s --out DIR, then "
                "QUERYWATCH_DETECTION__PROFILE_DIR=DIR)",
                model_id,
                count,
                reference.settings.warmup_events,
                WARMUP_WAIT,
                model_id,
                extra={"model_id": model_id},
            )

    def _reject(
        self,
        work: PartitionWork,
        record: Record,
        error: InvalidEvent,
        client_id: str | None,
        model_id: str | None,
    ) -> None:
        raw = b"" if record.value is None else record.value
        if len(raw) > self._max_event_bytes:  # whole in the log; memory holds a bounded head
            raw = raw[:OVERSIZED_HEAD]
        work.dead_letters.append(
            reject(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                raw=raw,
                key=record.key,
                error=error,
                client_id=client_id,
                model_id=model_id,
            )
        )

    def _reject_held(self, refused: Iterable[tuple[Event, InvalidEvent]]) -> None:
        """Dead-letter held events refused once their profile came that no record brought:
        taken back from a checkpoint, they are stored re-encoded (``deadletters.encoded``), at offset
        HELD_OFFSET of the partition that holds their client, with its next checkpoint."""
        for event, error in refused:
            work = self._owner.get(event.client_id)
            if work is None:  # a revoked partition's held events left with it (``_forget``): a slip logs
                log.error("held event %s of %s dropped: %s", event.request_id, event.client_id, error)
                continue
            detail = f"{error.detail} (held through a checkpoint: re-encoded, the original offset unknown)"
            work.dead_letters.append(
                reject(
                    topic=work.topic,
                    partition=work.partition,
                    offset=HELD_OFFSET,
                    raw=encoded(event),
                    key=event.client_id.encode(),
                    error=InvalidEvent(error.reason, detail),
                    client_id=event.client_id,
                    model_id=event.model_id,
                )
            )

    # -- checkpoints -----------------------------------------------------------------------

    def due(self) -> list[PartitionWork]:
        """Partitions whose checkpoint is due: an alert opened in it, or enough events or time
        since the last checkpoint. When one is due, those halfway to their own periodic
        checkpoint come along: one transaction instead of two, and the partitions stay in step."""
        now = self._clock()
        spilling = self.engine.over_cap()
        pending = [w for w in self.partitions.values() if w.has_progress()]
        if not (spilling or any(w.key in self._urgent or self._past(w, now, 1.0) for w in pending)):
            return []
        return [w for w in pending if spilling or w.key in self._urgent or self._past(w, now, 0.5)]

    def _past(self, work: PartitionWork, now: float, share: float) -> bool:
        """Whether ``work`` is past ``share`` of the events or time between periodic checkpoints."""
        return (
            work.events_since_checkpoint >= share * self._every_events
            or now - work.started_at >= share * self._every_seconds
        )

    def checkpoint(self, works: Iterable[PartitionWork] | None = None) -> dict[TopicPartitionKey, int]:
        """Checkpoint ``works`` (default: every owned partition); return the stored offsets.

        Past the resident cap, the partitions of the clients to spill are checkpointed too,
        and those clients then leave memory (``_spill``)."""
        self._evict_idle()
        spilling = self.engine.spill_candidates()
        targets = list(self.partitions.values() if works is None else works)
        keys = {w.key for w in targets}
        for client_id in spilling:
            owner = self._owner.get(client_id)
            if owner is not None and owner.key not in keys:
                keys.add(owner.key)
                targets.append(owner)
        stored = {w.key: w.stored_offset for w in self._commit(targets) if w.stored_offset is not None}
        if spilling:
            self._spill(spilling)
        return stored

    def _spill(self, client_ids: list[str]) -> None:
        """Forget those of ``client_ids`` whose stored state is their current one (not dirty:
        the checkpoint just wrote it, or nothing changed since); the others stay resident
        until a checkpoint of theirs succeeds."""
        gone = []
        for client_id in client_ids:
            work = self._owner.get(client_id)
            if work is not None and client_id not in work.dirty:
                del self._owner[client_id]
                work.recent.pop(client_id, None)
                gone.append(client_id)
        self.engine.release(gone)
        CLIENTS_TRACKED.set(len(self._owner))

    def _evict_idle(self) -> None:
        now = self.guard.eviction_time()
        if now is None or not self._stream.evict_idle:
            return
        for client_id in self.engine.evict_idle(now):
            work = self._owner.pop(client_id, None)
            if work is not None:
                work.recent.pop(client_id, None)
                work.dirty.discard(client_id)
                work.evicted.add(client_id)
        CLIENTS_TRACKED.set(len(self._owner))

    def _checkpoint(self, work: PartitionWork) -> bool:
        """Commit ``work``'s pending outcomes, dead letters, client states and offset."""
        return bool(self._commit([work]))

    def _commit(self, works: list[PartitionWork]) -> list[PartitionWork]:
        """Commit the pending outcomes, dead letters, client states and offsets of ``works`` in
        one transaction (one round of queries and one commit for partitions due together);
        return those committed.

        A partition another consumer owns now is rewound and the others are committed without it.
        """
        works = [w for w in works if w.has_progress() and w.next_offset is not None]
        if not works:
            return []
        checkpoints = [self._partition_checkpoint(w) for w in works]
        for work in works:
            self._outputs.send_dead_letters(work.dead_letters)
            self._outputs.send_summaries(work.summaries)
        try:
            with transaction(self._sessions) as session:
                tx = OutcomeTx(session)
                if self.campaigns is not None and self.campaigns.pending():
                    tx.saved.events += self.campaigns.write(session).events  # the outbox sends them
                self._sinks.write([o for w in works for o in w.outcomes], tx)
                save_dead_letters(session=session, letters=[d for w in works for d in w.dead_letters])
                save_checkpoints(session=session, group_id=self.group_id, checkpoints=checkpoints)
                self._outputs.flush()  # acknowledged before the commit, awaited after the writes
        except CheckpointConflict as exc:  # only a partition's offset raises it
            log.warning("checkpoint refused, another consumer owns the partition now: %s", exc)
            refused = next(w for w in works if w.key == exc.key)
            self._rewind(refused)
            return self._commit([w for w in works if w is not refused])
        self._sinks.committed(tx)
        if self.campaigns is not None:
            self.campaigns.committed()
        now = self._clock()
        for work in works:
            work.committed(now)
            self._urgent.discard(work.key)
            CHECKPOINTS.inc()
        LAST_CHECKPOINT.set(time.time())
        return works

    def _partition_checkpoint(self, work: PartitionWork) -> PartitionCheckpoint:
        """What ``work``'s checkpoint stores: its offset, the states of the clients it touched
        and the clients it drops."""
        assert work.next_offset is not None
        states = {
            c: pack_client_state(self.engine.export_client(c), work.recent_requests(c)) for c in work.dirty
        }
        chunks, past = work.held_checkpoint(pack_events)
        states.update(chunks)
        dropped = (work.evicted | past) - chunks.keys()
        return PartitionCheckpoint(
            work.topic,
            work.partition,
            work.stored_offset,
            work.next_offset,
            states,
            dropped,
            self.guard.state(work.key),
            None if work.last_value is None else record_digest(work.last_value),
        )
