"""Model thieves of several kinds, each built from a published extraction attack.

The attackers are adaptive where the papers' are: they query the victim while they build
their traffic (JbDA trains a substitute between rounds, active learners pick the next batch
from the answers, boundary probes follow the labels). Each kind is a function
``(rng, victim, span, scale) -> Traffic``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.linear_model import RidgeClassifier

from querywatch.detector.simulate.traffic import Traffic, noisy, scaled_count, steady_times
from querywatch.detector.simulate.victim import VictimModel

#: Ridge scores live in about [-1, 1]; scaled, their softmax is as peaked as a network's.
_SOFTMAX_SHARPNESS = 5.0

AttackKind = Callable[[np.random.Generator, VictimModel, float, float], Traffic]


def _substitute(inputs: np.ndarray, labels: np.ndarray) -> RidgeClassifier | None:
    """The thief's own linear copy, trained on what it has stolen so far (None before two classes).

    A closed-form ridge classifier stands in for the papers' substitute networks: it is
    fast enough to retrain every round, and its gradients and margins mean the same thing.
    """
    if len(np.unique(labels)) < 2:
        return None
    return RidgeClassifier(alpha=1.0).fit(inputs, labels)


def _class_scores(model: RidgeClassifier) -> tuple[np.ndarray, np.ndarray]:
    """The substitute's weights and intercepts, one row per class: with two classes it has
    one score, positive for ``classes_[1]`` (scikit-learn 1.9 gives its coefficients as one
    row, earlier releases as a (1, dim) array), which becomes the pair (-score, score)."""
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    if coef.shape[0] == 1:
        return np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
    return coef, intercept


def _label_gradients(model: RidgeClassifier | None, inputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Jacobian row of the substitute's softmax output for each input's label (Papernot's
    augmentation direction): ``p_c (w_c - sum_k p_k w_k)``. It depends on the input, as a
    network's Jacobian would; zero before a substitute exists."""
    if model is None:
        return np.zeros(inputs.shape)
    coef, intercept = _class_scores(model)
    logits = _SOFTMAX_SHARPNESS * (inputs @ coef.T + intercept)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    rows = np.searchsorted(model.classes_, labels)
    own = proba[np.arange(len(labels)), rows][:, None]
    return np.asarray(own * (coef[rows] - proba @ coef))


def _rounds(
    rng: np.random.Generator, batches: list[np.ndarray], start: float, gap: float, pause: float
) -> Traffic:
    """Batches sent at a script's pace, with a pause (substitute training) between them."""
    parts, clock = [], start
    for batch in batches:
        times = steady_times(rng, len(batch), start=clock, gap=gap)
        parts.append(Traffic(times, batch))
        clock = float(times[-1]) + rng.exponential(pause) if len(times) else clock
    return Traffic.concat(parts)


