"""Assemble a trace: clients of every kind, served by the victim, as EVENT_SCHEMA v1 events.

``generate_trace`` is deterministic by seed. Client ids and metadata do not reveal who is
an attacker (ids are shuffled random account numbers, user agents are shared); the ground
truth comes back separately so that tests and the demo can score what was caught.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from querywatch.detector.client.events import missing_as_null
from querywatch.detector.simulate.attackers import ATTACK_KINDS
from querywatch.detector.simulate.benign import BENIGN_KINDS, benign_mix
from querywatch.detector.simulate.groups import campaign, organisation
from querywatch.detector.simulate.hard import HARD_KINDS, diluted
from querywatch.detector.simulate.traffic import Traffic
from querywatch.detector.simulate.victim import VICTIMS, VictimModel

#: Where traces start unless told otherwise (fixed, so that a seed gives the same file).
DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)
_USER_AGENTS = (
    "digits-app/2.3 (Android 14)",
    "digits-app/2.3 (iOS 18.1)",
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "okhttp/4.12.0",
    "curl/8.5.0",
)
_NETWORKS = ("192.0.2.", "198.51.100.", "203.0.113.")

Truth = dict[str, dict[str, str]]


def generate_trace(
    seed: int,
    *,
    benign: int,
    attackers: int,
    start: datetime | None = None,
    hours: float = 24.0,
    scale: float = 1.0,
    model_id: str | None = None,
    attack_families: Sequence[str] | None = None,
    campaign_accounts: int = 0,
    org_accounts: int = 0,
    victim: str = "digits",
    hard: Mapping[str, int] | None = None,
    dilute: int = 0,
    early: bool = False,
) -> tuple[list[dict[str, Any]], Truth]:
    """Simulate ``benign`` + ``attackers`` clients querying a victim over ``hours``.

    ``victim`` names one of ``VICTIMS`` (the digits classifier, or the tabular random forest);
    events carry its model id unless ``model_id`` is given, and every truth entry its name.

    ``scale`` multiplies every client's query volume (0.1 gives a quick trace for tests).
    Attackers cycle through ``attack_families`` (all of ``ATTACK_KINDS`` by default).
    ``campaign_accounts`` adds one theft dealt over that many small accounts (truth family
    ``campaign``, with a ``campaign`` id), ``org_accounts`` an honest organisation of that many
    specialised accounts under one ``meta.org`` (family ``organisation``): see ``groups``.
    ``hard`` adds that many benign clients of each hard kind (``hard.HARD_KINDS``: what-if
    analysts, records with fields missing as 0 or as missing); ``dilute`` sends that many
    natural queries after each of an attacker's stolen ones (``hard.diluted``; truth
    ``dilution``), and ``early`` starts every attacker with the trace, inside a new model's
    warm-up (truth ``early``). Each adds clients or changes attackers on streams of their own:
    the other clients of a seed stay as they were.
    Returns the events sorted by ``ts`` and ``{client_id: {"role", "family", "victim"}}``.

    >>> events, truth = generate_trace(1, benign=2, attackers=1, scale=0.05)
    >>> sorted(info["role"] for info in truth.values())
    ['attack', 'benign', 'benign']
    >>> events[0]["ts"] <= events[-1]["ts"]
    True
    >>> events, truth = generate_trace(1, benign=1, attackers=0, scale=0.05, victim="tabular")
    >>> (len(events[0]["input"]), events[0]["model_id"], set(t["victim"] for t in truth.values()))
    (16, 'risk-table-v1', {'tabular'})
    """
    if benign < 0 or attackers < 0 or hours <= 0 or scale <= 0:
        raise ValueError("benign and attackers must be >= 0, hours and scale > 0")
    hard = dict(hard or {})
    odd = sorted(set(hard) - set(HARD_KINDS))
    if odd:
        raise ValueError(f"unknown hard traffic {odd}; choose from {sorted(HARD_KINDS)}")
    if any(n < 0 for n in hard.values()) or dilute < 0:
        raise ValueError("hard clients and dilute must be >= 0")
    families = list(attack_families) if attack_families is not None else list(ATTACK_KINDS)
    unknown = sorted(set(families) - set(ATTACK_KINDS))
    if unknown or (attackers and not families):
        raise ValueError(f"unknown attack families {unknown}; choose from {sorted(ATTACK_KINDS)}")
    if victim not in VICTIMS:
        raise ValueError(f"unknown victim {victim!r}; choose from {sorted(VICTIMS)}")
    plan = [("benign", kind) for kind in benign_mix(benign)]
    plan += [("attack", families[i % len(families)]) for i in range(attackers)]

    rng = np.random.default_rng(seed)
    model = VICTIMS[victim]()
    account_numbers = rng.choice(np.arange(100_000, 1_000_000), size=len(plan), replace=False)
    span = hours * 3600.0
    clients: list[tuple[str, Traffic, dict[str, str]]] = []
    truth: Truth = {}
    for index, (role, family) in enumerate(plan):
        client_rng = np.random.default_rng([seed, index])
        kinds = BENIGN_KINDS if role == "benign" else ATTACK_KINDS
        traffic = kinds[family](client_rng, model, span, scale)
        client_id = f"acct-{account_numbers[index]}"
        meta = _meta(client_rng, _NETWORKS[index % len(_NETWORKS)])
        truth[client_id] = {"role": role, "family": family}
        if role == "attack":
            traffic = _changed_attack(np.random.default_rng([seed, index, 1]), model, traffic, dilute, early)
            truth[client_id] |= {"dilution": f"1:{dilute}"} if dilute else {}
            truth[client_id] |= {"early": "yes"} if early else {}
        clients.append((client_id, traffic, meta))
    taken = {int(c.removeprefix("acct-")) for c in truth}
    free = np.setdiff1d(np.arange(100_000, 1_000_000), np.fromiter(taken, dtype=np.int64))
    added = campaign_accounts + org_accounts + sum(hard.values())
    numbers = iter(rng.choice(free, size=added, replace=False).tolist())
    _add_groups(seed, model, span, scale, campaign_accounts, org_accounts, numbers, clients, truth)
    _add_hard(seed, model, span, scale, hard, numbers, clients, truth)
    for info in truth.values():
        info["victim"] = victim
    return _events(rng, clients, model, start or DEFAULT_START, model_id or model.model_id), truth


def _changed_attack(
    rng: np.random.Generator, victim: VictimModel, traffic: Traffic, dilute: int, early: bool
) -> Traffic:
    """An attacker's ``traffic`` diluted 1:``dilute`` and, if ``early``, moved to start with the trace."""
    if dilute:
        traffic = diluted(rng, victim, traffic, dilute)
    if early and len(traffic):
        traffic = Traffic(traffic.times - traffic.times.min(), traffic.inputs)
    return traffic


