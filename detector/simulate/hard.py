"""Hard traffic for a detector: what-if analysts, who look like perturbation chains, clients
who send missing fields as 0 or as missing, and thieves who dilute their stolen queries with natural ones.
``querywatch simulate --hard`` adds the benign kinds (``HARD_KINDS``) to a trace, ``--dilute`` and
``--early`` change its attackers (``generate_trace``).

* ``whatif`` — an analyst takes one record and sweeps one property over a grid (brightness
  or contrast of a digit, one or two fields of a table row; 10-30 steps), record after
  record: every query is a small, often uniform step from the previous one, yet it explores
  one line around a few points.
* ``zero_filled`` — a client whose records miss a few fields and who sends them as 0: on a
  model whose data never holds a 0 there, every such record lies beyond the data, and far.
* ``missing`` — the same records, their missing fields sent as missing (null), as a model
  served behind an imputer, or a tree model that reads NaN as missing, logs them.
* ``diluted`` — any attacker's traffic with ``per_stolen`` natural queries sent after each
  stolen one (same pace): a test on the *share* of suspicious queries sees a fifth of the
  signal at 1:4, a test on their *count* sees all of it.
"""

from __future__ import annotations

import numpy as np

from querywatch.detector.simulate.benign import BenignKind, _natural_draws
from querywatch.detector.simulate.traffic import Traffic, noisy, scaled_count, session_times
from querywatch.detector.simulate.victim import VictimModel


def _brightness(x: np.ndarray, v: float) -> np.ndarray:
    return x + v


def _contrast(x: np.ndarray, v: float) -> np.ndarray:
    return 0.5 + v * (x - 0.5)


#: Swept properties of a digit: value range and how a value changes the image.
_SWEEPS = {"brightness": ((-0.25, 0.25), _brightness), "contrast": ((0.5, 1.5), _contrast)}


def whatif(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """A what-if analyst: sweeps of one property of one natural input, one after another."""
    n = scaled_count(rng, 300, 1200, scale, floor=60)
    rows: list[np.ndarray] = []
    while sum(len(r) for r in rows) < n:
        record = victim.natural[rng.integers(len(victim.natural))]
        steps = int(rng.integers(10, 31))
        if victim.image:
            (low, high), change = _SWEEPS[str(rng.choice(list(_SWEEPS)))]
            rows.append(
                np.clip(np.stack([change(record, v) for v in np.linspace(low, high, steps)]), 0.0, 1.0)
            )
        else:  # one or two fields of the row, each from one end of its range to the other
            fields = rng.choice(victim.dim, size=int(rng.integers(1, 3)), replace=False)
            sweep = np.repeat(record[None, :], steps, axis=0)
            for field in fields:
                ends = (0.0, 1.0) if rng.random() < 0.5 else (1.0, 0.0)
                sweep[:, field] = np.linspace(*ends, steps)
            rows.append(sweep)
    inputs = np.concatenate(rows)[:n]
    times = session_times(rng, n, span=span, sessions=int(rng.integers(2, 6)), gap=rng.uniform(0.1, 0.5))
    return Traffic(np.sort(times), inputs)


def zero_filled(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """Natural inputs, 30% of them with one to three fields missing and sent as 0."""
    return _with_gaps(rng, victim, span, scale, 0.0)


def missing(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """Natural inputs, 30% of them with one to three fields missing and sent as missing (NaN)."""
    return _with_gaps(rng, victim, span, scale, np.nan)


def _with_gaps(
    rng: np.random.Generator, victim: VictimModel, span: float, scale: float, fill: float
) -> Traffic:
    n = scaled_count(rng, 300, 1200, scale, floor=60)
    inputs = _natural_draws(rng, victim, n, 2.0).copy()
    for i in np.flatnonzero(rng.random(n) < 0.3):
        inputs[i, rng.choice(victim.dim, size=int(rng.integers(1, 4)), replace=False)] = fill
    times = session_times(rng, n, span=span, sessions=int(rng.integers(2, 6)), gap=rng.uniform(0.1, 0.5))
    return Traffic(np.sort(times), inputs)


def diluted(rng: np.random.Generator, victim: VictimModel, attack: Traffic, per_stolen: int = 4) -> Traffic:
    """``attack`` with ``per_stolen`` natural queries after each stolen one, at the same pace."""
    order = np.argsort(attack.times, kind="stable")
    stolen, times = attack.inputs[order], attack.times[order]
    gaps = np.diff(times, append=times[-1] + (np.median(np.diff(times)) if len(times) > 1 else 1.0))
    natural = noisy(rng, _natural_draws(rng, victim, len(stolen) * per_stolen, 2.0), 0.02)
    inputs, stamps = [], []
    for i in range(len(stolen)):
        inputs.append(stolen[i : i + 1])
        inputs.append(natural[i * per_stolen : (i + 1) * per_stolen])
        stamps.append(times[i] + gaps[i] * np.arange(per_stolen + 1) / (per_stolen + 1))
    return Traffic(np.concatenate(stamps), np.concatenate(inputs))


#: Hard benign behaviours by name (``generate_trace``'s ``hard``; ``querywatch simulate --hard``).
HARD_KINDS: dict[str, BenignKind] = {"whatif": whatif, "zero_filled": zero_filled, "missing": missing}
