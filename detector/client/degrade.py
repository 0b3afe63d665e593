"""Degraded answers for a suspicious client (MITRE ATLAS AML.M0002, output obfuscation).

Three modes, each keeping the top label, so a benign client that trips the threshold still
gets the right class:

* ``round``: scores rounded to the decision's precision (1 decimal by default);
* ``top1``: the label only, no scores;
* ``noise``: scores perturbed at random and renormalised, the top class kept on top.

What each buys against a thief is measured in ``benchmarks/bench_degrade.py``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

DEGRADE_MODES = ("round", "top1", "noise")


def top_index(scores: Sequence[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)


def round_scores(scores: Sequence[float], precision: int) -> list[float]:
    """Scores to ``precision`` decimals.

    >>> round_scores([0.123, 0.877], 1)
    [0.1, 0.9]
    """
    return [round(float(s), precision) for s in scores]


def noisy_scores(scores: Sequence[float], scale: float, rng: random.Random) -> list[float]:
    """Scores plus uniform noise of +-``scale``, clipped at 0, renormalised; the top class stays top.

    >>> s = noisy_scores([0.1, 0.5, 0.4], 0.3, random.Random(1))
    >>> top_index(s), round(sum(s), 9)
    (1, 1.0)
    """
    top = top_index(scores)
    noisy = [max(0.0, float(s) + rng.uniform(-scale, scale)) for s in scores]
    rival = max((v for i, v in enumerate(noisy) if i != top), default=0.0)
    if noisy[top] <= rival:  # noise must not change the answer, only blur the confidence
        noisy[top] = rival + 1e-3
    total = sum(noisy)
    return [v / total for v in noisy]


def degrade_prediction(
    prediction: Mapping[str, Any],
    mode: str,
    *,
    precision: int | None = None,
    noise: float = 0.1,
    rng: random.Random | None = None,
) -> dict[str, Any]:
    """The degraded form of one ``{"label", "scores"}`` prediction (other keys kept).

    >>> degrade_prediction({"label": 1, "scores": [0.12, 0.88]}, "round", precision=1)
    {'label': 1, 'scores': [0.1, 0.9]}
    >>> degrade_prediction({"label": 1, "scores": [0.12, 0.88]}, "top1")
    {'label': 1}

    One number is a two-class model's second class's probability (as querywatch reads it:
    ``engine.events.two_class``), degraded as the pair it stands for and answered as one
    number again: its label is 1 above one half, and noise keeps it on its side of one half.

    >>> degrade_prediction({"scores": [0.88]}, "top1")
    {'label': 1}
    >>> noisy = degrade_prediction({"scores": [0.88]}, "noise", noise=0.3, rng=random.Random(1))["scores"]
    >>> len(noisy), noisy[0] > 0.5
    (1, True)
    """
    if mode not in DEGRADE_MODES:
        raise ValueError(f"unknown degrade mode {mode!r}; choose one of {', '.join(DEGRADE_MODES)}")
    out = dict(prediction)
    scores = out.get("scores")
    if not isinstance(scores, Sequence) or not scores:
        return out
    single = len(scores) == 1
    if single:
        scores = [1.0 - float(scores[0]), float(scores[0])]
    if mode == "top1":
        out.pop("scores")
        out.setdefault("label", top_index(scores))
        return out
    if mode == "round":
        degraded = round_scores(scores, 1 if precision is None else precision)
    else:
        degraded = noisy_scores(scores, noise, rng or random.Random())
    out["scores"] = degraded[1:] if single else degraded
    return out
