"""The stage's state survives export and import: a stage loaded from a checkpoint taken
half-way makes the same later decisions (events, members, links, risk) as the stage that
never stopped."""

from __future__ import annotations

import zlib
from dataclasses import replace

import msgpack
import pytest

from querywatch.detector.config import Settings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.campaigns.stagestate import StageStateError, export_model, import_model
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.grouping import NO_KEYS
from querywatch.detector.engine.outcomes import AlertEvent
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.engine.summaries import ClientSummary, SummaryRule
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.simulate import generate_trace, write_jsonl

SETTINGS = Settings(detection={"warmup_events": 3000})


class _Recorder:
    """Keeps the summaries a replay emits (the stage is run by the test)."""

    def __init__(self) -> None:
        self.summaries: list[ClientSummary] = []

    def take(self, summary: ClientSummary) -> list[AlertEvent]:
        self.summaries.append(summary)
        return []

    def campaigns(self) -> list[object]:
        return []


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[MemoryProfileStore, list[ClientSummary]]:
    events, _ = generate_trace(3, benign=40, attackers=0, campaign_accounts=12, org_accounts=10, scale=0.5)
    path = tmp_path_factory.mktemp("stagestate") / "trace.jsonl"
    write_jsonl(events, path)
    store = MemoryProfileStore()
    engine = Detector(SETTINGS.detection, store, SETTINGS.alerts)
    engine.summary_rule = SummaryRule(SETTINGS.campaigns.summary_every_seconds)
    recorder = _Recorder()
    replay(path, engine, campaigns=recorder)  # type: ignore[arg-type]
    return store, recorder.summaries


def _stage(store: MemoryProfileStore) -> CampaignStage:
    return CampaignStage(SETTINGS.detection, store, SETTINGS.campaigns, SETTINGS.alerts)


def _decisions(stage: CampaignStage, summaries: list[ClientSummary]) -> list[tuple[object, ...]]:
    return [
        (
            e.type,
            e.sequence,
            e.alert.alert_id,
            round(e.alert.risk, 9),
            e.alert.reasons,
            e.alert.extraction,
            e.alert.source_ips,  # the members' keys, from the summaries the state carries
            e.alert.user_agents,
        )
        for s in summaries
        for e in stage.take(s)
    ]


def _closing(events: list[AlertEvent]) -> tuple[object, ...]:
    [event] = events
    alert = event.alert
    return (
        event.type,
        event.sequence,
        alert.alert_id,
        alert.reasons,
        alert.source_ips,
        alert.user_agents,
        alert.extraction,
    )


def test_a_stage_loaded_half_way_decides_as_the_one_that_never_stopped(
    emitted: tuple[MemoryProfileStore, list[ClientSummary]],
) -> None:
    store, summaries = emitted
    # Cut where a campaign is already open, so its members, links and open alert travel too.
    running = _stage(store)
    cut = next(i for i in range(len(summaries)) if running.take(summaries[i]) and i > 0) + 1
    for s in summaries[cut : cut + 5]:
        running.take(s)
    cut += 5
    assert running.campaigns(), "the trace's campaign must be open at the cut"
    states = [export_model(model) for model in running.models.values()]
    loaded = _stage(store)
    for data in states:
        assert import_model(loaded, data) is not None
    assert [c.to_dict() for c in loaded.campaigns()] == [c.to_dict() for c in running.campaigns()]

    # Dismissed at once, a campaign's closing carries what the running stage's does (its
    # extraction estimate and sources included, which a stored open alert leaves out).
    first = running.campaigns()[0]
    ended = [_closing(stage.dismiss(first.model_id, first.campaign_id, 0.0)) for stage in (running, loaded)]
    assert ended[0] == ended[1] and ended[0][-1] is not None and ended[0][4]
    later = summaries[cut:]
    expected = _decisions(running, later)
    assert _decisions(loaded, later) == expected
    assert [c.to_dict() for c in loaded.campaigns()] == [c.to_dict() for c in running.campaigns()]
    assert any(c.first_alert_ts is not None for c in loaded.campaigns())


def test_a_state_of_another_profile_version_is_not_loaded_and_garbage_is_refused(
    emitted: tuple[MemoryProfileStore, list[ClientSummary]],
) -> None:
    store, summaries = emitted
    stage = _stage(store)
    for s in summaries[:50]:
        stage.take(s)
    [data] = [export_model(m) for m in stage.models.values()]
    assert import_model(_stage(MemoryProfileStore()), data) is None
    with pytest.raises(StageStateError):
        import_model(_stage(store), b"not a state")


def test_a_state_carries_each_clients_latest_summary_as_it_was_sent_less_its_samples(
    emitted: tuple[MemoryProfileStore, list[ClientSummary]],
) -> None:
    """The stage holds summaries packed (``HeldSummary``); its state carries them in their
    wire form, byte for byte what a stage that held them whole wrote (and reads them back)."""
    store, summaries = emitted
    stage = _stage(store)
    latest: dict[str, ClientSummary] = {}
    for s in summaries:
        stage.take(s)
        latest[s.client_id] = s
    assert any(s.keys != NO_KEYS for s in latest.values()) and any(s.extraction for s in latest.values())
    [data] = [export_model(m) for m in stage.models.values()]
    carried = msgpack.unpackb(zlib.decompress(data), raw=False)["summaries"]
    assert sorted(carried) == sorted(replace(s, codes=b"", classes=()).to_bytes() for s in latest.values())
    loaded = _stage(store)
    assert import_model(loaded, data) is not None
    assert export_model(next(iter(loaded.models.values()))) == data
