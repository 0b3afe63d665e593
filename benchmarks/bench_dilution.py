"""How much later a thief diluted 1:4 with natural queries is alerted, per simulator attack
family and victim (digits, tabular, wide, binary).

    python benchmarks/bench_dilution.py [--seeds 1 2] [--victims digits tabular wide binary]

For each family and seed: the first alert (queries) of the attack alone and of the same
attack with four natural queries after each stolen one, both against the victim's trusted
reference profile, and their ratio (the target is at most 5).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.outcomes import Alert
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.simulate.attackers import ATTACK_KINDS
from querywatch.detector.simulate.demo import reference_profile
from querywatch.detector.simulate.hard import diluted
from querywatch.detector.simulate.trace import _events
from querywatch.detector.simulate.traffic import Traffic
from querywatch.detector.simulate.victim import VICTIMS, VictimModel
from querywatch.models.profile import ReferenceProfile

DAY = 86400.0


def first_alerts(
    settings: DetectionSettings, profile: ReferenceProfile, victim: VictimModel, clients: dict[str, Traffic]
) -> dict[str, Alert | None]:
    """The first alert of each client (None: never alerted), against the trusted ``profile``."""
    detector = Detector(settings, MemoryProfileStore([profile]))
    rows = [(name, traffic, {"ip": "192.0.2.1", "user_agent": "b"}) for name, traffic in clients.items()]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events = [parse_event(e) for e in _events(np.random.default_rng(0), rows, victim, start, victim.model_id)]
    first: dict[str, Alert | None] = dict.fromkeys(clients)
    for o in detector.process_batch(events).outcomes:
        if o.alert is not None and first[o.update.client_id] is None:
            first[o.update.client_id] = o.alert
    return first


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--victims", nargs="+", choices=sorted(VICTIMS), default=list(VICTIMS))
    args = ap.parse_args()
    settings = DetectionSettings()
    print(f"{'victim':8} {'family':20} {'seed':>4} {'queries':>7} {'plain':>6} {'diluted':>8} {'ratio':>6}")
    for kind in args.victims:
        victim = VICTIMS[kind]()
        profile = reference_profile(settings, victim=victim)
        for family, attack_kind in ATTACK_KINDS.items():
            for seed in args.seeds:
                attack = attack_kind(np.random.default_rng(seed), victim, DAY, 1.0)
                thinned = diluted(np.random.default_rng(seed + 100), victim, attack)
                seen = first_alerts(settings, profile, victim, {"plain": attack, "diluted": thinned})
                plain, late = (None if a is None else a.queries for a in (seen["plain"], seen["diluted"]))
                ratio = f"{late / plain:.1f}" if plain and late else "-"
                counts = f"{len(attack):>7} {plain or '-':>6} {late or '-':>8} {ratio:>6}"
                print(f"{kind:8} {family:20} {seed:>4} {counts}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
