"""The reference stage: a model warming up holds its own events only."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.engine.reference import pack_events, unpack_events
from tests.detector.test_engine import DIM, SETTINGS, _benign, _events, _profiled_engine


def test_a_warming_up_model_holds_its_events_and_nothing_else() -> None:
    rng = np.random.default_rng(8)
    engine = _profiled_engine()
    known = _events("a", _benign(rng, 50))
    new = _events("b", rng.normal(size=(30, 3)), model="new")
    result = engine.process_batch([*new[:10], *known, *new[10:]])
    assert [o.update.client_id for o in result.outcomes] == ["a"] * 50
    assert result.held == new and result.completed == [] and engine.pending_warmup() == 30
    engine.drop_client("b")  # its partition moved: the new owner takes its held events
    assert engine.pending_warmup() == 0


def test_the_warm_up_completes_at_warmup_events_and_then_scores_what_it_held() -> None:
    rng = np.random.default_rng(9)
    engine = _profiled_engine()
    events = [e for c in range(20) for e in _events(f"c{c}", rng.normal(size=(25, 3)), model="new")]
    first = engine.process_batch(events[: SETTINGS.warmup_events - 1])
    assert first.outcomes == [] and len(first.held) == SETTINGS.warmup_events - 1
    second = engine.process_batch(events[SETTINGS.warmup_events - 1 :])
    assert second.completed == ["new"] and engine.pending_warmup() == 0
    assert len(second.outcomes) == len(events)
    assert engine.profiles.get("new") is not None


def test_a_warm_up_of_too_few_clients_refuses_its_events_saying_why() -> None:
    """Two clients fill the sample, but at most ``warmup_per_client`` of each enter a profile:
    the sample holds on for more clients (a quarter of the 80 it is sized for), up to four
    times ``warmup_events``; then every held event is refused, with the count of clients and
    the cap, and the model's next events start a new sample."""
    rng = np.random.default_rng(10)
    engine = _profiled_engine(SETTINGS.model_copy(update={"warmup_per_client": 5}))  # 10 rows < 16
    events = [e for c in range(2) for e in _events(f"c{c}", rng.normal(size=(800, 3)), model="new")]
    held = engine.process_batch(events[:1500])
    result = engine.process_batch(events[1500:])
    assert held.held == events[:1500] and held.completed == [] and SETTINGS.warmup_events < 1500
    assert result.outcomes == [] and result.completed == ["new"]
    assert [e for e, _ in result.rejected] == events
    reason, detail = result.rejected[0][1].reason, result.rejected[0][1].detail
    assert reason == "no_profile" and detail.endswith(
        "(1600 warm-up events from 2 clients, at most warmup_per_client=5 of each kept: "
        "a model this few clients call needs a trusted profile)"
    )
    assert engine.pending_warmup() == 0 and engine.process_batch(events[:1]).held == events[:1]


def test_a_warm_up_filled_by_a_few_heavy_clients_waits_for_more() -> None:
    """Two clients send ``warmup_events`` and more before anyone else: a profile of their
    rows alone would be theirs (thieves starting with a model made its whole reference so).
    The sample holds on until a third client (a quarter of the ten it is sized for) has sent
    events, and the profile is built from all three."""
    rng = np.random.default_rng(12)
    engine = _profiled_engine()
    heavy = [e for c in range(2) for e in _events(f"h{c}", _benign(rng, 300), t0=c, model="new")]
    late = _events("late", _benign(rng, 20), t0=9, model="new")
    assert SETTINGS.warmup_events / SETTINGS.warmup_per_client == 10 and len(heavy) > SETTINGS.warmup_events
    first = engine.process_batch(heavy)
    assert first.completed == [] and first.held == heavy
    second = engine.process_batch(late)
    assert second.completed == ["new"] and engine.pending_warmup() == 0
    assert len(second.outcomes) == len(heavy) + len(late)
    profile = engine.profiles.get("new")
    assert profile is not None and profile.reference_size == 2 * SETTINGS.warmup_per_client + len(late)


