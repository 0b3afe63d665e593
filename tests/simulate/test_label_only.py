"""Answers without scores: the confidence test ranks them by their neighbours' labels
(``models.labelmargin``), so uncertainty-sampling thieves are caught there too, on a model
served with labels only, on one whose scores are one-hot (a label by another name), and on a
scored one whose thieves ask for labels only."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.simulate.attackers import active_uncertainty
from querywatch.detector.simulate.benign import heavy, ordinary
from querywatch.detector.simulate.hard import whatif
from querywatch.detector.simulate.trace import _events
from querywatch.detector.simulate.victim import VICTIMS

DAY = 86400.0


@pytest.mark.parametrize("served", ["labels", "one-hot", "labels-to-some"])
def test_uncertainty_thieves_without_scores_are_alerted_and_users_without_them_are_not(served: str) -> None:
    """The simulator's two-class victim through its warm-up. Labels only for every client,
    one-hot scores for every client, or scores for every client but the thieves, a third of
    the users and an analyst: the thieves' answers rank below what the model gives its own
    data among their neighbours. Unranked (answers without scores used to be; one-hot ones
    all tied), no thief was alerted (peak risk 0.08-0.22 on the model served with labels only)."""
    victim = VICTIMS["binary"]()
    clients = {f"user-{i}": ordinary(np.random.default_rng(100 + i), victim, DAY, 1.0) for i in range(60)}
    clients |= {f"heavy-{i}": heavy(np.random.default_rng(200 + i), victim, DAY, 1.0) for i in range(3)}
    clients |= {f"analyst-{i}": whatif(np.random.default_rng(300 + i), victim, DAY, 1.0) for i in range(2)}
    clients |= {
        f"thief-{i}": active_uncertainty(np.random.default_rng(400 + i), victim, DAY, 1.0) for i in range(3)
    }
    unscored = {"thief-0", "thief-1", "thief-2", "analyst-0", *(f"user-{i}" for i in range(0, 60, 3))}
    rows = [(name, traffic, {"ip": "192.0.2.1", "user_agent": "t"}) for name, traffic in clients.items()]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events = [parse_event(e) for e in _events(np.random.default_rng(0), rows, victim, start, victim.model_id)]
    scored = served == "labels-to-some"
    for event in events:
        if served == "one-hot" and event.scores is not None:
            event.scores = (event.scores == event.scores.max()).astype(np.float64)
        elif not scored or event.client_id in unscored:
            event.scores = None
    detector = Detector(DetectionSettings(warmup_events=6000), MemoryProfileStore([]))
    result = detector.process_batch(events)
    result.outcomes.extend(detector.flush_warmup().outcomes)
    profile = detector.profile_in_use(victim.model_id)
    assert profile is not None and profile.label_neighbours is not None
    assert (profile.margin_threshold > 0.0) == scored == bool(profile.label_neighbours.rank_margins)
    first: dict[str, str] = {}
    for outcome in result.outcomes:
        if outcome.alert is not None:
            first.setdefault(outcome.update.client_id, outcome.alert.reasons[0])
    assert sorted(first) == ["thief-0", "thief-1", "thief-2"]
    assert all("less confident" in reason for reason in first.values())
    # Served without scores by a scored model, they have no entropy or boundary share to quote.
    assert all(("without scores" in reason) == scored for reason in first.values())
