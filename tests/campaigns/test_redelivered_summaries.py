"""The aggregator drops a summary redelivered behind the one it holds for the client (a
consumer re-sends its partition's summaries after a crash), but takes a returning client's
(fewer queries after an eviction, a later event time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.adapters.kafka.aggregator import Aggregator
from querywatch.detector.adapters.kafka.processor import Record
from querywatch.detector.config import DetectionSettings
from querywatch.detector.config.campaigns import CampaignSettings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.pipeline.sinks import Sinks
from tests.campaigns.test_membership import _summary
from tests.storage.databases import migrated_database


def test_a_redelivered_summary_is_dropped_and_a_returning_clients_is_taken(profile, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = MemoryProfileStore()
    store.put(profile)
    with migrated_database("sqlite", tmp_path) as settings:
        database = make_engine(settings.database)
        aggregator = Aggregator(
            new_stage=lambda: CampaignStage(DetectionSettings(), store, CampaignSettings()),
            sessions=make_sessionmaker(database),
            group_id="g",
            campaigns=InProcessCampaigns,
            sinks=Sinks([]),
            checkpoint_every_summaries=100,
            checkpoint_every_seconds=60.0,
        )
        aggregator.assign([("s", 0)])
        aggregator.load_unloaded()
        first = replace(_summary("a", profile.version, queries=8), ts=10.0)
        later = replace(first, ts=20.0, queries=16)
        returning = replace(first, ts=90.0, queries=8)
        sent = [first, later, first, later, returning]
        aggregator.process(Record("s", 0, offset, None, s.to_bytes()) for offset, s in enumerate(sent))
        assert aggregator.summaries == 3
        assert aggregator.stage.models["m"].summaries["a"].ts == 90.0
        assert aggregator.checkpoint() == {("s", 0): len(sent)}
        database.dispose()
