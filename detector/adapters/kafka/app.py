"""Build the consumer from the one Settings object and run it until stopped.

Used by ``querywatch consume``, by ``querywatch up`` and by the integration tests, so all
three run the same wiring: migrated database, topics, output producer, processor, group
membership, and the outcome sinks (``adapters.sinks``).
"""

from __future__ import annotations

import logging
import threading

from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.decision_inputs import decision_thresholds
from querywatch.detector.adapters.db.session import (
    SessionFactory,
    check_migrated,
    make_engine,
    make_sessionmaker,
)
from querywatch.detector.adapters.db.shared_profiles import DatabaseProfileStore
from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.adapters.kafka.admin import ensure_summaries_topic, ensure_topics
from querywatch.detector.adapters.kafka.consumer import run, subscribe
from querywatch.detector.adapters.kafka.outputs import OutputProducer
from querywatch.detector.adapters.kafka.processor import StreamProcessor
from querywatch.detector.adapters.sinks import consumer_sinks
from querywatch.detector.config import Settings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import ProfileStore
from querywatch.detector.engine.summaries import SummaryRule

log = logging.getLogger(__name__)


class ConsumerApp:
    """A consumer built from Settings: database (checked migrated), output producer, processor.

    ``run(stop)`` joins the group and works until ``stop`` is set; ``processor`` can be read
    by tests and status pages (which partitions this member owns).
    """

    def __init__(self, settings: Settings, *, campaigns: bool = False) -> None:
        """``campaigns``: also run the campaign stage in this process (``querywatch up``, one
        consumer that sees every client). Otherwise, with ``campaigns.enabled``, the client
        summaries go to the summaries topic, for ``querywatch aggregate``."""
        self.settings = settings
        self._database = make_engine(settings.database)
        try:
            check_migrated(self._database)
            sessions = make_sessionmaker(self._database)
            kafka = settings.kafka
            ensure_topics(kafka)
            summaries_topic = None
            if settings.campaigns.enabled and not campaigns:
                summaries_topic = settings.campaigns.summaries_topic_for(kafka.topic)
                ensure_summaries_topic(kafka, summaries_topic)
            self._outputs = OutputProducer(kafka, summaries_topic=summaries_topic)
        except BaseException:
            self._database.dispose()
            raise
        try:
            self.processor = StreamProcessor(
                engine=default_detector(settings, sessions),
                sessions=sessions,
                outputs=self._outputs,
                sinks=consumer_sinks(self._outputs, decision_thresholds(settings.api)),
                group_id=kafka.group_id,
                checkpoint_every_events=kafka.checkpoint_every_events,
                checkpoint_every_seconds=kafka.checkpoint_every_seconds,
                max_event_bytes=settings.detection.max_event_bytes,
                inputs=settings.inputs,
                stream=settings.stream,
            )
        except BaseException:
            self.close()
            raise
        if settings.campaigns.enabled:
            engine = self.processor.engine
            engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
            engine.key_salt = settings.campaigns.key_salt
            if campaigns:
                campaign = settings.campaigns
                stage = CampaignStage(settings.detection, engine.profiles, campaign, settings.alerts)
                self.processor.campaigns = InProcessCampaigns(stage, decision_thresholds(settings.api))

    def owned_partitions(self) -> list[int]:
        """Partitions of the inference-log topic this member owns right now."""
        while True:
            try:
                return sorted(p for _t, p in list(self.processor.partitions))
            except RuntimeError:  # the IO thread changed the assignment while we copied it
                continue

    def run(self, stop: threading.Event) -> None:
        kafka = self.settings.kafka
        consumer = subscribe(kafka, self.processor)
        log.info("consuming %s as group %s", kafka.topic, kafka.group_id)
        run(
            consumer,
            self.processor,
            stop,
            max_records=kafka.max_poll_records,
            start_from=kafka.start_from,
            outages=self.settings.outages,
            checkpoint_when_idle=kafka.checkpoint_when_idle,
        )

    def close(self) -> None:
        self._outputs.close()
        self._database.dispose()


def consume(
    settings: Settings,
    *,
    stop: threading.Event,
    campaigns: bool = False,
) -> None:
    """Consume the inference-log topic as a member of ``settings.kafka.group_id`` until ``stop``.

    Raises ``DatabaseNotMigrated`` before joining the group if the schema is not current,
    and ``ConfigError`` if no brokers are configured.
    """
    app = ConsumerApp(settings, campaigns=campaigns)
    try:
        app.run(stop)
    finally:
        app.close()


def default_detector(settings: Settings, sessions: SessionFactory) -> Detector:
    """The engine with the configured detection settings and profiles (``profile_store``)."""
    return Detector(
        settings.detection, profile_store(settings, sessions), settings.alerts, settings.residency
    )


def profile_store(settings: Settings, sessions: SessionFactory) -> ProfileStore:
    """Profiles in the database, shared by the whole group: a model's trusted file in
    ``detection.profile_dir`` when it has one (stored there first), else its warm-up's."""
    folder = settings.detection.profile_dir
    return DatabaseProfileStore(sessions, trusted=DirectoryProfileStore(folder) if folder else None)
