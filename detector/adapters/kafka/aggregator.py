"""``querywatch aggregate``: the campaign stage over the summaries topic, with a standby.

Consumers publish their client summaries to one single-partition topic (``outputs``); one
aggregator reads it in order and feeds the campaign stage (``engine.campaigns``), which sees
every client of every consumer. It is a member of its own consumer group
(``campaigns.aggregator_group_id``) and is driven by the consumers' loop (``consumer.run``):
with one partition only one member is assigned, and the others are standbys. When the
active one dies the group rebalances within its session timeout and a standby is assigned
the partition.

A checkpoint stores, in one database transaction, the campaigns and their alert events (with
their deliveries in the outbox, as ``querywatch up`` stores them), the stage's state of every
model that changed (``stagestate``) and the next offset of the topic
(``aggregator_states``). A member that is assigned the partition loads that state and seeks
to that offset, so after a kill -9 it redoes exactly the summaries since the last
checkpoint: campaigns, their members and alerts come out as they would have without the
crash (alert events are idempotent on their id and sequence). Recovery never relies on the
topic's compaction or history before the stored offset.

A standby keeps that state decoded, re-reading the models whose stored state changed a few
times per session timeout, so that taking over decodes nothing or little; it is loaded by
the consumer loop, not in the rebalance callback (``docs/CAMPAIGNS.md``: how
a hand-over takes its time).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from querywatch.detector.adapters.db.aggregator_states import (
    StoredStates,
    load_aggregator,
    load_states,
    save_aggregator,
)
from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.checkpoints import CheckpointConflict
from querywatch.detector.adapters.db.decision_inputs import decision_thresholds
from querywatch.detector.adapters.db.outcome_store import OutcomeTx
from querywatch.detector.adapters.db.session import (
    SessionFactory,
    check_migrated,
    make_engine,
    make_sessionmaker,
    transaction,
)
from querywatch.detector.adapters.kafka.admin import ensure_summaries_topic
from querywatch.detector.adapters.kafka.app import profile_store
from querywatch.detector.adapters.kafka.consumer import run, subscribe
from querywatch.detector.adapters.kafka.ownership import OwnedPartitions
from querywatch.detector.adapters.kafka.partitions import PartitionWork, TopicPartitionKey
from querywatch.detector.adapters.kafka.processor import Record
from querywatch.detector.adapters.sinks import stored_sinks
from querywatch.detector.config import Settings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.campaigns.stagestate import StageStateError, export_model, import_model
from querywatch.detector.engine.summaries import ClientSummary
from querywatch.detector.metrics import CHECKPOINTS, LAST_CHECKPOINT
from querywatch.detector.pipeline.sinks import Sinks

log = logging.getLogger(__name__)

#: Heartbeats per session timeout in the aggregator's group. A standby learns that the group
#: gave up on the active one at its next heartbeat; with Kafka's usual three per timeout
#: that is up to a third of the timeout later, with ten a tenth. A heartbeat is one small
#: request to the group coordinator.
HEARTBEATS_PER_SESSION = 10

#: Standby refreshes of the stored state per session timeout. The group gives up on a dead
#: active aggregator no sooner than the timeout less one heartbeat interval after its last
#: heartbeat, hence after its last checkpoint; refreshing four times in that window, the
#: standby holds the last checkpoint when it is assigned and reads no state (unless decoding
#: one refresh takes longer than the window: ``Aggregator._refresh_due``).
REFRESHES_PER_SESSION = 4


class Aggregator(OwnedPartitions):
    """The campaign stage as the owner of the summaries topic's partition (see the module
    docstring); a ``PartitionOwner`` for the consumers' loop."""

    def __init__(
        self,
        *,
        new_stage: Callable[[], CampaignStage],
        sessions: SessionFactory,
        group_id: str,
        campaigns: Callable[[CampaignStage], InProcessCampaigns],
        sinks: Sinks[OutcomeTx],
        checkpoint_every_summaries: int,
        checkpoint_every_seconds: float,
        standby_refresh_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._new_stage = new_stage
        self._new_campaigns = campaigns
        self._sessions = sessions
        self.group_id = group_id
        self._sinks = sinks
        self._every_summaries = checkpoint_every_summaries
        self._every_seconds = checkpoint_every_seconds
        self._refresh_seconds = standby_refresh_seconds
        self._clock = clock
        self.stage = new_stage()
        self.campaigns = campaigns(self.stage)
        self._changed: set[str] = set()  # models whose state changed since the last checkpoint
        #: Stored version (``updated_at``) of each model state the stage holds as stored.
        self._versions: dict[str, datetime] = {}
        #: When the last standby refresh ended and how long it took (monotonic seconds).
        self._refreshed: tuple[float, float] | None = None
        self.summaries = 0  # summaries taken (status, benchmarks)

    # -- ownership (``OwnedPartitions``: assign, load_unloaded, revoke, lose) ---------------

    def assign(self, keys: Iterable[TopicPartitionKey]) -> None:
        """Queue the newly assigned partition: the loop loads it (``load_unloaded``) on its own
        thread. The rebalance callback runs on kafka-python's IO thread, whose heartbeats a
        long load would hold up (longer than the session timeout, the group would evict the
        new owner too)."""
        self.unloaded.update(key for key in keys if key not in self.partitions)

    def load_unloaded(self) -> None:
        """Load the assigned partition; while standby (nothing assigned), keep the stored
        state decoded, re-read at most every ``standby_refresh_seconds``, so that taking
        over loads only what changed since."""
        if not self.partitions and not self.unloaded and self._refresh_due():
            started = self._clock()
            with transaction(self._sessions) as session:
                stored = load_states(session=session, group_id=self.group_id, held=self._versions)
            self._hold(stored, standby=True)
            self._refreshed = (self._clock(), self._clock() - started)
        super().load_unloaded()

    def _refresh_due(self) -> bool:
        """Due ``standby_refresh_seconds`` after the last refresh ended, and never sooner than
        three times its length after it: a standby spends at most a quarter of its time
        decoding a large state that the active one keeps rewriting."""
        if self._refreshed is None:
            return True
        ended, took = self._refreshed
        return self._clock() - ended >= max(self._refresh_seconds, 3 * took)

    def _load(self, key: TopicPartitionKey) -> None:
        topic, partition = key
        if partition != 0:  # the topic was made with more (a broker that creates topics on use)
            log.error(
                "%s has a partition %d: the campaign stage reads one partition, in order, and with "
                "more each aggregator sees a share of the accounts; delete the topic and let "
                "`querywatch consume` create it again (one partition)",
                topic,
                partition,
            )
        started = self._clock()
        with transaction(self._sessions) as session:
            stored = load_aggregator(
                session=session, group_id=self.group_id, topic=topic, partition=partition, held=self._versions
            )
        self._hold(stored.stored)
        self.campaigns.committed()  # what was loaded is what the database holds
        self.partitions[key] = PartitionWork(topic, partition, stored.next_offset, self._clock(), 0)
        self.seeks[key] = stored.next_offset
        read = len(stored.stored.states)
        held = len(self.stage.models) - read  # kept current while this member was a standby
        log.info(
            "aggregating %s/%d from %s: %d models (%d read from the database%s), %d campaigns, "
            "loaded in %.3f s",
            topic,
            partition,
            "its start (no checkpoint yet)" if stored.next_offset is None else f"offset {stored.next_offset}",
            len(self.stage.models),
            read,
            f", {held} held up to date as a standby" if held > 0 else "",
            len(self.stage.campaigns()),
            self._clock() - started,
        )

    def _hold(self, stored: StoredStates, *, standby: bool = False) -> None:
        """Make the stage hold the stored states: decode those that changed, drop models no
        longer stored, and remember each one's version. A state that cannot be used is
        dropped with a log line; a standby leaves it unremembered and quiet instead, so that
        it is tried again, and logged, when it takes over."""
        versions = dict(stored.versions)
        for model_id in set(self.stage.models) - set(versions):
            del self.stage.models[model_id]
        for model_id, state in stored.states.items():
            try:
                why = (
                    None
                    if import_model(self.stage, state) is not None
                    else "it is for another profile version"
                )
            except StageStateError as exc:
                why = str(exc)
            if why is None:
                continue
            self.stage.models.pop(model_id, None)
            if standby:
                del versions[model_id]
                log.debug("standby: stored campaign state of %s not held: %s", model_id, why)
            else:
                log.warning("stored campaign state of %s dropped: %s", model_id, why)
        self._versions = versions

    def _forget(self, work: PartitionWork) -> None:
        self.partitions.pop(work.key, None)
        self.seeks.pop(work.key, None)
        self._reset()

    def _reset(self) -> None:
        self.stage = self._new_stage()
        self.campaigns = self._new_campaigns(self.stage)
        self._changed.clear()
        self._versions = {}
        self._refreshed = None

    # -- processing -------------------------------------------------------------------------

    def process(self, records: Iterable[Record]) -> None:
        """Feed the stage the summaries of the owned partition, in offset order."""
        for record in records:
            work = self.partitions.get((record.topic, record.partition))
            if work is None:
                continue
            floor = work.next_offset if work.next_offset is not None else work.stored_offset
            if floor is not None and record.offset < floor:
                work.below_floor = min(record.offset, work.below_floor or record.offset)
                continue
            work.next_offset = record.offset + 1
            work.events_since_checkpoint += 1
            try:
                summary = ClientSummary.from_bytes(record.value or b"")
            except ValueError as exc:
                log.warning("summaries offset %d skipped: %s", record.offset, exc)
                continue
            if self._stale(summary):
                continue
            self.campaigns.take([summary])
            self._changed.add(summary.model_id)
            self.summaries += 1

    def _stale(self, summary: ClientSummary) -> bool:
        """A redelivered summary (a consumer re-sent its partition's summaries after a crash)
        no newer than the one the stage holds for the client: it would only roll it back. A
        client that returns after its state was evicted starts again at few queries, but at
        a later event time, so its summaries are taken."""
        model = self.stage.models.get(summary.model_id)
        if model is None or model.profile.version != summary.profile:  # what it holds is of its profile
            return False
        held = model.summaries.get(summary.client_id)
        if held is None:
            return False
        return (held.ts, held.queries) >= (summary.ts, summary.queries)

    # -- checkpoints ------------------------------------------------------------------------

    def due(self) -> list[PartitionWork]:
        """The partition, when a campaign alert event waits, or enough summaries or time
        passed since the last checkpoint."""
        now = self._clock()
        return [
            w
            for w in self.partitions.values()
            if w.has_progress()
            and (
                self.campaigns.has_events()
                or w.events_since_checkpoint >= self._every_summaries
                or now - w.started_at >= self._every_seconds
            )
        ]

    def checkpoint(self, works: Iterable[PartitionWork] | None = None) -> dict[TopicPartitionKey, int]:
        stored: dict[TopicPartitionKey, int] = {}
        for work in list(self.partitions.values() if works is None else works):
            if self._checkpoint(work) and work.stored_offset is not None:
                stored[work.key] = work.stored_offset
        return stored

    def _checkpoint(self, work: PartitionWork) -> bool:
        """Campaigns, their alert events (and deliveries), changed model states and the offset,
        in one transaction."""
        if not work.has_progress() or work.next_offset is None:
            return False
        try:
            with transaction(self._sessions) as session:
                tx = OutcomeTx(session)
                if self.campaigns.pending():
                    tx.saved.events += self.campaigns.write(session).events
                self._sinks.write([], tx)  # the outbox and the log line of the stored alert events
                changed = sorted(self._changed | self.campaigns.dismissed_models)
                states = {m: export_model(self.stage.models[m]) for m in changed if m in self.stage.models}
                save_aggregator(
                    session=session,
                    group_id=self.group_id,
                    topic=work.topic,
                    partition=work.partition,
                    expected_offset=work.stored_offset,
                    next_offset=work.next_offset,
                    states=states,
                )
        except CheckpointConflict as exc:
            log.warning("aggregator checkpoint refused, another aggregator owns the topic now: %s", exc)
            self._forget(work)
            self.assign([work.key])
            return False
        self._sinks.committed(tx)
        self.campaigns.committed()
        self._changed.clear()
        work.committed(self._clock())
        CHECKPOINTS.inc()
        LAST_CHECKPOINT.set(time.time())
        return True


def aggregate(settings: Settings, *, stop: threading.Event) -> None:
    """Run an aggregator (active or standby) until ``stop``: the summaries topic of
    ``settings.kafka.topic``'s consumers, as a member of ``campaigns.aggregator_group_id``."""
    database = make_engine(settings.database)
    try:
        check_migrated(database)
        sessions = make_sessionmaker(database)
        topic = settings.campaigns.summaries_topic_for(settings.kafka.topic)
        kafka = settings.kafka.model_copy(
            update={"topic": topic, "group_id": settings.campaigns.aggregator_group_id}
        )
        ensure_summaries_topic(kafka, topic)
        profiles = profile_store(settings, sessions)
        thresholds = decision_thresholds(settings.api)
        aggregator = Aggregator(
            new_stage=lambda: CampaignStage(
                settings.detection, profiles, settings.campaigns, settings.alerts
            ),
            sessions=sessions,
            group_id=kafka.group_id,
            campaigns=lambda stage: InProcessCampaigns(stage, thresholds),
            sinks=Sinks(stored_sinks(thresholds)),
            checkpoint_every_summaries=kafka.checkpoint_every_events,
            checkpoint_every_seconds=kafka.checkpoint_every_seconds,
            standby_refresh_seconds=kafka.session_timeout_ms / 1000 / REFRESHES_PER_SESSION,
        )
        consumer = subscribe(kafka, aggregator, heartbeats_per_session=HEARTBEATS_PER_SESSION)
        log.info("aggregating %s as group %s (one member active, the others standby)", topic, kafka.group_id)
        run(consumer, aggregator, stop, max_records=kafka.max_poll_records, outages=settings.outages)
    finally:
        database.dispose()
