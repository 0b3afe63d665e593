"""A bounded refresh of a reference profile under drift.

A profile fitted once goes stale when the benign population moves; a refit on recent
traffic follows it, but a refit is also how someone could teach the detector, a little per
refresh, that theft is normal. So a refresh is a refit with limits, all from the profile:

* **Only under drift.** A window's *share* is the mean, over its clients, of the share of
  their inputs beyond the reference's median out-of-profile score (``typical_score``).
  Live inputs are not the reference's own (those fitted the centres, so sit closer to them),
  so the null is not 1/2 but the share of the first window of the revision (the baseline):
  drift is a share above it by z standard errors of the difference, z the normal quantile
  of ``1 - alpha``, each error the spread of the clients' shares over the square root of
  their number (a client's inputs are not independent; its clients are).
* **Answers drift too.** A population may move where the model is less sure of itself
  without moving away from the data: on the simulator's 128-input victim, users pulled a
  fifth of the way towards one point sit no farther out (their median score falls) but get
  1.6 times as many answers on the decision boundary, and the boundary test, whose chance
  is binned by distance, alerted on a third of them. So the same test runs on the mean
  share of the clients' answers on the boundary; drifted answers alone re-measure each
  score bin's chance of a boundary answer, within the bound below, and move nothing else.
  Answers without scores are placed by their neighbour margins (``models.labelmargin``),
  as the engine places them: on a model served with labels only, every answer; beside
  scores, the few served without them, against the neighbours' own rank tables.
* **On a trimmed sample.** Clients whose median, upper decile or highest score is far
  above the others' (the warm-up's trimming, ``kept_clients``) are dropped, and so is every
  input beyond the far threshold: gradual drift does not jump there, a uniform-random or
  synthetic query does. A quiet thief that sends four natural queries to each stolen one
  has a natural median; its stolen rows short of the far threshold would set the sample's
  highest scores, and so the thresholds (eight such clients of 100 raised a refresh's
  out-of-profile threshold from 1.71 to 1.90, a quarter of the most one refresh may move it:
  ``tests/models/test_profile.py``).
* **A bounded step.** With r = ``typical_score``, one refresh moves every cell centre by
  at most r in the scaled input space: the plane of the principal axes moves across itself
  by at most r/2 (the sample's median offset from it) and each centre moves within the
  plane towards its cell's median by the rest. An out-of-profile score is the distance to
  the nearest centre, so (triangle inequality) no input's score moves by more than r; the
  out-of-profile and far thresholds, re-derived from the sample, are clipped to the old
  ones + r (never lower: a refresh is no place to get stricter), ``typical_score`` to
  ± r/2, and each cell probability, and each score bin's chance of a boundary answer, to
  the old one ± z standard errors of the sample's frequency. A slow poisoner gains at most that much per
  refresh, and only in refreshes that honest drift triggers.
* **The rest carries over:** principal axes, global scale, quantization range, class
  prior, margin threshold, the calibration's null rates (what a benign client may send,
  against thresholds that are the same quantiles as before), the population model's rows,
  the extraction reference and ``version`` (so client states stay valid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from querywatch.models.calibration import (
    RANK_SAMPLE,
    Calibration,
    boundary_bins,
    far_beyond,
    margin_quantiles,
)
from querywatch.models.profile import (
    OOD_QUANTILE,
    TRIMMED_LEVELS,
    FloatArray,
    ReferenceProfile,
    outlying_clients,
)

#: A cell's centre moves only when the sample has at least this many inputs in it.
MIN_CELL_INPUTS = 5


@dataclass(frozen=True)
class Share:
    """The mean over a sample's clients of a per-client share, and its standard error: the
    spread of the clients' shares over the square root of their number (clients are the
    independent draws), never below that of independent inputs at the pooled share."""

    share: float
    error: float
    clients: int

    @classmethod
    def of(cls, flags: NDArray[np.bool_], owners: NDArray[Any]) -> Share | None:
        """Per owner the share of ``flags``; None with fewer than two owners."""
        names, client = np.unique(owners, return_inverse=True)
        if len(names) < 2:
            return None
        shares = np.bincount(client, weights=flags) / np.bincount(client)
        pooled = float(np.mean(flags))
        independent = math.sqrt(max(pooled * (1.0 - pooled), 1.0 / len(flags)) / len(flags))
        return cls(
            float(np.mean(shares)),
            max(float(np.std(shares, ddof=1)) / math.sqrt(len(names)), independent),
            len(names),
        )

    def limit(self, baseline: Share, z: float) -> float:
        """The highest share the null (no drift since ``baseline``) allows this one."""
        return baseline.share + z * math.hypot(self.error, baseline.error)

    def drifted(self, baseline: Share, z: float) -> bool:
        return self.share > self.limit(baseline, z)


@dataclass(frozen=True)
class Window:
    """One sample's position against a profile."""

    beyond: Share
    """The clients' inputs beyond the reference's median out-of-profile score (``typical_score``)."""
    boundary: Share | None = None
    """The clients' answers on the decision boundary (none without scores or a boundary)."""
    unsure: Share | None = None
    """The clients' answers less confident than the median of the reference's as far from the
    data (rank below 1/2, ``Calibration.margin_ranks``; none without rank tables)."""

    def answers_drifted(self, baseline: Window, z: float) -> bool:
        return any(
            now is not None and then is not None and now.drifted(then, z)
            for now, then in ((self.boundary, baseline.boundary), (self.unsure, baseline.unsure))
        )

    def reason(self, baseline: Window, z: float) -> str:
        now, then = self.beyond, baseline.beyond
        return (
            f"drift: {now.share:.0%} of the inputs of {now.clients} quiet clients lie beyond the "
            f"reference's median distance, against {then.share:.0%} in the first window of this "
            f"revision (at most {now.limit(then, z):.0%} without drift)"
        )

    def answers_reason(self, baseline: Window, z: float) -> str:
        now, then = self.boundary, baseline.boundary
        where = "sit on the decision boundary"
        if now is None or then is None or not now.drifted(then, z):
            now, then = self.unsure, baseline.unsure
            where = "are less confident than the reference's median answer as far from the data"
        assert now is not None and then is not None
        return (
            f"drift in the answers: {now.share:.1%} of the answers to {now.clients} quiet clients {where}, "
            f"against {then.share:.1%} in the first window of this revision (at most "
            f"{now.limit(then, z):.1%} without drift)"
        )