def random_synthetic(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """Tramèr et al. (2016): uniformly random (or random binary) inputs, sent steadily."""
    n = scaled_count(rng, 600, 1500, scale, floor=60)
    if rng.random() < 0.5:
        inputs = rng.uniform(0.0, 1.0, size=(n, victim.dim))
    else:
        inputs = (rng.random((n, victim.dim)) < rng.uniform(0.2, 0.4)).astype(np.float64)
    return Traffic(steady_times(rng, n, start=rng.uniform(0, 0.6 * span), gap=rng.uniform(1.0, 4.0)), inputs)


def jacobian_augmentation(
    rng: np.random.Generator, victim: VictimModel, span: float, scale: float
) -> Traffic:
    """Papernot et al. (2017) JbDA: natural seeds, then rounds of small sign steps along the
    substitute's gradient for the victim's label (step sign flips every few rounds)."""
    target = scaled_count(rng, 600, 1200, scale, floor=60)
    seeds = np.concatenate(
        [
            rng.choice(np.flatnonzero(victim.targets == c), size=3, replace=False)
            for c in range(victim.classes)
        ]
    )
    known = noisy(rng, victim.natural[seeds], 0.01)
    labels = victim.labels(known)
    batches, step = [known], float(rng.uniform(0.05, 0.12))
    for round_no in range(32):
        sent = sum(len(b) for b in batches)
        if sent >= target:
            break
        model = _substitute(known, labels)
        sign = 1.0 if (round_no // 3) % 2 == 0 else -1.0
        parents = known[rng.choice(len(known), size=min(len(known), target - sent), replace=False)]
        parent_labels = victim.labels(parents)
        gradients = _label_gradients(model, parents, parent_labels)
        children = np.clip(parents + sign * step * np.sign(gradients), 0.0, 1.0)
        batches.append(children)
        known = np.concatenate([known, children])
        labels = np.concatenate([labels, victim.labels(children)])
    return _rounds(rng, batches, rng.uniform(0, 0.6 * span), gap=rng.uniform(0.3, 1.5), pause=600.0)


def boundary_probing(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """Decision-based probing (HopSkipJump-like): binary search between two inputs of
    different classes, then random probes around the boundary point to estimate its normal
    and a step along it, then search back to the boundary."""
    target = scaled_count(rng, 400, 900, scale, floor=60)
    queries: list[np.ndarray] = []
    while len(queries) < target:
        a, b = victim.natural[rng.choice(len(victim.natural), size=2, replace=False)]
        label_a, label_b = victim.labels(np.stack([a, b]))
        queries.extend([a, b])
        if label_a == label_b:
            continue
        outside = b
        for _ in range(int(rng.integers(2, 4))):
            low, high = 0.0, 1.0
            for _ in range(10):  # binary search on the segment a -> outside
                mid = (low + high) / 2
                point = a + mid * (outside - a)
                queries.append(point)
                if victim.labels(point)[0] == label_a:
                    low = mid
                else:
                    high = mid
            edge = a + high * (outside - a)
            directions = rng.normal(size=(int(rng.integers(10, 20)), victim.dim))
            directions /= np.linalg.norm(directions, axis=1, keepdims=True)
            probes = np.clip(edge + 0.05 * directions, 0.0, 1.0)
            queries.extend(probes)
            crossed = np.where(victim.labels(probes) != label_a, 1.0, -1.0)
            normal = (crossed[:, None] * directions).mean(axis=0)
            outside = np.clip(edge + 0.3 * normal / max(float(np.linalg.norm(normal)), 1e-9), 0.0, 1.0)
    inputs = np.asarray(queries[:target])
    return Traffic(
        steady_times(rng, len(inputs), start=rng.uniform(0, 0.6 * span), gap=rng.uniform(0.5, 2.0)), inputs
    )


def _thief_pool(rng: np.random.Generator, victim: VictimModel, copies: int = 3) -> np.ndarray:
    """The thief's own unlabeled in-domain data: inputs like the victim's, plus variants
    (what scraping similar images yields: shifted, faded and noisier digits; for a table,
    noisier rows and blends of two rows), about 7,000 inputs at digits' size."""
    variants = [noisy(rng, victim.natural, 0.02)]
    if not victim.image:
        for _ in range(copies):
            pairs = rng.integers(0, len(victim.natural), size=(len(victim.natural), 2))
            mix = rng.uniform(0.0, 1.0, size=(len(pairs), 1))
            blend = (1.0 - mix) * victim.natural[pairs[:, 0]] + mix * victim.natural[pairs[:, 1]]
            variants.append(noisy(rng, blend, 0.05))
        return np.concatenate(variants)
    images = victim.natural.reshape(-1, 8, 8)
    for _ in range(copies):
        shifts = rng.integers(-1, 2, size=(len(images), 2))
        moved = np.stack(
            [np.roll(image, tuple(shift), axis=(0, 1)) for image, shift in zip(images, shifts, strict=True)]
        )
        faded = moved.reshape(len(images), -1) * rng.uniform(0.7, 1.0, size=(len(images), 1))
        variants.append(noisy(rng, faded, 0.05))
    return np.concatenate(variants)


def _active(
    rng: np.random.Generator, victim: VictimModel, span: float, scale: float, strategy: str
) -> Traffic:
    """ActiveThief (Pal et al. 2020): label a natural pool batch by batch, choosing each batch
    by the substitute's uncertainty (smallest top-2 margin) or by k-center coverage."""
    target = scaled_count(rng, 500, 1000, scale, floor=60)
    pool = _thief_pool(rng, victim)
    chosen = list(rng.choice(len(pool), size=20, replace=False))
    batches = [pool[chosen]]
    labels = list(victim.labels(pool[chosen]))
    batch_size = int(rng.integers(40, 100))
    squares: np.ndarray = np.einsum("ij,ij->i", pool, pool)

    def squared_distances(point: int) -> np.ndarray:
        return np.asarray(squares - 2.0 * (pool @ pool[point]) + squares[point])

    nearest = np.min([squared_distances(i) for i in chosen], axis=0)
    while len(chosen) < target:
        size = min(batch_size, target - len(chosen))
        model = _substitute(pool[chosen], np.asarray(labels)) if strategy == "uncertainty" else None
        if model is not None:
            coef, intercept = _class_scores(model)
            decision = np.sort(pool @ coef.T + intercept, axis=1)
            margin = decision[:, -1] - decision[:, -2]
            margin[chosen] = np.inf
            picks = list(np.argsort(margin)[:size])
        else:
            picks = []
            for _ in range(size):  # greedy farthest-first
                nearest[chosen + picks] = -1.0
                pick = int(np.argmax(nearest))
                picks.append(pick)
                nearest = np.minimum(nearest, squared_distances(pick))
        chosen.extend(picks)
        batches.append(pool[picks])
        labels.extend(victim.labels(pool[picks]))
    return _rounds(rng, batches, rng.uniform(0, 0.6 * span), gap=rng.uniform(0.2, 1.0), pause=300.0)


def active_uncertainty(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """ActiveThief with uncertainty selection: answers crowd near the decision boundaries."""
    return _active(rng, victim, span, scale, "uncertainty")


def active_kcenter(rng: np.random.Generator, victim: VictimModel, span: float, scale: float) -> Traffic:
    """ActiveThief with k-center selection: coverage of the input space grows unusually fast."""
    return _active(rng, victim, span, scale, "kcenter")


#: Attack families by name (the name is the ``family`` in the ground truth).
ATTACK_KINDS: dict[str, AttackKind] = {
    "random": random_synthetic,
    "jbda": jacobian_augmentation,
    "boundary": boundary_probing,
    "active_uncertainty": active_uncertainty,
    "active_kcenter": active_kcenter,
}
