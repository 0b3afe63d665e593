"""The simulator's hard traffic through the engine: what-if sweeps stay quiet, a diluted
thief is still caught, and a warm-up with thieves in it does not absorb them."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.simulate.attackers import random_synthetic
from querywatch.detector.simulate.benign import ordinary
from querywatch.detector.simulate.demo import reference_profile
from querywatch.detector.simulate.hard import diluted, whatif
from querywatch.detector.simulate.trace import _events
from querywatch.detector.simulate.traffic import Traffic
from querywatch.detector.simulate.victim import MODEL_ID, load_victim
from querywatch.models.profile import ReferenceProfile

SETTINGS = DetectionSettings()
DAY = 86400.0


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return reference_profile(SETTINGS)


def _run(detector: Detector, clients: dict[str, Traffic]) -> dict[str, tuple[int | None, float]]:
    """(first alert query, peak risk) of each client."""
    rows = [(name, traffic, {"ip": "192.0.2.1", "user_agent": "t"}) for name, traffic in clients.items()]
    events = [
        parse_event(e)
        for e in _events(
            np.random.default_rng(0), rows, load_victim(), datetime(2026, 1, 5, tzinfo=UTC), MODEL_ID
        )
    ]
    result = detector.process_batch(events)
    result.outcomes.extend(detector.flush_warmup().outcomes)
    seen: dict[str, tuple[int | None, float]] = {name: (None, 0.0) for name in clients}
    for o in result.outcomes:
        first, peak = seen[o.update.client_id]
        if o.alert is not None and first is None:
            first = o.update.queries
        seen[o.update.client_id] = (first, max(peak, o.update.risk))
    return seen


def test_what_if_sweeps_are_not_perturbation_chains(profile: ReferenceProfile) -> None:
    victim = load_victim()
    clients = {f"analyst-{i}": whatif(np.random.default_rng(10 + i), victim, DAY, 1.0) for i in range(3)}
    for first, peak in _run(Detector(SETTINGS, MemoryProfileStore([profile])), clients).values():
        assert first is None and peak < SETTINGS.clear_risk


def test_a_thief_diluted_one_to_four_is_still_alerted(profile: ReferenceProfile) -> None:
    victim = load_victim()
    attack = random_synthetic(np.random.default_rng(1), victim, DAY, 1.0)
    seen = _run(
        Detector(SETTINGS, MemoryProfileStore([profile])),
        {"plain": attack, "diluted": diluted(np.random.default_rng(2), victim, attack)},
    )
    plain, thinned = seen["plain"][0], seen["diluted"][0]
    assert plain is not None and thinned is not None
    # The count test sees every stolen query; a share test at a fixed 20% never would.
    assert thinned <= 15 * plain


def test_thieves_in_the_warm_up_do_not_become_normal() -> None:
    victim = load_victim()
    settings = DetectionSettings(warmup_events=3000)
    clients = {f"user-{i}": ordinary(np.random.default_rng(100 + i), victim, DAY, 1.0) for i in range(25)}
    clients |= {
        f"thief-{i}": random_synthetic(np.random.default_rng(200 + i), victim, 0.05 * DAY, 1.0)
        for i in range(2)
    }
    seen = _run(Detector(settings, MemoryProfileStore()), clients)
    assert all(seen[f"thief-{i}"][0] is not None for i in range(2))
    assert all(first is None for name, (first, _) in seen.items() if name.startswith("user"))
