"""What ``querywatch replay`` finds in a whole simulated population, per client family, on the
simulator's victims (digits; the tabular random forest; the 128-input network; the two-class
gradient-boosted trees).

    python benchmarks/bench_simulated.py [--seeds 1 2] [--victims digits tabular wide binary]
        [--hard whatif=8,missing=8] [--dilute 4] [--early]

For each victim and seed: ``generate_trace(seed, benign=250, attackers=25, hours=48,
victim=...)`` (with ``--hard``, ``--dilute`` and ``--early`` as ``querywatch simulate`` takes
them: hard benign clients added, every attacker diluted, every attacker in the warm-up)
written to a temporary file and replayed by ``querywatch replay`` itself (its
``main``, no profile: the warm-up path an operator takes on a new model, with the settings of
the environment). Then, per family: how many of its clients alerted, the median and largest
first alert (queries), and the largest risk of those that did not; and per victim and seed a
summary: thieves and benign clients alerted, and the ROC AUC of the clients' risk (attack
against benign). It prints figures only; a miss is a known gap (README, *Benchmarks*), not a
failed test.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from querywatch.detector.cli import main as querywatch
from querywatch.detector.cli.simulate import hard_traffic
from querywatch.detector.simulate import VICTIMS, generate_trace, write_jsonl

_ROW = "  {:<20} {:<7} {:>9} {:>8} {:>6} {:>19}"


def replayed(
    victim: str, seed: int, hard: dict[str, int], dilute: int, early: bool
) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, Any]]]:
    """The trace's truth and ``querywatch replay``'s report clients, by client id."""
    events, truth = generate_trace(
        seed, benign=250, attackers=25, hours=48, victim=victim, hard=hard, dilute=dilute, early=early
    )
    with tempfile.TemporaryDirectory() as folder:
        trace, report = Path(folder) / "trace.jsonl", Path(folder) / "report.json"
        write_jsonl(events, trace)
        with contextlib.redirect_stdout(io.StringIO()):  # its --json summary; the report is read
            code = querywatch(["replay", str(trace), "--report", str(report), "--json"])
        if code != 0:
            raise SystemExit(f"querywatch replay exited {code} on the {victim} trace of seed {seed}")
        clients = json.loads(report.read_text())["clients"]
    return truth, {c["client_id"]: c for c in clients}


def family_rows(truth: dict[str, dict[str, str]], clients: dict[str, dict[str, Any]]) -> list[str]:
    """One line per family: role, alerted / total, median and largest first alert, and the
    largest risk among its clients that did not alert ("-" when every one did)."""
    lines = [_ROW.format("family", "role", "alerted", "median@", "max@", "unalerted max risk")]
    families = sorted({(info["role"], info["family"]) for info in truth.values()})
    for role, family in families:
        members = [clients[c] for c, info in truth.items() if info["family"] == family]
        firsts = [c["first_alert_query"] for c in members if c["first_alert_query"] is not None]
        quiet = [c["risk"] for c in members if c["first_alert_query"] is None]
        median = f"{np.median(firsts):.0f}" if firsts else "-"
        largest = f"{max(firsts)}" if firsts else "-"
        risk = f"{max(quiet):.3f}" if quiet else "-"
        lines.append(_ROW.format(family, role, f"{len(firsts)} / {len(members)}", median, largest, risk))
    return lines


def summary(truth: dict[str, dict[str, str]], clients: dict[str, dict[str, Any]]) -> str:
    """Thieves and benign clients alerted, and the ROC AUC of risk (attack = positive)."""
    ids = sorted(truth)
    attack = np.array([truth[c]["role"] == "attack" for c in ids])
    risk = np.array([clients[c]["risk"] for c in ids])
    alerted = np.array([clients[c]["first_alert_query"] is not None for c in ids])
    return (
        f"thieves alerted {int(alerted[attack].sum())}/{int(attack.sum())}, "
        f"benign alerted {int(alerted[~attack].sum())}/{int((~attack).sum())}, "
        f"ROC AUC of risk {roc_auc_score(attack, risk):.3f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--victims", nargs="+", choices=sorted(VICTIMS), default=list(VICTIMS))
    ap.add_argument("--hard", type=hard_traffic, default={}, help="as querywatch simulate --hard")
    ap.add_argument("--dilute", type=int, default=0, help="as querywatch simulate --dilute")
    ap.add_argument("--early", action="store_true", help="as querywatch simulate --early")
    args = ap.parse_args()
    for victim in args.victims:
        for seed in args.seeds:
            truth, clients = replayed(victim, seed, args.hard, args.dilute, args.early)
            print(f"{victim}, seed {seed}: {sum(c['queries'] for c in clients.values()):,} events")
            print("\n".join(family_rows(truth, clients)))
            print(f"  {victim} seed {seed}: {summary(truth, clients)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