@dataclass(frozen=True)
class Refresh:
    window: Window | None
    """None when the profile cannot be refreshed (stored before refreshes, or too small a sample)."""
    profile: ReferenceProfile | None
    """The next revision, when the sample drifted."""


def refresh_profile(
    profile: ReferenceProfile,
    X: FloatArray,
    owners: NDArray[Any],
    *,
    margins: FloatArray | None = None,
    classes: NDArray[np.int64] | None = None,
    baseline: Window | None,
    at: float,
    alpha: float,
) -> Refresh:
    """Place ``X`` (recent inputs of quiet clients, one owner each, with the top-1 minus top-2
    ``margins`` of their answers, NaN without scores, and their answers' profile ``classes``,
    -1 without an answer) against ``profile`` and, if it drifted since ``baseline`` (the first
    window of this revision; None: this is it), refit within the bounds above (``at``: event
    time). Missing values are read as live rows' are (``ReferenceProfile.filled``).

    >>> rng = np.random.default_rng(0)
    >>> from querywatch.models.profile import fit_profile
    >>> p = fit_profile(rng.normal(size=(3000, 6)), model_id="m", version="v", cells=8, components=3)
    >>> owners = np.repeat(np.arange(100), 30)
    >>> def window(X, baseline, at):
    ...     return refresh_profile(p, X, owners, baseline=baseline, at=at, alpha=1e-4)
    >>> first = window(rng.normal(size=(3000, 6)), None, 0.0)
    >>> first.profile is None and window(rng.normal(size=(3000, 6)), first.window, 1.0).profile is None
    True
    >>> moved = window(rng.normal(size=(3000, 6)) + 0.5, first.window, 2.0).profile
    >>> moved.revision, moved.version, bool(moved.ood_threshold <= p.ood_threshold + p.typical_score)
    (1, 'v', True)
    """
    X = profile.filled(np.asarray(X, dtype=np.float64))
    r = profile.typical_score
    if math.isnan(r) or len(X) < max(2 * profile.cells, 10):
        return Refresh(None, None)
    view = profile.view(X)
    scores = view.ood_score
    far = profile.calibration.far_threshold if profile.calibration is not None else np.inf
    keep = (scores <= far) & ~outlying_clients(scores, owners, TRIMMED_LEVELS)
    beyond = Share.of(scores[keep] > r, owners[keep])
    if keep.sum() < max(2 * profile.cells, 10) or beyond is None:
        return Refresh(None, None)
    n = len(X)
    answers = profile.read_answers(
        view,
        np.full(n, -1, dtype=np.int64) if classes is None else np.asarray(classes, dtype=np.int64),
        np.full(n, np.nan) if margins is None else np.asarray(margins, dtype=np.float64),
        np.full(n, np.nan),
    )
    kept_margins = answers.margins[keep]
    unscored = None if answers.unscored is None else answers.unscored[keep]
    on_boundary = None
    if profile.margin_threshold > 0.0:
        scored = np.isfinite(kept_margins)
        on_boundary = Share.of(kept_margins[scored] < profile.margin_threshold, owners[keep][scored])
    unsure = None
    if answers.ranks is not None:
        ranks = answers.ranks[keep]
        ranked = np.isfinite(ranks)
        unsure = Share.of(ranks[ranked] < 0.5, owners[keep][ranked])
    window = Window(beyond, on_boundary, unsure)
    z = NormalDist().inv_cdf(1.0 - alpha)
    if baseline is None:
        return Refresh(window, None)
    if beyond.drifted(baseline.beyond, z):
        reason = window.reason(baseline, z)
        return Refresh(window, _bounded_refit(profile, X[keep], kept_margins, unscored, z, at, reason))
    if profile.calibration is not None and window.answers_drifted(baseline, z):
        calibration = _boundary_rates(
            profile.calibration,
            scores[keep],
            kept_margins,
            profile.margin_threshold,
            profile.ood_threshold,
            z,
        )
        tables = _answer_tables(profile, calibration, scores[keep], kept_margins, unscored)
        return Refresh(window, _revised(profile, at, window.answers_reason(baseline, z), **tables))
    return Refresh(window, None)


