"""A standby aggregator keeps the stored state decoded: while nothing is assigned to it, it
re-reads only the models whose stored state changed, and when it is assigned the partition
it decodes only what changed since its last refresh, holding then exactly what a cold load
holds. The partition is loaded by the loop (``load_unloaded``), not in the rebalance
callback (``assign``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from querywatch.detector.adapters.db.campaign_store import InProcessCampaigns
from querywatch.detector.adapters.db.session import SessionFactory, make_engine, make_sessionmaker
from querywatch.detector.adapters.kafka import aggregator as aggregator_module
from querywatch.detector.adapters.kafka.aggregator import Aggregator
from querywatch.detector.adapters.kafka.processor import Record
from querywatch.detector.config import DetectionSettings
from querywatch.detector.config.campaigns import CampaignSettings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.campaigns.stagestate import export_model
from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
from querywatch.detector.engine.summaries import ClientSummary
from querywatch.detector.pipeline.sinks import Sinks
from querywatch.models.profile import ReferenceProfile
from tests.campaigns.test_membership import _summary
from tests.storage.databases import KINDS, migrated_database

KEY = ("s", 0)


def _profile(model_id: str) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    X = rng.random((3000, 8))
    labels = (X[:, 0] > 0.5).astype(int)
    scores = np.stack([1.0 - X[:, 0], X[:, 0]], axis=1)
    settings = DetectionSettings(codebook_size=8, pca_components=4)
    return build_profile(X, model_id=model_id, settings=settings, labels=labels.tolist(), scores=scores)


@pytest.fixture(scope="module")
def store() -> MemoryProfileStore:
    return MemoryProfileStore([_profile("m"), _profile("n")])


@pytest.fixture(params=KINDS)
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionFactory]:
    with migrated_database(str(request.param), tmp_path) as settings:
        database = make_engine(settings.database)
        yield make_sessionmaker(database)
        database.dispose()


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The models whose stored state an aggregator decodes, in order."""
    calls: list[str] = []
    real = aggregator_module.import_model

    def counting(stage: CampaignStage, data: bytes):  # type: ignore[no-untyped-def]
        model = real(stage, data)
        calls.append("?" if model is None else model.profile.model_id)
        return model

    monkeypatch.setattr(aggregator_module, "import_model", counting)
    return calls


def _aggregator(store: MemoryProfileStore, sessions: SessionFactory) -> Aggregator:
    return Aggregator(
        new_stage=lambda: CampaignStage(DetectionSettings(), store, CampaignSettings()),
        sessions=sessions,
        group_id="g",
        campaigns=InProcessCampaigns,
        sinks=Sinks([]),
        checkpoint_every_summaries=100,
        checkpoint_every_seconds=60.0,
        standby_refresh_seconds=0.0,
        clock=lambda: 0.0,
    )


def _summaries(store: MemoryProfileStore, model_id: str, clients: str, ts: float) -> list[ClientSummary]:
    profile = store.get(model_id)
    assert profile is not None
    return [
        replace(_summary(c, profile.version, queries=8 * (1 + int(ts))), model_id=model_id, ts=ts)
        for c in clients
    ]


def _feed(active: Aggregator, summaries: list[ClientSummary]) -> None:
    start = active.partitions[KEY].next_offset or 0
    active.process(Record(*KEY, start + i, None, s.to_bytes()) for i, s in enumerate(summaries))
    assert active.checkpoint() == {KEY: start + len(summaries)}


def _states(aggregator: Aggregator) -> dict[str, bytes]:
    return {m: export_model(model) for m, model in sorted(aggregator.stage.models.items())}


def test_a_standby_holds_the_stored_state_and_takes_over_reading_only_what_changed(
    store: MemoryProfileStore, sessions: SessionFactory, decoded: list[str]
) -> None:
    active = _aggregator(store, sessions)
    active.assign([KEY])
    assert not active.partitions, "assignment only queues: the loop loads"
    active.load_unloaded()
    _feed(active, _summaries(store, "m", "abc", 1.0) + _summaries(store, "n", "xy", 1.0))

    standby = _aggregator(store, sessions)
    decoded.clear()
    standby.load_unloaded()  # nothing assigned: a standby's refresh
    assert sorted(decoded) == ["m", "n"] and _states(standby) == _states(active)
    decoded.clear()
    standby.load_unloaded()
    assert decoded == [], "nothing changed: nothing decoded"

    _feed(active, _summaries(store, "m", "ad", 2.0))  # only m changes
    standby.load_unloaded()
    assert decoded == ["m"] and _states(standby) == _states(active)

    _feed(active, _summaries(store, "n", "z", 3.0))  # checkpointed after the standby's last refresh
    decoded.clear()
    standby.assign([KEY])  # the active one died; the standby is assigned the partition
    standby.load_unloaded()
    assert decoded == ["n"], "taking over decodes only the model changed since the last refresh"
    assert standby.seeks == {KEY: active.partitions[KEY].stored_offset}

    cold = _aggregator(store, sessions)
    cold.assign([KEY])
    cold.load_unloaded()
    assert _states(standby) == _states(cold) == _states(active)
    assert sorted(standby.stage.models["n"].summaries) == ["x", "y", "z"]
