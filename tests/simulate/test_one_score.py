"""A two-class model logged with one score an answer (its second class's probability, as most
fraud, churn and default models are served, and as an Open Inference Protocol output of
shape [n, 1] arrives) is watched as if it had logged both."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.simulate.attackers import boundary_probing, random_synthetic
from querywatch.detector.simulate.benign import heavy, ordinary
from querywatch.detector.simulate.trace import _events
from querywatch.detector.simulate.victim import VICTIMS

DAY = 86400.0


def _replayed(lines: list[bytes]) -> tuple[dict[str, tuple[int | None, float]], float]:
    """Each client's first alert (queries) and last risk, and the profile's margin threshold."""
    detector = Detector(DetectionSettings(warmup_events=3000), MemoryProfileStore([]))
    result = detector.process_batch([parse_event(line) for line in lines])
    result.outcomes.extend(detector.flush_warmup().outcomes)
    seen: dict[str, tuple[int | None, float]] = {}
    for outcome in result.outcomes:
        update = outcome.update
        first = seen.get(update.client_id, (None, 0.0))[0]
        if first is None and outcome.alert is not None:
            first = update.queries
        seen[update.client_id] = (first, update.risk)
    profile = detector.profile_in_use(VICTIMS["binary"]().model_id)
    assert profile is not None
    return seen, profile.margin_threshold


def test_one_logged_score_an_answer_finds_what_both_find() -> None:
    victim = VICTIMS["binary"]()
    clients = {f"user-{i}": ordinary(np.random.default_rng(100 + i), victim, DAY, 1.0) for i in range(20)}
    clients |= {f"heavy-{i}": heavy(np.random.default_rng(200 + i), victim, DAY, 1.0) for i in range(1)}
    clients |= {"prober": boundary_probing(np.random.default_rng(7), victim, DAY, 1.0)}
    clients |= {"random": random_synthetic(np.random.default_rng(8), victim, DAY, 1.0)}
    rows = [(name, traffic, {"ip": "192.0.2.1", "user_agent": "t"}) for name, traffic in clients.items()]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events = _events(np.random.default_rng(0), rows, victim, start, victim.model_id)

    def one_score(event: dict[str, Any]) -> dict[str, Any]:
        prediction = {**event["prediction"], "scores": event["prediction"]["scores"][1:]}
        return {**event, "prediction": prediction}

    both, threshold = _replayed([json.dumps(e).encode() for e in events])
    one, one_threshold = _replayed([json.dumps(one_score(e)).encode() for e in events])
    assert threshold > 0.0 and one_threshold == pytest.approx(threshold, abs=1e-12)  # margins read
    assert both["prober"][0] is not None and both["random"][0] is not None
    assert {c: first for c, (first, _) in one.items()} == {c: first for c, (first, _) in both.items()}
    assert max(abs(one[c][1] - both[c][1]) for c in both) < 1e-3