def _meta(rng: np.random.Generator, network: str) -> dict[str, str]:
    """A client's address in ``network`` and a user agent, drawn from its ``rng``."""
    return {
        "ip": f"{network}{int(rng.integers(1, 255))}",
        "user_agent": _USER_AGENTS[int(rng.integers(len(_USER_AGENTS)))],
    }


def _add_hard(
    seed: int,
    victim: VictimModel,
    span: float,
    scale: float,
    hard: Mapping[str, int],
    numbers: Iterator[int],
    clients: list[tuple[str, Traffic, dict[str, str]]],
    truth: Truth,
) -> None:
    """Append ``hard``'s benign clients, each kind on its own seed stream."""
    for stream, kind in enumerate(sorted(HARD_KINDS)):
        for k in range(hard.get(kind, 0)):
            client_rng = np.random.default_rng([seed, 1_000_003, stream, k])
            client_id = f"acct-{next(numbers)}"
            meta = _meta(client_rng, _NETWORKS[int(client_rng.integers(len(_NETWORKS)))])
            clients.append((client_id, HARD_KINDS[kind](client_rng, victim, span, scale), meta))
            truth[client_id] = {"role": "benign", "family": kind}


def _add_groups(
    seed: int,
    victim: Any,
    span: float,
    scale: float,
    campaign_accounts: int,
    org_accounts: int,
    numbers: Iterator[int],
    clients: list[tuple[str, Traffic, dict[str, str]]],
    truth: Truth,
) -> None:
    """Append the campaign's and the organisation's accounts (own seed streams, so the other
    clients of a seed stay as they were), numbered from ``numbers``."""
    if campaign_accounts:
        group_rng = np.random.default_rng([seed, 1_000_001])
        for traffic in campaign(group_rng, victim, span, scale, campaign_accounts):
            client_id = f"acct-{next(numbers)}"
            meta = _meta(group_rng, _NETWORKS[int(group_rng.integers(len(_NETWORKS)))])
            clients.append((client_id, traffic, meta))
            truth[client_id] = {"role": "attack", "family": "campaign", "campaign": f"sim-campaign-{seed}"}
    if org_accounts:
        group_rng = np.random.default_rng([seed, 1_000_002])
        network = _NETWORKS[int(group_rng.integers(len(_NETWORKS)))]
        for traffic in organisation(group_rng, victim, span, scale, org_accounts):
            client_id = f"acct-{next(numbers)}"
            meta = {
                "ip": f"{network}{int(group_rng.integers(1, 255))}",
                "user_agent": "acme-batch/1.4",
                "org": "acme-corp",
            }
            clients.append((client_id, traffic, meta))
            truth[client_id] = {"role": "benign", "family": "organisation", "org": "acme-corp"}


def _events(
    rng: np.random.Generator,
    clients: list[tuple[str, Traffic, dict[str, str]]],
    victim: Any,
    start: datetime,
    model_id: str,
) -> list[dict[str, Any]]:
    """Serve every client's inputs and interleave all events in time order."""
    rows: list[tuple[float, int, dict[str, Any]]] = []
    for order, (client_id, traffic, meta) in enumerate(clients):
        served = victim.serve(traffic.inputs)
        latencies = np.round(rng.gamma(4.0, 3.0, size=len(traffic)), 1)
        gaps = np.isnan(served.inputs).any(axis=1)
        for i in range(len(traffic)):
            features = served.inputs[i].tolist()
            event = {
                "client_id": client_id,
                "model_id": model_id,
                "input": missing_as_null(features) if gaps[i] else features,
                "prediction": {"label": int(served.labels[i]), "scores": served.scores[i].tolist()},
                "meta": {**meta, "latency_ms": float(latencies[i])},
            }
            rows.append((float(traffic.times[i]), order, event))
    rows.sort(key=lambda row: (row[0], row[1]))
    events = []
    for offset, _, event in rows:
        when = start + timedelta(seconds=offset)
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
        request_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        events.append({"request_id": request_id, "ts": stamp, **event})
    return events
