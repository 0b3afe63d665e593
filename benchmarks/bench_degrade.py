"""What degraded answers really buy against model theft, and what they cost honest users.

The simulator's thieves (``querywatch simulate``'s attack families) query the digits victim
through a degrading wrapper (the client library's own ``degrade_prediction``), each with the
same query budget. From what each thief got back, two copies are trained:

* a **hard-label** substitute (logistic regression on the returned labels), and
* a **soft-label**, distilling one (ridge regression on the log of the returned scores, the
  victim's logits up to a constant; a label-only answer counts as a one-hot score).

Fidelity is the share of held-out digits on which a copy agrees with the victim. For each
degrade mode the table also shows what a benign user keeps: the label is never changed, so
its top-1 agreement is that of the argmax of the returned scores (ties of rounded scores
can move it), and the mean absolute error of the scores it gets.

    python benchmarks/bench_degrade.py --queries 500 --seeds 3
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from querywatch.detector.client.degrade import degrade_prediction
from querywatch.detector.simulate.attackers import ATTACK_KINDS
from querywatch.detector.simulate.victim import CLASSES, VictimModel, load_victim

#: (name, degrade mode, precision, noise); "none" is the undegraded baseline.
MODES = (
    ("none", None, None, 0.0),
    ("round 2", "round", 2, 0.0),
    ("round 1", "round", 1, 0.0),
    ("top1", "top1", None, 0.0),
    ("noise 0.1", "noise", None, 0.1),
    ("noise 0.3", "noise", None, 0.3),
)


def answers(
    victim: VictimModel, inputs: np.ndarray, mode: str | None, precision: int | None, noise: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores a client gets back (scores one-hot where the mode sends none)."""
    served = victim.serve(inputs)
    if mode is None:
        return served.labels, served.scores
    rng = random.Random(seed)
    labels, scores = [], []
    for label, row in zip(served.labels, served.scores, strict=True):
        got = degrade_prediction(
            {"label": int(label), "scores": row.tolist()}, mode, precision=precision, noise=noise, rng=rng
        )
        labels.append(got["label"])
        scores.append(got["scores"] if "scores" in got else np.eye(CLASSES)[got["label"]])
    return np.asarray(labels), np.asarray(scores, dtype=np.float64)


def hard_copy(inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Weights (classes x (inputs + bias)) of a logistic regression fitted on the labels."""
    if len(np.unique(labels)) < 2:
        return np.zeros((CLASSES, inputs.shape[1] + 1))
    model = LogisticRegression(max_iter=2000, C=10.0).fit(inputs, labels)
    weights = np.zeros((CLASSES, inputs.shape[1] + 1)) - 1e9
    for row, cls in enumerate(model.classes_):
        weights[cls, :-1], weights[cls, -1] = model.coef_[row], model.intercept_[row]
    return weights


def soft_copy(inputs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Ridge on centred log-scores: the victim's logits up to a per-row constant."""
    logits = np.log(np.clip(scores, 1e-4, 1.0))
    logits -= logits.mean(axis=1, keepdims=True)
    model = Ridge(alpha=1e-3).fit(inputs, logits)
    return np.hstack([model.coef_, model.intercept_[:, None]])


def agreement(weights: np.ndarray, inputs: np.ndarray, truth: np.ndarray) -> float:
    predicted = np.argmax(inputs @ weights[:, :-1].T + weights[:, -1], axis=1)
    return float(np.mean(predicted == truth))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queries", type=int, default=500, help="each thief's query budget")
    parser.add_argument("--seeds", type=int, default=3, help="runs averaged per family")
    parser.add_argument("--families", default=",".join(ATTACK_KINDS))
    args = parser.parse_args()
    victim = load_victim()
    test = np.round(victim.holdout, 3)
    truth = victim.labels(test)
    families = args.families.split(",")
    print(f"fidelity on {len(test)} held-out digits after {args.queries} queries, mean of {args.seeds} seeds")
    print(
        f"{'mode':<10} {'copy':<5}"
        + "".join(f"{f[:13]:>14}" for f in families)
        + f"{'benign top-1':>14}{'|Δscore|':>10}"
    )
    baseline: list[float] = []
    for name, mode, precision, noise in MODES:
        rows: dict[str, list[float]] = {"hard": [], "soft": [], "best": []}
        for family in families:
            runs = [
                _steal(victim, family, seed, args.queries, mode, precision, noise, test, truth)
                for seed in range(args.seeds)
            ]
            for copy, values in zip(("hard", "soft", "best"), zip(*runs, strict=True), strict=True):
                rows[copy].append(float(np.mean(values)))
        _labels, scores = answers(victim, test, mode, precision, noise, 0)
        top1 = float(np.mean(np.argmax(scores, axis=1) == truth))
        error = float(np.mean(np.abs(scores - victim.serve(test).scores)))
        baseline = baseline or rows["best"]
        for copy, values in rows.items():
            cells = "".join(f"{v:14.1%}" for v in values)
            tail = f"{top1:14.1%}{error:10.4f}" if copy == "hard" else ""
            print(f"{name if copy == 'hard' else '':<10} {copy:<5}{cells}{tail}")
        if mode is not None:
            cut = "".join(f"{(v - b) * 100:+10.1f} pts" for b, v in zip(baseline, rows["best"], strict=True))
            print(f"{'':<10} {'Δbest':<5}{cut}")


def _steal(
    victim: VictimModel,
    family: str,
    seed: int,
    queries: int,
    mode: str | None,
    precision: int | None,
    noise: float,
    test: np.ndarray,
    truth: np.ndarray,
) -> tuple[float, float, float]:
    """Fidelity of the hard and soft copies one thief builds, and of the better of the two."""
    traffic = ATTACK_KINDS[family](np.random.default_rng(seed), victim, 86_400.0, 2.0)
    inputs = np.round(np.clip(traffic.inputs[:queries], 0, 1), 3)
    labels, scores = answers(victim, inputs, mode, precision, noise, seed)
    hard = agreement(hard_copy(inputs, labels), test, truth)
    soft = agreement(soft_copy(inputs, scores), test, truth)
    return hard, soft, max(hard, soft)


if __name__ == "__main__":
    main()
