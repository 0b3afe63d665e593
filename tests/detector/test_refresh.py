"""Profile refreshes on the simulator's tabular and wide victims: a benign population that
drifts is followed (a new version, benign clients quiet), and sybils feeding out-of-profile
queries over many refresh windows cannot move the profile enough to hide a thief afterwards.
The wide victim's reference concentrates (``models.calibration.drift_share``), so its
out-of-profile test tolerates more and its far threshold lies wider: the refresh's gates
there are not the tabular victim's."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pytest

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.profiles import MemoryProfileStore, build_profile
from querywatch.detector.engine.refresh import RefreshSample
from querywatch.detector.simulate.attackers import active_kcenter, jacobian_augmentation, random_synthetic
from querywatch.detector.simulate.benign import ordinary
from querywatch.detector.simulate.trace import _events
from querywatch.detector.simulate.traffic import Traffic
from querywatch.detector.simulate.victim import TABULAR_MODEL_ID, VICTIMS, WIDE_MODEL_ID, VictimModel
from querywatch.models.profile import ReferenceProfile
from tests.detector.test_engine import _benign
from tests.detector.test_engine import _events as client_events

DAY = 86400.0
SETTINGS = DetectionSettings(warmup_events=3000, refresh_every=3000, refresh_sample=3000)
#: Share of a drifting population that may alert with refreshes (see the test).
ALERTED_UNDER_DRIFT = {TABULAR_MODEL_ID: 0.0, WIDE_MODEL_ID: 0.04}


@pytest.fixture(scope="module", params=["tabular", "wide"])
def victim(request: pytest.FixtureRequest) -> VictimModel:
    return VICTIMS[request.param]()


def _population(victim: VictimModel, day: int, users: int, drift: float = 0.0) -> dict[str, Traffic]:
    """One day's ordinary users; their inputs moved ``drift`` of the way towards a fixed point
    (the population moving, e.g. a new customer base)."""
    target = np.random.default_rng(7).uniform(0.0, 1.0, victim.dim)
    out = {}
    for i in range(users):
        t = ordinary(np.random.default_rng(1000 * day + i), victim, DAY, 1.0)
        moved = np.clip(t.inputs + drift * (target - t.inputs), 0.0, 1.0)
        out[f"day{day}-user{i}"] = Traffic(t.times + day * DAY, moved)
    return out


def _run(
    victim: VictimModel,
    clients: dict[str, Traffic],
    settings: DetectionSettings,
    *,
    labels_only: bool = False,
) -> tuple[dict[str, int], list[ReferenceProfile], Detector]:
    """(first alert query by client, refreshed profiles in order, the engine); ``labels_only``:
    the model served without scores."""
    rows = [(name, traffic, {"ip": "192.0.2.1", "user_agent": "t"}) for name, traffic in clients.items()]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events = [parse_event(e) for e in _events(np.random.default_rng(0), rows, victim, start, victim.model_id)]
    if labels_only:
        for event in events:
            event.scores = None
    engine = Detector(settings, MemoryProfileStore())
    first: dict[str, int] = {}
    refreshed: list[ReferenceProfile] = []
    for i in range(0, len(events), 1000):
        result = engine.process_batch(events[i : i + 1000])
        refreshed += result.refreshed
        for o in result.outcomes:
            if o.alert is not None:
                first.setdefault(o.update.client_id, o.update.queries)
    return first, refreshed, engine


def test_a_drifting_population_is_followed_and_stays_quiet(victim: VictimModel) -> None:
    """On the wide victim the moving users get less sure answers without lying farther out
    (1.6 times the boundary answers at a fifth of the way): refreshes on drift in the answers
    follow them, each within its bound, so the boundary chance lags a step behind and a few
    of the least sure users alert (39 of 280 without those refreshes)."""
    clients = {name: t for day in range(7) for name, t in _population(victim, day, 40, 0.1 * day).items()}
    stale, _, _ = _run(victim, clients, SETTINGS.model_copy(update={"refresh_every": 0}))
    # Without refreshes the drift alerts, on its last day. Pulled that close together, a
    # user's consecutive queries lie closer than two records of the reference do and count as
    # one record's (``features.client``: where they lie, and their answers on the boundary),
    # so a few alert: 3 of the last day's 40 on the tabular victim (none the day before), 9
    # on the wide one, whose out-of-profile test tolerates more drift
    # (``models.calibration.drift_share``) but whose answers grow less sure.
    assert any(name.startswith("day6") for name in stale)

    alerted, refreshed, engine = _run(victim, clients, SETTINGS)
    assert len(alerted) < len(stale)
    assert len(alerted) <= ALERTED_UNDER_DRIFT[victim.model_id] * len(clients)
    assert [p.revision for p in refreshed] == list(range(1, len(refreshed) + 1)) and len(refreshed) >= 2
    newest = engine.profiles.get(victim.model_id)
    assert newest is refreshed[-1] and engine.profile_in_use(victim.model_id) is newest
    assert newest.version == refreshed[0].version and newest.refreshed_at is not None
    assert "drift" in (newest.refresh_reason or "")


def test_answers_served_with_labels_only_drift_too() -> None:
    """The wide victim served with labels only: the same drifting population's answers fall
    where the neighbours' labels are mixed, and a refresh on drift in the answers reads their
    neighbour margins (``models.labelmargin``) as the engine does. Without them the sample
    had no answers to test, and the confidence test's tables could only stay where the
    warm-up set them."""
    victim = VICTIMS["wide"]()
    clients = {name: t for day in range(7) for name, t in _population(victim, day, 40, 0.1 * day).items()}
    alerted, refreshed, _ = _run(victim, clients, SETTINGS, labels_only=True)
    assert not alerted
    assert any((p.refresh_reason or "").startswith("drift in the answers") for p in refreshed)


def test_sybils_feeding_out_of_profile_queries_cannot_hide_a_thief(victim: VictimModel) -> None:
    """Every day, as many sybils as honest users send natural rows moved a growing way
    towards uniform noise; afterwards a uniform-random, a Jacobian-augmentation and a
    natural-data (k-center) thief are alerted as soon as on a profile nobody poisoned (the
    last only where it is alerted at all: not on the wide victim, where too few of its
    natural queries lie apart from its others for the isolation test)."""
    days = 8
    honest = {name: t for day in range(days + 1) for name, t in _population(victim, day, 30).items()}
    sybils = {}
    for day in range(1, days + 1):
        for j in range(30):
            rng = np.random.default_rng(50_000 + 100 * day + j)
            rows = victim.natural[rng.integers(0, len(victim.natural), 40)]
            noise = rng.uniform(0.0, 1.0, rows.shape)
            sybils[f"day{day}-sybil{j}"] = Traffic(
                day * DAY + rng.uniform(0.0, DAY, 40), rows + min(1.0, 0.1 * day) * (noise - rows)
            )
    end = (days + 1) * DAY
    after = _population(victim, days + 1, 30)
    thieves = (
        ("random", random_synthetic, 1),
        ("kcenter", active_kcenter, 2),
        ("jbda", jacobian_augmentation, 3),
    )
    for name, attack, seed in thieves:
        t = attack(np.random.default_rng(seed), victim, 0.2 * DAY, 1.0)
        after[f"thief-{name}"] = Traffic(t.times - t.times.min() + end, t.inputs)

    clean, _, _ = _run(victim, honest | after, SETTINGS)
    poisoned, refreshed, _ = _run(victim, honest | sybils | after, SETTINGS)
    assert refreshed  # the sybils did get refreshes ...
    for before, profile in zip([None, *refreshed], refreshed, strict=False):
        if before is not None:  # ... each within the bound
            assert profile.ood_threshold <= before.ood_threshold + before.typical_score
    alerted = [name for name in clean if name.startswith("thief")]
    assert {"thief-random", "thief-jbda"} <= set(alerted)
    for thief in alerted:
        assert thief in poisoned and poisoned[thief] <= clean[thief]
    assert not [name for name in poisoned if "user" in name]


@pytest.mark.parametrize("trusted", [False, True])
def test_a_trusted_reference_is_refreshed_only_when_a_setting_says_so(trusted: bool) -> None:
    settings = DetectionSettings(
        codebook_size=8, pca_components=4, refresh_every=1200, refresh_sample=1200, refresh_trusted=trusted
    )
    rng = np.random.default_rng(0)
    profile = build_profile(_benign(rng, 3000), model_id="m", settings=settings)
    engine = Detector(settings, MemoryProfileStore([profile]))
    refreshed = []
    for day, shift in enumerate((0.0, 0.0, 0.02)):
        window = [
            e for c in range(60) for e in client_events(f"c{c}", _benign(rng, 20) + shift, t0=day * DAY)
        ]
        refreshed += engine.process_batch(sorted(window, key=lambda e: (e.ts, e.client_id))).refreshed
    assert profile.origin == "reference" and len(refreshed) == int(trusted)
    assert engine.profile_in_use("m").revision == int(trusted)


def test_the_refresh_sample_counts_only_clients_it_holds() -> None:
    """Thousands of one-off clients pass through a small sample: its per-client counts keep
    an entry only for clients with an event in it, so they stay as small as the sample."""
    sample = RefreshSample(size=20, per_client=2, seed=0)
    events = [
        parse_event(
            {
                "request_id": f"r{i}",
                "ts": 1_000.0 + i,
                "client_id": f"c{i % 3000}",
                "model_id": "m",
                "input": [0.0, 1.0],
            }
        )
        for i in range(6000)
    ]
    sample.offer(events, quiet=lambda _client: True)
    held = Counter(e.client_id for e in sample.events)
    assert len(sample.events) == 20
    assert dict(sample._owners) == dict(held)  # no entries at zero (Counter == ignores them)
