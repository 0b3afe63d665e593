"""The ``querywatch up --demo`` traffic: a short, paced trace of the shipped victim model.

Sized so that a laptop shows the first alerts within a minute: a couple of hours of
simulated traffic sent at a few hundred events per second, with every benign kind and
every attack family present. Each event carries the time it is sent at, so alerts, "last
seen" and the charts show real, current times.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from querywatch.detector.config import DetectionSettings, Settings
from querywatch.detector.engine.profiles import build_profile
from querywatch.detector.simulate.jsonl import write_truth
from querywatch.detector.simulate.publish import publish_events
from querywatch.detector.simulate.trace import Truth, generate_trace
from querywatch.detector.simulate.traffic import noisy
from querywatch.detector.simulate.victim import VictimModel, load_victim
from querywatch.models.profile import ReferenceProfile

log = logging.getLogger(__name__)


def reference_profile(
    detection: DetectionSettings, *, copies: int = 3, seed: int = 0, victim: VictimModel | None = None
) -> ReferenceProfile:
    """The victim's trusted reference profile (the digits victim unless ``victim`` is given):
    its natural inputs as users send them (light to moderate noise), served, so the demo
    needs no warm-up period.

    What an operator does with ``querywatch profile`` and a sample of known-good traffic.
    """
    victim, rng = victim or load_victim(), np.random.default_rng(seed)
    natural = np.concatenate([victim.natural] * copies)
    served = victim.serve(noisy(rng, natural, rng.uniform(0.01, 0.08, size=len(natural))))
    return build_profile(
        served.inputs,
        model_id=victim.model_id,
        settings=detection,
        labels=served.labels.tolist(),
        scores=served.scores,
    )


@dataclass(frozen=True)
class DemoPlan:
    """What the demo sends: client counts, volume, event-time span and pace."""

    seed: int = 0
    benign: int = 30
    attackers: int = 5
    scale: float = 0.5
    hours: float = 2.0
    rate: float = 400.0
    truth_path: Path | None = None

    def profile(self, detection: DetectionSettings) -> ReferenceProfile:
        return reference_profile(detection, seed=self.seed)

    def trace(self) -> tuple[list[dict[str, object]], Truth]:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=self.hours)
        return generate_trace(
            self.seed,
            benign=self.benign,
            attackers=self.attackers,
            start=start,
            hours=self.hours,
            scale=self.scale,
        )

    def run(self, settings: Settings, stop: threading.Event) -> None:
        """Generate the trace and produce it at ``rate`` until done or ``stop`` is set."""
        events, truth = self.trace()
        if self.truth_path is not None:
            write_truth(truth, self.truth_path)
        roles = Counter(info["role"] for info in truth.values())
        log.info(
            "demo traffic starting",
            extra={"events": len(events), "benign_clients": roles["benign"], "attackers": roles["attack"]},
        )
        sent = publish_events(events, settings.kafka, rate=self.rate, stop=stop, stamp=True)
        log.info("demo traffic sent", extra={"events": sent})