def test_a_warm_up_another_consumer_finished_first_is_adopted_with_what_was_held() -> None:
    """Two consumers of a group each hold the model's events of their own partitions; the
    first to fill its sample stores the profile. The other scores its next events with it,
    and the events it held before them first, in order: its sample would never fill now."""
    rng = np.random.default_rng(11)
    store = MemoryProfileStore()
    first, other = Detector(SETTINGS, store), Detector(SETTINGS, store)
    mine = [e for c in range(10) for e in _events(f"b{c}", _benign(rng, 12), t0=c, model="new")]
    theirs = [e for c in range(20) for e in _events(f"a{c}", _benign(rng, 25), t0=c, model="new")]
    assert len(other.process_batch(mine[:60]).held) == 60
    assert first.process_batch(theirs).completed == ["new"]

    result = other.process_batch(mine[60:])
    assert result.completed == ["new"] and other.pending_warmup() == 0
    assert [o.update.client_id for o in result.outcomes] == [e.client_id for e in mine]
    assert other.profile_in_use("new") is first.profile_in_use("new")
    assert {c: s.queries for c, s in other._clients.items()} == {f"b{c}": 12 for c in range(10)}


def test_a_warm_up_another_consumer_finished_first_is_adopted_even_if_its_clients_fell_silent() -> None:
    """No further event of the model comes to the consumer that held some: asked now and
    then, it scores what it held with the profile the other stored, and holds nothing more."""
    rng = np.random.default_rng(12)
    store = MemoryProfileStore()
    first, other = Detector(SETTINGS, store), Detector(SETTINGS, store)
    mine = [e for c in range(5) for e in _events(f"b{c}", _benign(rng, 12), t0=c, model="new")]
    for event in mine[::4]:  # a missing value, counted when the held event is scored
        event.input[1] = np.nan
    assert len(other.process_batch(mine).held) == 60
    assert other.adopt_stored().outcomes == [] and other.pending_warmup() == 60  # nothing stored yet
    theirs = [e for c in range(20) for e in _events(f"a{c}", _benign(rng, 25), t0=c, model="new")]
    assert first.process_batch(theirs).completed == ["new"]

    result = other.adopt_stored()
    assert result.completed == ["new"] and other.pending_warmup() == 0
    assert [o.update.client_id for o in result.outcomes] == [e.client_id for e in mine]
    assert result.gapped == 15
    assert other.adopt_stored().outcomes == []


def test_a_client_with_an_event_held_is_not_evicted_as_idle() -> None:
    """A model of little traffic may take longer to warm up than ``idle_evict_seconds``:
    a client whose only recent event is held keeps its state for when that event is scored."""
    rng = np.random.default_rng(13)
    engine = _profiled_engine()
    engine.process_batch([*_events("a", _benign(rng, 5)), *_events("b", _benign(rng, 5))])
    assert len(engine.process_batch(_events("b", _benign(rng, 2), t0=10.0, model="new")).held) == 2
    assert engine.evict_idle(10.0 + SETTINGS.idle_evict_seconds) == ["a"]
    assert engine.client_ids() == ["b"]


def test_held_events_round_trip_as_plain_data() -> None:
    rng = np.random.default_rng(10)
    events = _events("c", rng.normal(size=(5, DIM)))
    events[1].scores = None
    events[2].label = "cat"
    events[3].ip, events[3].user_agent, events[3].org = "10.1.2.3", "curl/8", "acme"
    back = unpack_events(pack_events(events))
    for a, b in zip(events, back, strict=True):
        assert (a.request_id, a.ts, a.client_id, a.model_id, a.label) == (
            b.request_id,
            b.ts,
            b.client_id,
            b.model_id,
            b.label,
        )
        assert (a.ip, a.user_agent, a.org) == (b.ip, b.user_agent, b.org)
        assert a.input.tolist() == b.input.tolist()
        assert (a.scores is None and b.scores is None) or a.scores.tolist() == b.scores.tolist()


def test_held_events_of_an_earlier_release_load_without_sources() -> None:
    """Checkpoints written before held events kept their sources (seven fields a row)."""
    old = msgpack.packb([("r", 1.0, "c", "m", np.zeros(2).tobytes(), 1, None)], use_bin_type=True)
    (event,) = unpack_events(old)
    assert (event.request_id, event.ip, event.user_agent, event.org) == ("r", None, None, None)


def test_held_events_with_malformed_sources_are_refused() -> None:
    bad = msgpack.packb([("r", 1.0, "c", "m", np.zeros(2).tobytes(), 1, None, 5)], use_bin_type=True)
    with pytest.raises(ValueError, match="not a list of held events"):
        unpack_events(bad)