def _bounded_refit(
    profile: ReferenceProfile,
    R: FloatArray,
    margins: FloatArray,
    unscored: FloatArray | None,
    z: float,
    at: float,
    reason: str,
) -> ReferenceProfile:
    r = profile.typical_score
    C = profile.components
    S = (R - profile.mean) / profile.scale
    offset = np.median(S, axis=0)
    across = _clipped(offset - (offset @ C.T) @ C, r / 2.0)
    Z = (S - across) @ C.T
    centres = profile.centroids.copy()
    cell = np.argmin(_sq_distances(Z, centres), axis=1)
    within = math.sqrt(max(r * r - float(across @ across), 0.0))
    for k in range(len(centres)):
        rows = Z[cell == k]
        if len(rows) >= MIN_CELL_INPUTS:
            centres[k] += _clipped(np.median(rows, axis=0) - centres[k], within)
    draft = replace(profile, mean=profile.mean + profile.scale * across, centroids=centres)
    view = draft.view(R)
    threshold = _rise(float(np.quantile(view.ood_score, OOD_QUANTILE)), profile.ood_threshold, r)
    n = len(R)
    old = profile.cell_prob
    spread = z * np.sqrt(old * (1.0 - old) / n)
    freq = np.bincount(view.cell, minlength=len(old)) / n
    prob = np.clip(freq, np.maximum(old - spread, 0.5 / (n + 0.5 * len(old))), old + spread)
    tables: dict[str, Any] = {"calibration": None}
    if profile.calibration is not None:
        far = _rise(
            far_beyond(float(view.ood_score.max()), threshold, profile.calibration.drift_share),
            profile.calibration.far_threshold,
            r,
        )
        calibration = _boundary_rates(
            replace(profile.calibration, far_threshold=far),
            view.ood_score,
            margins,
            profile.margin_threshold,
            threshold,
            z,
        )
        tables = _answer_tables(profile, calibration, view.ood_score, margins, unscored)
    spread_threshold = profile.spread_threshold
    if len(profile.spread):  # the spread score's threshold rises as the score's does, in its units
        spread_threshold = _rise(
            float(np.quantile(draft.spread_scores(R - draft.mean), OOD_QUANTILE)),
            spread_threshold,
            r * spread_threshold / profile.ood_threshold,
        )
    return _revised(
        draft,
        at,
        reason,
        ood_threshold=threshold,
        spread_threshold=spread_threshold,
        cell_prob=prob / prob.sum(),
        typical_score=_within(float(np.median(view.ood_score)), r, r / 2.0),
        **tables,
    )


def _revised(profile: ReferenceProfile, at: float, reason: str, **changes: Any) -> ReferenceProfile:
    """``profile`` with ``changes``, as the next revision: refreshed at ``at`` for ``reason``."""
    return replace(profile, revision=profile.revision + 1, refreshed_at=at, refresh_reason=reason, **changes)


def _clipped(v: FloatArray, limit: float) -> FloatArray:
    norm = float(np.sqrt(v @ v))
    return v if norm <= limit else v * (limit / norm)


