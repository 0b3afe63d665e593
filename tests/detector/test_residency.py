"""The resident cap: spilled clients come back with the same decisions as if they had stayed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from querywatch.detector.config import ResidencySettings, Settings, StreamSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import Event
from querywatch.detector.engine.outcomes import Outcome
from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
from querywatch.detector.pipeline.replay import replay, write_report
from tests.detector.test_engine import DIM, SETTINGS, _benign, _events, _interleave


def _engine(cap: int | None, idle_evict_seconds: float = SETTINGS.idle_evict_seconds) -> Detector:
    settings = SETTINGS.model_copy(update={"idle_evict_seconds": idle_evict_seconds})
    profile = build_profile(_benign(np.random.default_rng(0), 3000), model_id="m", settings=settings)
    residency = ResidencySettings(max_resident_clients=cap)
    return Detector(settings, MemoryProfileStore([profile]), residency=residency)


def _traffic(seed: int = 1) -> list[Event]:
    """Benign users and thieves, interleaved, some of them pausing for a while."""
    rng = np.random.default_rng(seed)
    users = [_events(f"u{i}", _benign(rng, 60), t0=i * 7.0) for i in range(8)]
    thieves = [_events(f"t{i}", rng.uniform(-1, 2, size=(120, DIM)), t0=30.0 * i) for i in range(3)]
    events = _interleave(*users, *thieves)
    for i, event in enumerate(events):
        event.ts = 5.0 * i + (0.0 if event.client_id != "u3" else 0.5)  # slow enough for alert updates
    return events


def _spilling_run(events: list[Event], cap: int, batch: int = 25) -> tuple[list[Outcome], int]:
    """Outcomes of ``events`` through an engine capped at ``cap``, spilled to a dict after each
    batch and restored before the next; also the most clients resident after a spill."""
    engine = _engine(cap)
    store: dict[str, bytes] = {}
    outcomes: list[Outcome] = []
    most = 0
    for start in range(0, len(events), batch):
        run = events[start : start + batch]
        wanted = engine.absent(e.client_id for e in run) & store.keys()
        assert set(engine.restore({c: store.pop(c) for c in wanted})) == wanted
        outcomes += engine.process_batch(run).outcomes
        store.update(engine.spill(engine.spill_candidates()))
        most = max(most, engine.resident())
    return outcomes, most


def test_spilled_clients_come_back_with_the_same_decisions() -> None:
    events = _traffic()
    resident = _engine(None).process_batch(events).outcomes
    spilled, most = _spilling_run(events, cap=3)
    assert most <= 3
    assert any(o.event is not None for o in resident), "the trace must raise alerts"
    # Risks, reasons, feature snapshots and alert events alike, but the total evidence in a
    # snapshot: a spilled client's statistics of 100 nats and more come back to the nat
    # (``models.evidence``), which moves that total by a fraction of a nat.
    assert _without_evidence(spilled) == _without_evidence(resident)
    totals = [o.update.features.get("evidence", 0.0) for o in resident]
    assert [o.update.features.get("evidence", 0.0) for o in spilled] == pytest.approx(totals, abs=0.5)


def _without_evidence(outcomes: list[Outcome]) -> list[Outcome]:
    """``outcomes`` with no total evidence in their updates' and alerts' feature snapshots."""

    def cut(features: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in features.items() if k != "evidence"}

    out = []
    for o in outcomes:
        event = o.event
        if event is not None:
            event = replace(event, alert=replace(event.alert, features=cut(event.alert.features)))
        out.append(Outcome(replace(o.update, features=cut(o.update.features)), event))
    return out


def test_the_least_recently_active_clients_are_spilled_down_to_nine_tenths_of_the_cap() -> None:
    rng = np.random.default_rng(2)
    engine = _engine(10)
    for i in range(11):  # c0 is the least recent, c10 the most
        engine.process_batch(_events(f"c{i}", _benign(rng, 2), t0=100.0 * i))
    assert engine.over_cap()
    assert engine.spill_candidates() == ["c0", "c1"]  # 11 resident -> 9
    states = engine.spill(["c0", "c1"])
    assert set(states) == {"c0", "c1"} and engine.resident() == 9 and not engine.over_cap()
    assert engine.absent(["c0", "c5"]) == {"c0"}


def test_a_state_idle_long_enough_to_have_been_evicted_is_not_restored() -> None:
    rng = np.random.default_rng(3)
    engine = _engine(1, idle_evict_seconds=100.0)
    engine.process_batch(_events("old", _benign(rng, 3), t0=0.0) + _events("new", _benign(rng, 3), t0=50.0))
    states = engine.spill(engine.spill_candidates())
    assert list(states) == ["old"]
    assert engine.restore(states, idle_before=101.0) == [] and engine.absent(["old"]) == {"old"}
    assert engine.restore(states, idle_before=1.0) == ["old"] and engine.resident() == 2


def test_clients_with_warm_up_events_held_stay_resident() -> None:
    rng = np.random.default_rng(4)
    engine = _engine(1)
    engine.process_batch(_events("a", _benign(rng, 3), t0=0.0) + _events("b", _benign(rng, 3), t0=10.0))
    engine.process_batch(_events("a", _benign(rng, 2), t0=20.0, model="warming"))  # held: no profile
    assert engine.pending_warmup() == 2
    assert engine.spill_candidates() == ["b"]


def _trace(tmp_path: Path, events: list[Event]) -> Path:
    path = tmp_path / "trace.jsonl"
    lines = [
        json.dumps(
            {
                "request_id": e.request_id,
                "ts": e.ts,
                "client_id": e.client_id,
                "model_id": e.model_id,
                "input": e.input.tolist(),
                "prediction": {"label": e.label, "scores": None if e.scores is None else e.scores.tolist()},
            }
        )
        for e in events
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_reports_the_same_with_a_tiny_cap(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    users = [_events(f"u{i}", _benign(rng, 100), t0=i * 3.0) for i in range(20)]
    thieves = [_events(f"t{i}", rng.uniform(-1, 2, size=(250, DIM)), t0=40.0 * i) for i in range(4)]
    events = _interleave(*users, *thieves)
    for i, event in enumerate(events):
        event.ts = 5.0 * i
    events += [events[2100], events[2500]]  # redeliveries: the spilled request ids must still drop them
    # Three clients after a long pause (the third batch of the replay evicts the others), then u1 again.
    start = events[-1].ts + 50_000.0
    late = _interleave(*[_events(f"late{i}", _benign(rng, 800), t0=start + i * 0.3) for i in range(3)])
    events += late + _events("u1", _benign(rng, 5), t0=late[-1].ts + 1.0)
    path = _trace(tmp_path, events)
    reports = []
    for cap in (None, 2):
        engine = _engine(cap, idle_evict_seconds=20_000.0)
        write_report(replay(path, engine, stream=StreamSettings()), tmp_path / f"report-{cap}.json")
        reports.append((tmp_path / f"report-{cap}.json").read_bytes())
    assert engine.resident() <= 2
    assert reports[0] == reports[1]
    report = json.loads(reports[0])
    assert report["duplicates"] == 2 and len(report["clients"]) == 27 and report["alerts"]


def test_the_cap_is_a_setting_and_zero_means_none() -> None:
    assert Settings().residency.max_resident_clients == 200_000
    assert _engine(0).max_resident is None
