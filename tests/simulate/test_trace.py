"""The simulated trace: valid events, deterministic, and each kind behaves as its name says."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from querywatch.detector.engine.events import parse_event
from querywatch.detector.simulate import ATTACK_KINDS, BENIGN_KINDS, generate_trace
from querywatch.detector.simulate.benign import benign_mix
from querywatch.detector.simulate.victim import MODEL_ID, VICTIMS


@pytest.fixture(scope="module")
def trace() -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    return generate_trace(11, benign=20, attackers=10, scale=0.3)


def _by_client(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    clients: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        clients[event["client_id"]].append(event)
    return clients


def _clients_of(truth: dict[str, dict[str, str]], family: str) -> list[str]:
    return [client for client, info in truth.items() if info["family"] == family]


def test_every_event_is_a_valid_v1_event(trace) -> None:
    events, _ = trace
    for event in events:
        parsed = parse_event(event)
        assert parsed.input.shape == (64,)
        assert parsed.scores is not None and parsed.label == int(np.argmax(parsed.scores))
        assert event["ts"].endswith("Z") and set(event["meta"]) >= {"ip", "user_agent"}


def test_sorted_by_time_with_unique_request_ids(trace) -> None:
    events, _ = trace
    stamps = [datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) for e in events]
    assert stamps == sorted(stamps)
    assert len({e["request_id"] for e in events}) == len(events)


def test_truth_covers_every_client_and_kind(trace) -> None:
    events, truth = trace
    assert set(truth) == {e["client_id"] for e in events}
    assert sum(info["role"] == "attack" for info in truth.values()) == 10
    assert {info["family"] for info in truth.values()} == set(BENIGN_KINDS) | set(ATTACK_KINDS)


def test_client_ids_do_not_reveal_roles(trace) -> None:
    events, truth = trace
    assert all(re.fullmatch(r"acct-\d{6}", client) for client in truth)
    order = list(dict.fromkeys(e["client_id"] for e in events))
    attack_positions = [i for i, client in enumerate(order) if truth[client]["role"] == "attack"]
    assert attack_positions != list(range(len(order) - 10, len(order)))
    agents = defaultdict(set)
    for event in events:
        agents[event["meta"]["user_agent"]].add(truth[event["client_id"]]["role"])
    assert any(roles == {"benign", "attack"} for roles in agents.values())


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    first = generate_trace(5, benign=3, attackers=2, scale=0.1)
    assert first == generate_trace(5, benign=3, attackers=2, scale=0.1)
    assert first[0] != generate_trace(6, benign=3, attackers=2, scale=0.1)[0]


def test_start_and_hours_bound_the_benign_sessions() -> None:
    start = datetime(2030, 3, 1, tzinfo=UTC)
    events, truth = generate_trace(2, benign=6, attackers=0, start=start, hours=2.0, scale=0.1)
    first = datetime.fromisoformat(events[0]["ts"].replace("Z", "+00:00"))
    assert first >= start
    assert all(info["role"] == "benign" for info in truth.values())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown attack families"):
        generate_trace(0, benign=1, attackers=1, attack_families=["telepathy"])
    with pytest.raises(ValueError):
        generate_trace(0, benign=-1, attackers=0)
    with pytest.raises(ValueError, match="unknown victim 'images'"):
        generate_trace(0, benign=1, attackers=0, victim="images")
    with pytest.raises(ValueError, match="unknown hard traffic"):
        generate_trace(0, benign=1, attackers=0, hard={"telepathy": 1})
    with pytest.raises(ValueError, match="dilute must be >= 0"):
        generate_trace(0, benign=1, attackers=1, dilute=-1)


def test_hard_traffic_dilution_and_an_early_start_leave_the_other_clients_as_they_were() -> None:
    """``hard`` adds benign clients, ``dilute`` and ``early`` change the attackers, and nothing
    else moves: a trace with them compares with the plain one of its seed client by client."""
    plain, plain_truth = generate_trace(5, benign=6, attackers=2, scale=0.1, attack_families=["random"])
    events, truth = generate_trace(
        5,
        benign=6,
        attackers=2,
        scale=0.1,
        attack_families=["random"],
        hard={"whatif": 2, "missing": 1},
        dilute=4,
        early=True,
    )
    before, after = _by_client(plain), _by_client(events)
    added = set(truth) - set(plain_truth)
    assert sorted(truth[c]["family"] for c in added) == ["missing", "whatif", "whatif"]
    assert all(truth[c]["role"] == "benign" for c in added)
    for client, info in plain_truth.items():
        if info["role"] == "benign":
            assert [e["input"] for e in after[client]] == [e["input"] for e in before[client]]
            continue
        assert truth[client] == info | {"dilution": "1:4", "early": "yes"}
        stolen = [e["input"] for e in before[client]]
        sent = [e["input"] for e in after[client]]
        assert len(sent) == 5 * len(stolen) and sent[::5] == stolen  # four natural after each
        assert after[client][0]["ts"] == events[0]["ts"]  # in the warm-up: with the first event
    gaps = [e for c in _clients_of(truth, "missing") for e in after[c] if None in e["input"]]
    assert gaps and all(parse_event(e).input.shape == (64,) for e in gaps)


@pytest.mark.parametrize("kind", ["tabular", "wide", "binary"])
def test_a_table_trace_queries_its_victim_with_every_family(kind: str) -> None:
    # Every family runs against each victim: the thieves' substitutes answer a two-class
    # model with one score (JbDA and ActiveThief failed on the first two-class victim).
    events, truth = generate_trace(3, benign=5, attackers=5, scale=0.05, victim=kind)
    victim = VICTIMS[kind]()
    assert {e["client_id"] for e in events} == set(truth)
    assert {info["family"] for info in truth.values()} == set(BENIGN_KINDS) | set(ATTACK_KINDS)
    assert {info["victim"] for info in truth.values()} == {kind}
    for event in events:
        parsed = parse_event(event)
        assert parsed.input.shape == (victim.dim,) and event["model_id"] == victim.model_id
        assert parsed.scores is not None and parsed.scores.shape == (victim.classes,)


def test_digits_stay_the_default(trace) -> None:
    events, truth = trace
    assert {e["model_id"] for e in events} == {MODEL_ID}
    assert {info["victim"] for info in truth.values()} == {"digits"}
    small = generate_trace(5, benign=3, attackers=2, scale=0.1)
    assert small == generate_trace(5, benign=3, attackers=2, scale=0.1, victim="digits")


def test_benign_mix_always_includes_the_hard_kinds() -> None:
    for n in (5, 12, 40, 200):
        kinds = benign_mix(n)
        assert len(kinds) == n and set(kinds) == set(BENIGN_KINDS)
        assert kinds.count("ordinary") > n / 2 or n < 12


def _inputs(events: list[dict[str, Any]]) -> np.ndarray:
    return np.asarray([e["input"] for e in events])


def _margins(events: list[dict[str, Any]]) -> np.ndarray:
    scores = np.sort(np.asarray([e["prediction"]["scores"] for e in events]), axis=1)
    return scores[:, -1] - scores[:, -2]


def test_qa_replay_repeats_a_fixed_set_and_retries_resend_within_seconds(trace) -> None:
    events, truth = trace
    clients = _by_client(events)
    for client in _clients_of(truth, "qa_replay"):
        inputs = _inputs(clients[client])
        assert len(np.unique(inputs, axis=0)) <= len(inputs) / 2
    for client in _clients_of(truth, "retry"):
        seen: dict[tuple[float, ...], float] = {}
        quick_resends = 0
        for event in clients[client]:
            key, when = tuple(event["input"]), datetime.fromisoformat(event["ts"][:-1]).timestamp()
            quick_resends += key in seen and when - seen[key] <= 10.0
            seen[key] = when
        assert quick_resends >= 3


def _nearest_earlier_distance(inputs: np.ndarray) -> np.ndarray:
    """L-infinity distance of each input to the closest earlier, different input."""
    out = np.full(len(inputs), np.inf)
    for i in range(1, len(inputs)):
        gaps = np.abs(inputs[:i] - inputs[i]).max(axis=1)
        gaps = gaps[gaps > 0]
        out[i] = gaps.min() if gaps.size else np.inf
    return out


def test_attack_families_leave_their_signatures(trace) -> None:
    events, truth = trace
    clients = _by_client(events)
    ordinary = np.concatenate([_margins(clients[c]) for c in _clients_of(truth, "ordinary")])
    natural_nearest = np.median(_nearest_earlier_distance(_inputs(events[:400])))
    for client in _clients_of(truth, "jbda"):
        steps = _nearest_earlier_distance(_inputs(clients[client]))
        assert np.median(steps) < 0.15 < natural_nearest
    for client in _clients_of(truth, "boundary") + _clients_of(truth, "active_uncertainty"):
        assert np.median(_margins(clients[client])) < np.median(ordinary) / 2
    for client in _clients_of(truth, "random"):
        left_edge = _inputs(clients[client])[:, [0, 8, 16, 24, 32, 40, 48, 56]]
        assert np.mean(left_edge) > 0.15  # natural digits leave the left edge blank