def _boundary_rates(
    calibration: Calibration,
    scores: FloatArray,
    margins: FloatArray,
    margin_threshold: float,
    threshold: float,
    z: float,
) -> Calibration:
    """The chance of a boundary answer per score bin, re-measured on the sample (a drifting
    population may get less confident answers at the same distance from the new centres),
    each bin's within z standard errors of the old rate at the sample's count in it."""
    scored = np.isfinite(margins)
    old = np.asarray(calibration.boundary_rates, dtype=np.float64)
    if not scored.any() or margin_threshold <= 0.0 or len(old) != len(calibration.boundary_edges) + 1:
        return calibration  # no boundary (labels only: neighbour margins are ranked, never binned)
    edges, rates = boundary_bins(scores[scored], margins[scored] < margin_threshold, threshold)
    if len(rates) != len(old):
        return calibration
    counts = np.bincount(np.searchsorted(np.asarray(edges), scores[scored]), minlength=len(old))[: len(old)]
    spread = z * np.sqrt(old * (1.0 - old) / np.maximum(counts, 1))
    bounded = np.maximum.accumulate(np.clip(np.asarray(rates), old - spread, old + spread))
    return replace(calibration, boundary_edges=edges, boundary_rates=tuple(float(v) for v in bounded))


def _answer_tables(
    profile: ReferenceProfile,
    calibration: Calibration,
    scores: FloatArray,
    margins: FloatArray,
    unscored: FloatArray | None,
) -> dict[str, Any]:
    """The revision's ``calibration`` and ``label_neighbours`` with the rank tables the
    answers are read by re-measured on the sample (``ReferenceProfile.read_answers``): the
    calibration's by the ``margins`` the tests read, the neighbours' (beside scores) by the
    neighbour margins of the answers served without scores (``unscored``)."""
    tables: dict[str, Any] = {"calibration": _rank_tables(calibration, scores, margins)}
    neighbours = profile.label_neighbours
    if unscored is not None and neighbours is not None:
        lowered = _lowered_tables(neighbours.rank_edges, neighbours.rank_margins, scores, unscored)
        tables["label_neighbours"] = replace(neighbours, rank_margins=lowered)
    return tables


def _rank_tables(calibration: Calibration, scores: FloatArray, margins: FloatArray) -> Calibration:
    """The margin-rank tables re-measured on the sample where its answers are less confident
    (``_lowered_tables``).

    A population may move where the model is less sure (on the simulator's wide victim,
    a fifth of the way towards one point), and every client's ranks fall with it: kept to
    the boundary chance's bound, the tables lagged and the rank test alerted 23 of 280
    such users (the boundary test alone, 8). Unbounded, they follow; never stricter (a
    refresh is no place to get stricter), a poisoner can at most loosen the rank test, and
    the boundary chance, whose moves are bounded, keeps what the boundary test catches."""
    if not calibration.rank_margins:
        return calibration
    tables = _lowered_tables(calibration.rank_edges, calibration.rank_margins, scores, margins)
    return replace(calibration, rank_margins=tables)


def _lowered_tables(
    edges: tuple[float, ...], tables: tuple[tuple[float, ...], ...], scores: FloatArray, margins: FloatArray
) -> tuple[tuple[float, ...], ...]:
    """Rank ``tables`` on their bins (``edges`` of out-of-profile ``scores``), each the
    pointwise lower of its quantiles and the sample's finite ``margins`` in it (bins of at
    least 50 answers), farther bins at most as confident as nearer ones."""
    scored = np.isfinite(margins)
    if not scored.any() or not tables:
        return tables
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), scores[scored])
    lowered: list[FloatArray] = []
    for b, table in enumerate(tables):
        old = np.asarray(table, dtype=np.float64)
        inside = margins[scored][bins == b]
        if len(inside) >= 50 and len(old) == RANK_SAMPLE:
            old = np.minimum(old, margin_quantiles(inside))
        lowered.append(old if not lowered else np.minimum(lowered[-1], old))
    return tuple(tuple(float(v) for v in t) for t in lowered)


def _rise(value: float, old: float, limit: float) -> float:
    """``value`` no lower than ``old`` (a refresh is no place to get stricter: it would alert
    the clients whose drift it follows) and at most ``limit`` above it."""
    return min(max(value, old), old + limit)


def _within(value: float, centre: float, limit: float) -> float:
    return min(max(value, centre - limit), centre + limit)


def _sq_distances(Z: FloatArray, centres: FloatArray) -> FloatArray:
    return np.asarray(
        np.einsum("ij,ij->i", Z, Z)[:, None]
        - 2.0 * Z @ centres.T
        + np.einsum("ij,ij->i", centres, centres)[None, :],
        dtype=np.float64,
    )
