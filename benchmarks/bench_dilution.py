"""How much later a thief diluted 1:4 with natural queries is alerted, per simulator attack
family and victim (digits, tabular, wide, binary).

    python benchmarks/bench_dilution.py [--seeds 1 2] [--victims digits tabular wide binary]

For each family and seed: the first alert (queries) of the attack alone and of the same
attack with four natural queries after each stolen one, both against the victim's trusted
reference profile, and their ratio (the target is at most 5).

The last two columns say whether the rate tests could do better: of the tests on a yes/no
indicator, the one whose indicator the diluted thief keeps up most clearly above the
test's null (its share over the whole diluted run), and the queries an ideal sequential
test on that share alone would need to alert if the thief kept the share up evenly
(``threshold / KL(share || null)``, the expected run length of a likelihood-ratio test
that knows the share; a thief whose early queries are its most telling can be caught
sooner). "-": no such share lies above its null (the boundary and confidence tests, which
judge answers, are not in these columns). Where the ideal count is over five times the
undiluted alert, re-tuning those tests at the nulls that the model's reference and benign
behaviours set cannot meet the target; it takes a lower null or another signal.
"""

from __future__ import annotations

import argparse
import math
from datetime import UTC, datetime

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.campaigns.lineage import evidence
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.events import parse_event
from querywatch.detector.engine.outcomes import Alert, RiskUpdate
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.simulate.attackers import ATTACK_KINDS
from querywatch.detector.simulate.demo import reference_profile
from querywatch.detector.simulate.hard import diluted
from querywatch.detector.simulate.trace import _events
from querywatch.detector.simulate.traffic import Traffic
from querywatch.detector.simulate.victim import VICTIMS, VictimModel
from querywatch.models.evidence import evidence_threshold
from querywatch.models.profile import ReferenceProfile
from querywatch.models.registry import EVIDENCE_TESTS

DAY = 86400.0
#: The yes/no indicators of the rate tests, as shares of a client's queries (``RiskUpdate.features``).
RATE_SHARES = {
    "out_of_profile": "ood_share",
    "far": "far_share",
    "steps": "step_share",
    "isolation": "isolated_share",
}


def replayed(
    settings: DetectionSettings, profile: ReferenceProfile, victim: VictimModel, clients: dict[str, Traffic]
) -> dict[str, tuple[Alert | None, RiskUpdate | None]]:
    """Each client's first alert (None: never alerted) and its last update that carried
    features, against the trusted ``profile``."""
    detector = Detector(settings, MemoryProfileStore([profile]))
    rows = [(name, traffic, {"ip": "192.0.2.1", "user_agent": "b"}) for name, traffic in clients.items()]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events = [parse_event(e) for e in _events(np.random.default_rng(0), rows, victim, start, victim.model_id)]
    first: dict[str, Alert | None] = dict.fromkeys(clients)
    last: dict[str, RiskUpdate | None] = dict.fromkeys(clients)
    for o in detector.process_batch(events).outcomes:
        if o.alert is not None and first[o.update.client_id] is None:
            first[o.update.client_id] = o.alert
        if o.update.features:
            last[o.update.client_id] = o.update
    return {name: (first[name], last[name]) for name in clients}


def first_alerts(
    settings: DetectionSettings, profile: ReferenceProfile, victim: VictimModel, clients: dict[str, Traffic]
) -> dict[str, Alert | None]:
    """The first alert of each client (None: never alerted), against the trusted ``profile``."""
    return {name: alert for name, (alert, _) in replayed(settings, profile, victim, clients).items()}


def ideal_queries(update: RiskUpdate, nulls: dict[str, float], threshold: float) -> tuple[str, float]:
    """The rate test whose indicator share in ``update.features`` lies most clearly above its
    null, and the queries an ideal test on that share would need to reach ``threshold`` if the
    client kept the share up evenly; ("-", inf) when no share lies above its null. The
    evidence of its ``queries`` is the binomial tail's (``lineage.evidence``: ``n KL(share ||
    null)``), so each query carries a ``queries``-th of it.

    >>> shares = {"ood_share": 0.1, "far_share": 0.2, "step_share": 0.0, "isolated_share": 0.0}
    >>> nulls = {"out_of_profile": 0.2, "far": 0.05, "steps": 0.05, "isolation": 0.05}
    >>> test, queries = ideal_queries(RiskUpdate("c", "m", 0.0, 1000, 0.0, (), shares), nulls, 11.0)
    >>> test, round(queries)
    ('far', 79)
    """
    n = update.queries
    gains = {
        t: evidence(round(update.features[share] * n), n, nulls[t]) / n for t, share in RATE_SHARES.items()
    }
    best = max(gains, key=gains.__getitem__)
    return (best, threshold / gains[best]) if gains[best] > 0.0 else ("-", math.inf)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--victims", nargs="+", choices=sorted(VICTIMS), default=list(VICTIMS))
    args = ap.parse_args()
    settings = DetectionSettings()
    threshold = evidence_threshold(settings.false_alarm_rate)
    head = f"{'queries':>7} {'plain':>6} {'diluted':>8} {'ratio':>6} {'best rate test':>14} {'ideal':>7}"
    print(f"{'victim':8} {'family':20} {'seed':>4} {head}")
    for kind in args.victims:
        victim = VICTIMS[kind]()
        profile = reference_profile(settings, victim=victim)
        nulls = EVIDENCE_TESTS.nulls(profile.calibration, settings.tolerances)
        for family, attack_kind in ATTACK_KINDS.items():
            for seed in args.seeds:
                attack = attack_kind(np.random.default_rng(seed), victim, DAY, 1.0)
                thinned = diluted(np.random.default_rng(seed + 100), victim, attack)
                seen = replayed(settings, profile, victim, {"plain": attack, "diluted": thinned})
                plain, late = (None if a is None else a.queries for a, _ in (seen["plain"], seen["diluted"]))
                ratio = f"{late / plain:.1f}" if plain and late else "-"
                update = seen["diluted"][1]
                best, ideal = ideal_queries(update, nulls, threshold) if update else ("-", math.inf)
                shown = f"{ideal:.0f}" if math.isfinite(ideal) else "-"
                counts = (
                    f"{len(attack):>7} {plain or '-':>6} {late or '-':>8} {ratio:>6} {best:>14} {shown:>7}"
                )
                print(f"{kind:8} {family:20} {seed:>4} {counts}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
