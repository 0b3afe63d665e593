"""Stored client state: plain named data, states written by earlier releases and formats still
load, nothing executes."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zstandard

from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.engine import stateformat
from querywatch.detector.engine.clientstate import ClientState
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.features.client import ClientFeatures
from querywatch.models.profile import ReferenceProfile
from querywatch.models.registry import EVIDENCE_TESTS
from tests.detector.test_engine import DIM, SETTINGS, _benign, _events, _profiled_engine

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "state-0.1"


def _fixture_engine(fixture: Path = FIXTURE) -> Detector:
    profile = ReferenceProfile.from_bytes((fixture / "profile.npz").read_bytes())
    return Detector(SETTINGS, MemoryProfileStore([profile]))


def _registered(statistics: dict[str, float]) -> dict[str, float]:
    """The statistics of tests still registered: a removed test's stored state is dropped
    (the coverage test, 2026-12-03)."""
    return {name: v for name, v in statistics.items() if name in EVIDENCE_TESTS.names()}


@pytest.mark.parametrize("client", ["thief", "user"])
def test_a_state_written_by_release_0_1_loads_and_scores_on(client: str) -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())[client]
    engine = _fixture_engine()
    stored = (FIXTURE / f"{client}.state").read_bytes()
    # Only what 0.1 did not have starts fresh: the extraction estimate and the far,
    # confidence and isolation tests.
    context = engine._context("m")
    assert context is not None
    fresh = ClientState(client, context, SETTINGS.seed).load_state(stateformat.loads(stored)["m"])
    assert fresh == ["features.extraction", "evidence.far", "evidence.confidence", "evidence.isolation"]
    engine.import_client(client, stored)
    state = engine._clients[client]["m"]
    assert state.queries == expected["queries"]
    started = {"far": 0.0, "confidence": 0.0, "isolation": 0.0}
    assert state.evidence.statistics() == _registered(expected["statistics"]) | started
    snapshot = state.features.snapshot()
    assert {k: snapshot[k] for k in expected["snapshot"]} == pytest.approx(expected["snapshot"])
    nxt = _events(client, np.load(FIXTURE / f"{client}-next.npy"), t0=1000.0)
    risks = [o.update.risk for o in engine.process_batch(nxt).outcomes]
    if client == "thief":  # 0.1 scored these 20 events at risk 1.0 and 0.0: so does this release
        assert min(risks) >= SETTINGS.alert_risk and max(expected["risks_next"]) == 1.0
    else:
        assert max(risks) < SETTINGS.clear_risk and max(expected["risks_next"]) == 0.0
    # ... and it is stored again in the current format.
    assert engine.export_client(client).startswith(stateformat.MAGIC)


# Release 0.2 wrote plain MessagePack (``QWCS``, commit 96a55e2), before the confidence test;
# commit 4935c72 zstd frames with the first dictionary (``QWCZ``), before reasons gave each
# model's benign level. Both before the isolation test.
WRITTEN_EARLIER = [
    ("state-0.2", stateformat.PLAIN_MAGIC, ["evidence.confidence", "evidence.isolation"]),
    ("state-qwcz", stateformat.FIRST_MAGIC, ["evidence.isolation"]),
]


@pytest.mark.parametrize("client", ["thief", "user"])
@pytest.mark.parametrize(("release", "magic", "fresh"), WRITTEN_EARLIER, ids=[w[0] for w in WRITTEN_EARLIER])
def test_a_state_written_earlier_loads_whole_and_scores_as_it_did(
    release: str, magic: bytes, fresh: list[str], client: str
) -> None:
    """Every part the state had loads (a part added since starts fresh), and the next 20
    events score as the code that wrote it scored them."""
    fixture = FIXTURES / release
    expected = json.loads((fixture / "expected.json").read_text())[client]
    engine = _fixture_engine(fixture)
    stored = (fixture / f"{client}.state").read_bytes()
    assert stored.startswith(magic)
    context = engine._context("m")
    assert context is not None
    loaded = ClientState(client, context, SETTINGS.seed).load_state(stateformat.loads(stored)["m"])
    assert loaded == fresh
    engine.import_client(client, stored)
    state = engine._clients[client]["m"]
    assert state.queries == expected["queries"]
    started = {part.removeprefix("evidence."): 0.0 for part in fresh if part.startswith("evidence.")}
    assert state.evidence.statistics() == _registered(expected["statistics"]) | started
    snapshot = state.features.snapshot()
    assert {k: snapshot[k] for k in expected["snapshot"]} == pytest.approx(expected["snapshot"])
    nxt = _events(client, np.load(fixture / f"{client}-next.npy"), t0=1000.0)
    risks = [o.update.risk for o in engine.process_batch(nxt).outcomes]
    assert risks == pytest.approx(expected["risks_next"])
    assert engine.export_client(client).startswith(stateformat.MAGIC)


def test_states_are_plain_named_data_that_round_trip() -> None:
    rng = np.random.default_rng(4)
    engine = _profiled_engine()
    engine.process_batch(_events("c", rng.uniform(-1, 2, size=(60, DIM))))
    data = engine.export_client("c")
    frame = data[len(stateformat.MAGIC) :]
    unpacker = zstandard.ZstdDecompressor(dict_data=stateformat.DICTIONARY)
    plain = unpacker.decompress(frame, max_output_size=stateformat.MAX_STATE_BYTES)
    body = msgpack.unpackb(plain, raw=False)
    stored = body["models"]["m"]
    assert body["version"] == stateformat.VERSION
    assert set(stored["features"]) == set(ClientFeatures.FAMILIES)
    assert stored["counters"]["queries"] == 60 and stored["evidence"]["out_of_profile"][0] > 0
    restored = _profiled_engine()
    restored.import_client("c", data)
    a, b = engine._clients["c"]["m"], restored._clients["c"]["m"]
    assert a.features.get_state() == b.features.get_state()
    assert a.evidence.get_state() == b.evidence.get_state() and a.queries == b.queries


def test_parts_a_state_lacks_or_cannot_give_start_fresh_and_unknown_parts_are_ignored() -> None:
    rng = np.random.default_rng(5)
    engine = _profiled_engine()
    engine.process_batch(_events("c", rng.uniform(-1, 2, size=(60, DIM))))
    state = stateformat.loads(engine.export_client("c"))["m"]
    del state["features"]["rate"]
    state["features"]["distances"] = [1, 2]  # a shape this release does not read
    state["features"]["invented_family"] = b"\x00"
    state["evidence"]["retired_test"] = [9.0]
    del state["evidence"]["steps"]
    state["counters"]["alerts"] = "many"
    client = _profiled_engine()._state("c", engine._contexts["m"])
    fresh = client.load_state(state)
    assert fresh == ["features.distances", "features.rate", "evidence.steps", "counters.alerts"]
    assert client.queries == 60 and client.alerts == 0
    assert client.evidence.statistics()["out_of_profile"] > 0
    blank = _profiled_engine()._state("c", engine._contexts["m"])
    for family in ("distances", "rate"):
        assert getattr(client.features, family).get_state() == getattr(blank.features, family).get_state()


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/querywatch-pwned",))


def test_a_pickle_that_names_any_global_is_refused_without_running_it(tmp_path: Path) -> None:
    evil = pickle.dumps({"m": {"profile": "x", "features": _Boom()}}, protocol=5)
    with pytest.raises(ValueError, match="only plain data"):
        stateformat.loads(evil)
    assert not Path("/tmp/querywatch-pwned").exists()
    numpy_scalar = pickle.dumps({"m": {"peak": np.float64(1.0)}}, protocol=5)
    with pytest.raises(ValueError, match="only plain data"):
        stateformat.loads(numpy_scalar)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        stateformat.MAGIC + b"\xc1",
        stateformat.MAGIC + stateformat.compress(b"\xc1"),
        stateformat.MAGIC + stateformat.compress(msgpack.packb([1, 2])),
        stateformat.PLAIN_MAGIC + msgpack.packb([1, 2]),
        # A frame that would decompress far beyond any state is refused, not inflated.
        stateformat.MAGIC + stateformat.compress(bytes(stateformat.MAX_STATE_BYTES + 1)),
    ],
)
def test_what_is_not_a_client_state_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="client state"):
        _profiled_engine().import_client("c", data)


def test_a_state_from_a_newer_release_is_refused() -> None:
    data = stateformat.MAGIC + stateformat.compress(msgpack.packb({"version": 99, "models": {}}))
    with pytest.raises(ValueError, match="newer than this release"):
        stateformat.loads(data)


def test_a_state_of_version_2_loads() -> None:
    # Version 2 differs in a wide input's reservoir rows only, which the distances migrate.
    rng = np.random.default_rng(8)
    engine = _profiled_engine()
    engine.process_batch(_events("c", rng.uniform(-1, 2, size=(60, DIM))))
    models = stateformat.loads(engine.export_client("c"))
    old = stateformat.MAGIC + stateformat.compress(msgpack.packb({"version": 2, "models": models}))
    assert stateformat.VERSION == 4 and stateformat.loads(old) == models


def test_a_state_written_uncompressed_by_release_0_2_loads() -> None:
    rng = np.random.default_rng(7)
    engine = _profiled_engine()
    engine.process_batch(_events("c", rng.uniform(-1, 2, size=(60, DIM))))
    data = engine.export_client("c")
    plain = stateformat.PLAIN_MAGIC + msgpack.packb(
        {"version": stateformat.VERSION, "models": stateformat.loads(data)}, use_bin_type=True
    )
    assert stateformat.loads(plain) == stateformat.loads(data)
    assert len(data) < len(plain)


def test_an_open_alert_is_stored_without_what_its_next_event_recomputes() -> None:
    rng = np.random.default_rng(8)
    alerts = AlertSettings(update_every_seconds=0.0, update_risk_step=0.01)
    engine = _profiled_engine(alerts=alerts)
    events = _events("t", np.vstack([_benign(rng, 60), rng.uniform(-1, 2, size=(60, DIM))]))
    for i, event in enumerate(events):
        event.ip, event.ts = f"198.51.100.{i % 3}", i * 5.0
    straight = [o.event for o in _profiled_engine(alerts=alerts).process_batch(events).outcomes]
    split = next(i for i, e in enumerate(straight) if e is not None) + 1  # just after it opened
    opened = straight[split - 1]
    assert opened is not None and opened.alert.features and opened.alert.source_ips
    engine.process_batch(events[:split])
    stored = stateformat.loads(engine.export_client("t"))["m"]["alert"]["alert"]
    assert not {"features", "source_ips", "user_agents", "closed_ts", "kind"} & set(stored)
    assert stored["reasons"] == list(opened.alert.reasons) and stored["alert_id"] == opened.alert.alert_id
    restored = _profiled_engine(alerts=alerts)
    restored.import_client("t", engine.export_client("t"))
    later = [o.event for o in restored.process_batch(events[split:]).outcomes]
    assert later == straight[split:]  # the updates it sends carry features and sources as before
    assert any(e is not None and e.alert.features and e.alert.source_ips for e in later)


def _families() -> list[str]:
    return list(ClientFeatures.FAMILIES)


@pytest.mark.parametrize("family", _families())
def test_every_feature_family_round_trips_through_the_stored_format_and_reading_does_not_learn(
    family: str,
) -> None:
    engine = _profiled_engine()
    rng = np.random.default_rng(6)
    events = _events("c", np.vstack([_benign(rng, 40), rng.uniform(-1, 2, size=(40, DIM))]))
    engine.process_batch(events[:60])
    features = engine._clients["c"]["m"].features
    before = stateformat.dumps({"m": {"features": features.get_state()}})
    features.snapshot()
    assert stateformat.dumps({"m": {"features": features.get_state()}}) == before
    clone = _profiled_engine()._state("c", engine._contexts["m"]).features
    stored = stateformat.loads(before)["m"]["features"]
    assert clone.set_state({family: stored[family]}) == [f for f in _families() if f != family]
    assert _dumped(clone, family) == _dumped(features, family)
    rows = engine._contexts["m"].query_rows(events[60:])
    for row in rows:
        assert clone.update(*row) is not None
        features.update(*row)
    assert _dumped(clone, family) == _dumped(features, family)


def _dumped(features: ClientFeatures, family: str) -> bytes:
    return stateformat.dumps({family: getattr(features, family).get_state()})


def test_parts_that_start_fresh_on_import_are_counted_for_the_log() -> None:
    """A state this release wrote loads whole; a wide input's query distances stored by a
    release of the first layout generation (client state version 3) start fresh, and the
    engine says so (the consumer logs it) while the evidence loads as stored."""
    from querywatch.detector.engine.profiles import build_profile

    rng = np.random.default_rng(3)
    dim = 64
    profile = build_profile(rng.uniform(0.2, 0.8, size=(3000, dim)), model_id="m", settings=SETTINGS)
    engine = Detector(SETTINGS, MemoryProfileStore([profile]))
    engine.process_batch(_events("c", rng.uniform(-1, 2, size=(80, dim))))
    data = engine.export_client("c")
    again = Detector(SETTINGS, MemoryProfileStore([profile]))
    again.import_client("c", data)
    assert again.take_fresh_parts() == {}
    evidence = again._clients["c"].evidence.statistics()  # as stored (to the nat past 100)
    assert any(evidence.values())
    models = stateformat.loads(data)
    models["m"]["features"]["distances"] = models["m"]["features"]["distances"][:-1]  # no generation
    older = stateformat.MAGIC + stateformat.compress(msgpack.packb({"version": 3, "models": models}))
    again.import_client("c", older)
    assert again.take_fresh_parts() == {"features.distances": 1} and again.take_fresh_parts() == {}
    assert again._clients["c"].evidence.statistics() == evidence
    assert len(again._clients["c"].features.distances.reservoir) == 0
