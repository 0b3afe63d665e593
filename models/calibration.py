"""Per-model null rates of the evidence tests, derived from the model's own reference.

A tolerance that is right for one model is wrong for another: the share of a benign
client's queries that fall out of profile, or get an answer on the decision boundary,
depends on the model and its data. So each test's null rate (the most a benign client is
allowed) is measured on the reference itself, over *pseudo-clients*: the reference's own
clients when it has owners (a warm-up from live traffic: each client's first events),
otherwise groups drawn from the reference the way real clients query, concentrated on a
region (one cell of the profile, half of the draws) and otherwise anywhere. The null rate is
the 99th percentile of the indicator's rate over pseudo-clients, never below the rate over
the whole reference; the out-of-profile and far rates are those of pseudo-clients with at
least half a drawn one's rows (``RATE_MIN_ROWS``; the largest ``RATE_MIN_CLIENTS`` if fewer
have as many), as a warm-up's smallest clients' rates are their sampling noise.

The *far* indicator marks an input beyond the reference's most extreme input by as much
again as that input lies beyond the 99.9th percentile (``2 max - q999`` of the reference's
out-of-profile scores): an input exchangeable with N reference inputs lands beyond their
maximum with chance 1 / (N + 1) (a conformal bound, no tail model), and the margin keeps
noisy but genuine data — which benign clients send and a trimmed warm-up may not hold —
inside. On a reference whose scores concentrate, the most extreme input sits barely past
the percentile (1.02-1.04 times it on 40 to 300 inputs), and so does that margin: where
drift crosses the percentile more often than the out-of-profile test tolerates by default,
the far threshold is also at least the percentile grown by DRIFT_INFLATION
(``far_beyond``). Its null is measured by leaving each pseudo-client out: its share of
inputs beyond that threshold computed from the *other* pseudo-clients. A thief's synthetic
queries sit there however many natural queries it interleaves, so the count of far queries
builds evidence at the rate of the stolen ones.

The *boundary* test compares each answer with the reference's chance of a boundary answer
*for an input as far from the data* (bins of the out-of-profile score): noisy but genuine
inputs (a drifted scanner) get less confident answers, in the reference as in use, while an
uncertainty-sampling thief gets them on inputs as typical as anyone's. Its null is a
multiple of that chance: the 99th percentile of the pseudo-clients' underlying ratios (their
observed ratios less the sampling noise of their size), at least 1. In a warm-up (the
reference's own clients), clients whose boundary answers a typical client would not give, at
a Bonferroni level (``OUTLIER_LEVEL``), are left out (a forward search from the least
surprising half, so that several cannot shield one another) and the multiple is measured
again: thieves, or a what-if analyst whose sweeps cross the boundary (revisits, which the
live test ignores), active in a warm-up would otherwise set the null that hides the next
thief. Pseudo-clients drawn from a trusted reference hold no thieves and none is left out.

The out-of-profile test must tolerate *drift*: a benign client whose data come from another
source or an ageing sensor sends inputs a little farther from the data than the reference's.
How many of them cross the 99.9th percentile depends on how the reference's scores
concentrate: with many inputs, every score sits near the median and the percentile lies
close above it (1.3 times the median on a 100-input model, 3 times on an 8-input one), so
the same drift sends a fifth or more of a client's queries over it on one model and 1% on
another. ``drift_share`` measures that on the reference itself: the share of its inputs
that scores DRIFT_INFLATION larger would put out of profile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Pseudo-clients drawn when the reference has no owners, and their size.
PSEUDO_CLIENTS = 200
PSEUDO_SIZE = 40
#: Percentile of the pseudo-clients' rates taken as the null rate.
NULL_QUANTILE = 0.99
#: Counted rows a pseudo-client needs for its out-of-profile and far rates to enter their
#: nulls (unless too few have as many: ``RATE_MIN_CLIENTS``): half a drawn one. A warm-up's
#: owners include clients of a few queries, one chance query out of profile in seven is a
#: rate of 14%, and the 99th percentile over a hundred owners is then the smallest ones'
#: noise: on the bench's digits trace with its extra families it set the far null at 0.17
#: instead of 0.05, and which clients happened to be small in the warm-up moved it, not what
#: benign clients send.
RATE_MIN_ROWS = PSEUDO_SIZE // 2
#: ... unless fewer than this many have as many rows (a warm-up of one-off users): then the
#: largest this many, whatever their size (and every one as large as the smallest of them).
#: A 99th percentile over a handful is their highest rate, as often none at all, and the far
#: null would fall to twice the whole reference's rate.
RATE_MIN_CLIENTS = PSEUDO_CLIENTS // 4
#: The standard normal's NULL_QUANTILE (the tail of the underlying rates is taken as normal).
NORMAL_QUANTILE = 2.326
#: Quantiles of the reference's out-of-profile scores that bin the boundary chance.
BIN_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99)
#: Expected boundary answers of prior weight behind each class factor (towards 1).
CLASS_PRIOR = 5.0
#: Margins kept per score bin for the margin ranks (``rank_tables``): quantiles, ties kept.
RANK_SAMPLE = 128
#: Reference answers of prior weight (at the overall mean rank, 1/2) behind each class's mean rank.
RANK_CLASS_PRIOR = 20.0
#: A pseudo-client's mean rank says something once it holds this many answers.
RANK_MIN_ANSWERS = 10
#: The rank test's tolerance at least (a reference whose clients all answer alike).
RANK_MIN_SHIFT = 0.01
#: The rank test's tolerance for a profile without a calibration (which has no rank tables:
#: the test stays silent there whatever its tolerance).
RANK_SHIFT = 0.1
#: Chance, over all pseudo-clients together, of leaving out a benign one for its boundary
#: answers (the test of one pseudo-client is at this level over their number).
OUTLIER_LEVEL = 0.01
#: Resamples of the pseudo-clients behind the upper bound of an underlying rate's quantile.
BOOTSTRAP = 200
#: The far test's null is at least this multiple of the out-of-profile null (see ``calibrate``).
#: The floor sets how fast a thief diluted 1:4 (a far rate of 0.2) is caught, and which far
#: rate a benign client may keep up without evidence building (the count test's break-even,
#: where a far query's gain and a near one's loss cancel). At the usual out-of-profile null of
#: one query in 40, a floor of 4 (a null of 0.1) gains 0.044 nats a diluted query (about 250
#: queries to the alarm) and breaks even at 14.5%; 3 (0.075) gains 0.08 (about 135) and breaks
#: even at 12.9%; 2 (0.05) gains 0.14 (about 80) and breaks even at 11%. An explainer's
#: coalitions of two images (7% far, in bursts) wandered up to an alarm at 2 until a part of
#: the previous query's record stopped counting as far (``ClientFeatures.update``); at 2 no
#: benign behaviour of ``bench_heldout.py`` alerts that did not at 3 (README, the far test).
FAR_FLOOR = 2.0
#: Natural queries whose nearest earlier query of their client lies beyond the isolation
#: limit (``models.steps.isolation_limits``): 1%.
ISOLATION_QUANTILE = 0.99
#: Share of its queries isolated that the isolation test tolerates of any client by default: a
#: client's own queries are no uniform draw from the reference (the simulator's ordinary
#: clients: up to 12% of 50 queries in a row); the steps test's floor.
ISOLATION_TOLERANCE = 0.05
#: Share of its queries out of profile the out-of-profile test tolerates of any client by
#: default (a noisy but genuine client's; ``models.registry``).
OOD_TOLERANCE = 0.2
#: Relative growth of every out-of-profile score under the drift a benign client may bring
#: (``drift_share``). The bench's drifted clients (another calibration or source: per-feature
#: gains 0.8-1.25 and noise; a scanner that blurs, shifts and fades) sit 1.24-1.56 times the
#: reference's median score where an ordinary client sits at 0.9-1.2.
DRIFT_INFLATION = 0.3
#: The drift share is at most this, so that the out-of-profile test keeps alternatives above
#: its null (0.93 and 0.975 at the cap). On hundreds of inputs every score sits within a fifth
#: of the 99.9th percentile and a drifted client sends most of its queries past it (83-93% on
#: a 300-input model): there the test tolerates nearly all and the far test, whose threshold
#: clears drift (``far_beyond``), carries the evidence.
DRIFT_SHARE_CAP = 0.9


@dataclass(frozen=True)
class Calibration:
    """Null rates of the rate tests and the far threshold of one reference."""

    ood_null: float
    far_null: float
    boundary_null: float
    far_threshold: float
    pseudo_clients: int
    #: How many times the reference's boundary chance (below) a benign client's rate may be.
    boundary_multiple: float = 1.0
    #: Out-of-profile scores splitting the reference into bins, and the chance of a boundary
    #: answer in each bin (one more rate than edges); none: ``boundary_null`` everywhere.
    boundary_edges: tuple[float, ...] = ()
    boundary_rates: tuple[float, ...] = ()
    #: Per answered class (the profile's class index), how much likelier a boundary answer is
    #: than its score bin says; none: 1 for every class.
    boundary_class_factors: tuple[float, ...] = ()
    #: The margin below which a boundary answer is *deep* (``models.profile.DEEP_QUANTILE``),
    #: and the share of the reference's boundary answers that are; 0: not measured.
    deep_margin: float = 0.0
    deep_share: float = 0.0
    #: The reference's own rate of structured steps (``models.steps``); 0: not measured.
    steps_null: float = 0.0
    #: Share of the reference a drift of its scores puts out of profile (``drift_share``);
    #: 0: not measured.
    drift_share: float = 0.0
    #: Out-of-profile scores splitting the reference into bins for the margin ranks, and per
    #: bin a sorted sample of its margins (``rank_tables``); none: answers get no rank.
    rank_edges: tuple[float, ...] = ()
    rank_margins: tuple[tuple[float, ...], ...] = ()
    #: Per answered class, the reference's mean margin rank (1/2 over all its answers).
    rank_class_means: tuple[float, ...] = ()
    #: How far below its classes' mean rank a benign client's mean rank may lie
    #: (``underlying_shift``).
    rank_shift: float = 0.0
    #: The most features two of the reference's records share (``models.steps.record_limits``);
    #: a query sharing more with the one before is a part of the same record. -1: not measured.
    record_shared: float = -1.0
    #: The squared code distance closer than which two of the reference's records hardly ever
    #: lie (``models.steps.record_limits``); a query closer to the one before is the same
    #: record again. -1: not measured.
    record_move: float = -1.0
    #: (rows searched, squared code distance) pairs: from that many rows of a client's
    #: reservoir on, a natural query's nearest earlier one lies farther only 1% of the time
    #: (``models.steps.isolation_limits``); none: no query is judged isolated.
    isolation: tuple[tuple[int, float], ...] = ()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """From ``as_dict``; a calibration stored before the boundary bins or the steps null has none."""
        return cls(
            ood_null=float(d["ood_null"]),
            far_null=float(d["far_null"]),
            boundary_null=float(d["boundary_null"]),
            far_threshold=float(d["far_threshold"]),
            pseudo_clients=int(d["pseudo_clients"]),
            boundary_multiple=float(d.get("boundary_multiple", 1.0)),
            boundary_edges=tuple(float(v) for v in d.get("boundary_edges", ())),
            boundary_rates=tuple(float(v) for v in d.get("boundary_rates", ())),
            boundary_class_factors=tuple(float(v) for v in d.get("boundary_class_factors", ())),
            deep_margin=float(d.get("deep_margin", 0.0)),
            deep_share=float(d.get("deep_share", 0.0)),
            steps_null=float(d.get("steps_null", 0.0)),
            drift_share=float(d.get("drift_share", 0.0)),
            rank_edges=tuple(float(v) for v in d.get("rank_edges", ())),
            rank_margins=tuple(tuple(float(v) for v in t) for t in d.get("rank_margins", ())),
            rank_class_means=tuple(float(v) for v in d.get("rank_class_means", ())),
            rank_shift=float(d.get("rank_shift", 0.0)),
            record_shared=float(d.get("record_shared", -1.0)),
            record_move=float(d.get("record_move", -1.0)),
            isolation=tuple((int(rows), float(d2)) for rows, d2 in d.get("isolation", ())),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ood_null": self.ood_null,
            "far_null": self.far_null,
            "boundary_null": self.boundary_null,
            "far_threshold": self.far_threshold,
            "pseudo_clients": float(self.pseudo_clients),
            "boundary_multiple": self.boundary_multiple,
            "boundary_edges": list(self.boundary_edges),
            "boundary_rates": list(self.boundary_rates),
            "boundary_class_factors": list(self.boundary_class_factors),
            "deep_margin": self.deep_margin,
            "deep_share": self.deep_share,
            "steps_null": self.steps_null,
            "drift_share": self.drift_share,
            "rank_edges": list(self.rank_edges),
            "rank_margins": [list(t) for t in self.rank_margins],
            "rank_class_means": list(self.rank_class_means),
            "rank_shift": self.rank_shift,
            "record_shared": self.record_shared,
            "record_move": self.record_move,
            "isolation": [[rows, d2] for rows, d2 in self.isolation],
        }

    def boundary_chance(self, scores: NDArray[np.float64]) -> NDArray[np.float64]:
        """The reference's chance of a boundary answer for inputs with these out-of-profile
        ``scores`` (noisy inputs get less confident answers, in the reference as in use)."""
        if len(self.boundary_rates) != len(self.boundary_edges) + 1:
            return np.full(len(scores), self.boundary_null)
        rates = np.asarray(self.boundary_rates, dtype=np.float64)
        return rates[np.searchsorted(np.asarray(self.boundary_edges, dtype=np.float64), scores)]

    def class_factors(self, classes: NDArray[np.int64]) -> NDArray[np.float64]:
        """``boundary_class_factors`` of each answered class index (1 for an unknown one:
        -1, or a class the reference never answered)."""
        return per_class(self.boundary_class_factors, classes, 1.0)

    def margin_ranks(
        self, scores: NDArray[np.float64], margins: NDArray[np.float64], classes: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Each answer's mid-rank in [0, 1] among the reference's margins at its distance from
        the data (out-of-profile ``scores``; NaN without scores, or without rank tables), and
        the reference's mean rank for its answered class (1/2 for an unknown one).

        Under the reference a rank is uniform: its mean is 1/2 whatever the model's margins
        look like (scores in steps, saturated, or logits), which is what lets one test of the
        mean hold on any model.
        """
        return (
            ranks_among(self.rank_edges, self.rank_margins, scores, margins),
            per_class(self.rank_class_means, classes, 0.5),
        )


def per_class(values: tuple[float, ...], classes: NDArray[np.int64], other: float) -> NDArray[np.float64]:
    """``values`` by each answered class index; ``other`` for an unknown one (-1, or a class
    the reference never answered).

    >>> per_class((0.5, 2.0), np.array([1, -1, 0, 7]), 1.0).tolist()
    [2.0, 1.0, 0.5, 1.0]
    """
    table = np.append(np.asarray(values, dtype=np.float64), other)
    classes = np.asarray(classes, dtype=np.int64)
    return table[np.where((classes >= 0) & (classes < len(table) - 1), classes, len(table) - 1)]


def ranks_among(
    edges: tuple[float, ...],
    tables: tuple[tuple[float, ...], ...],
    scores: NDArray[np.float64],
    margins: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Each margin's mid-rank in [0, 1] in the table of its score's bin (``rank_tables``);
    NaN without a margin, or without tables."""
    margins = np.asarray(margins, dtype=np.float64)
    ranks = np.full(len(margins), np.nan)
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), scores)
    for b, table in enumerate(tables):
        rows = np.flatnonzero(bins == b)
        if len(rows):
            t, m = np.asarray(table, dtype=np.float64), margins[rows]
            below = np.searchsorted(t, m, side="left") + np.searchsorted(t, m, side="right")
            ranks[rows] = below / (2.0 * len(t))
    ranks[~np.isfinite(margins)] = np.nan
    return ranks


def far_beyond(most_extreme: float, ood_threshold: float, drift: float = 0.0) -> float:
    """The far threshold past a reference whose ``most_extreme`` score is that: beyond it by as
    much again as it lies beyond ``ood_threshold``; and, where the reference's ``drift``
    share is above OOD_TOLERANCE (drift crosses the percentile more often than the
    out-of-profile test tolerates by default, so it crosses that margin too), beyond
    ``ood_threshold`` grown by DRIFT_INFLATION.

    Elsewhere the margin stays as it is: a refresh keeps out of its sample every input past
    the far threshold, and a wider one there lets sybils drifting towards noise in (the
    simulator's tabular victim: a natural-data thief hidden after two such refreshes).

    >>> far_beyond(1.04, 1.0), far_beyond(1.04, 1.0, drift=0.9)
    (1.08, 1.3)
    """
    as_much_again = 2.0 * most_extreme - ood_threshold
    if drift <= OOD_TOLERANCE:
        return as_much_again
    return max(as_much_again, (1.0 + DRIFT_INFLATION) * ood_threshold)


def lone_extreme(
    scores: NDArray[np.float64], ood_threshold: float, drift: float = 0.0
) -> tuple[float, float] | None:
    """The reference's two highest out-of-profile ``scores`` (distinct values) when the
    highest lies beyond the far threshold the rest would set (``far_beyond`` of the second),
    else None: the far threshold rests on that one input.

    Said, not acted on: one stray record of a trusted file (a sentinel, a unit error) moves
    the far threshold to twice its score (on the simulator's tabular victim, one natural row
    at three times its values among its 6,000 moved it from 1.80 to 5.24 and a uniform-random
    thief diluted 1:4 went unalerted), but leaving such an input out fired on a live warm-up
    of about 3,600 inputs too (highest 1.241, next 1.182, percentile 1.162: small references are
    sparse at the top) and two drifted benign clients alerted (docs/DETECTION_EXPERIMENTS.md,
    *Tried and not adopted*).

    >>> lone_extreme(np.array([0.5, 1.0, 1.1, 1.2, 5.0]), 1.0), lone_extreme(np.array([0.5, 1.1, 1.2]), 1.0)
    ((5.0, 1.2), None)
    """
    top = np.unique(scores[scores > ood_threshold])[::-1][:2]
    if len(top) < 2 or top[0] <= far_beyond(float(top[1]), ood_threshold, drift):
        return None
    return float(top[0]), float(top[1])


def drift_share(
    scores: NDArray[np.float64],
    threshold: float,
    spread_scores: NDArray[np.float64],
    spread_threshold: float,
    counted: NDArray[np.bool_] | None = None,
) -> float:
    """Share of the reference rows (the ``counted`` ones, default all) out of profile once
    their out-of-profile ``scores`` and ``spread_scores`` grow by DRIFT_INFLATION: what a
    benign client whose inputs drifted that far sends out of profile (module docstring), at
    most DRIFT_SHARE_CAP.

    Concentrated scores (many inputs) put far more of it over the threshold:

    >>> rng = np.random.default_rng(0)
    >>> narrow, wide = np.sqrt(rng.chisquare(8, 4000)), np.sqrt(rng.chisquare(100, 4000))
    >>> def share(s):
    ...     return drift_share(s, float(np.quantile(s, 0.999)), np.zeros(len(s)), 1.0)
    >>> round(share(narrow), 2), round(share(wide), 2)
    (0.07, 0.84)
    """
    grown = 1.0 + DRIFT_INFLATION
    out = (np.asarray(scores) * grown > threshold) | (np.asarray(spread_scores) * grown > spread_threshold)
    share = out.mean() if counted is None else out[np.asarray(counted, dtype=bool)].mean()
    return min(float(share), DRIFT_SHARE_CAP)


def calibrate(
    scores: NDArray[np.float64],
    ood_threshold: float,
    cells: NDArray[np.int64],
    *,
    owners: NDArray[Any] | None = None,
    margins: NDArray[np.float64] | None = None,
    margin_threshold: float = 0.0,
    deep_margin: float = 0.0,
    classes: NDArray[np.int64] | None = None,
    out_of_profile: NDArray[np.bool_] | None = None,
    counted: NDArray[np.bool_] | None = None,
    drift: float = 0.0,
    seed: int = 0,
) -> Calibration:
    """Null rates from the reference rows' out-of-profile ``scores``, ``cells``, answer
    ``margins`` (NaN where an answer had no scores) and answered ``classes`` (the profile's
    class index, -1 unknown), grouped by ``owners`` if given. ``out_of_profile``: the rows'
    out-of-profile indicator, when it reads more than ``scores`` beyond ``ood_threshold``
    (the profile's spread score). ``drift``: the reference's ``drift_share`` (0: none), kept
    and read by ``far_beyond``. ``counted``: the rows the live tests take evidence from
    (``models.profile.repeats`` leaves out resends and a sweep's revisits; none: all); a
    client's out-of-profile and far rates are over those rows, as the live tests count them.
    ``deep_margin``: the margin at or below which a boundary answer (below ``margin_threshold``)
    is deep; the calibration keeps it with the share of the boundary answers that are, or
    neither when it separates none from the rest.

    >>> rng = np.random.default_rng(0)
    >>> s = rng.gamma(4.0, size=4000)
    >>> c = calibrate(s, float(np.quantile(s, 0.999)), rng.integers(0, 8, 4000))
    >>> bool(c.far_threshold > s.max()), c.far_null >= FAR_FLOOR * c.ood_null, 0.001 <= c.ood_null < 0.1
    (True, True, True)
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    groups = _groups(len(scores), cells, owners, seed)
    ood = scores > ood_threshold if out_of_profile is None else np.asarray(out_of_profile, dtype=bool)
    ood_rates, far_rates = [], []
    outside = np.ones(n, dtype=bool)
    counted = np.ones(n, dtype=bool) if counted is None else np.asarray(counted, dtype=bool)
    judged = [rows[counted[rows]] for rows in groups]
    largest = sorted((len(rows) for rows in judged), reverse=True)[:RATE_MIN_CLIENTS]
    least = max(1, min(RATE_MIN_ROWS, largest[-1] if largest else 0))
    for rows, own in zip(groups, judged, strict=True):
        if len(own) < least:
            continue
        outside[rows] = False
        others_max = scores[outside].max() if outside.any() else -np.inf
        outside[rows] = True
        ood_rates.append(ood[own].mean())
        far_rates.append(float((scores[own] > far_beyond(others_max, ood_threshold, drift)).mean()))
    boundary_null, multiple = 0.0, 1.0
    edges: tuple[float, ...] = ()
    rates: tuple[float, ...] = ()
    factors: tuple[float, ...] = ()
    rank_edges: tuple[float, ...] = ()
    tables: tuple[tuple[float, ...], ...] = ()
    class_means: tuple[float, ...] = ()
    shift = deep_share = 0.0
    if margins is not None:
        m = np.asarray(margins, dtype=np.float64)
        scored = np.isfinite(m)
        if scored.any():
            on = m < margin_threshold
            boundary_null = float(on[scored].mean())
            if 0.0 < deep_margin < margin_threshold and on[scored].any():
                deep_share = float((m[scored] < deep_margin).sum() / on[scored].sum())
            edges, rates = boundary_bins(scores[scored], on[scored], ood_threshold)
            chance = Calibration(0, 0, boundary_null, 0, 0, 1.0, edges, rates).boundary_chance(scores)
            if classes is not None:
                factors = class_factors(on[scored], chance[scored], np.asarray(classes)[scored])
                chance = chance * Calibration(0, 0, 0, 0, 0, 1.0, (), (), factors).class_factors(classes)
            observed = np.array([on[rows][scored[rows]].sum() for rows in groups], dtype=np.float64)
            expected = np.array([chance[rows][scored[rows]].sum() for rows in groups], dtype=np.float64)
            multiple = (underlying_multiple if owners is None else trimmed_multiple)(observed, expected)
            rank_edges, tables = rank_tables(scores[scored], m[scored], ood_threshold)
            known = np.full(n, -1) if classes is None else np.asarray(classes, dtype=np.int64)
            ranks = ranks_among(rank_edges, tables, scores, m)
            class_means = rank_class_means(ranks, known)
            # The shift is measured on the pseudo-clients' own mean ranks, their class mixes
            # included, though the live test judges each answer against its class's mean:
            # centred on their classes too, it fell to 0.02 (digits) and 0.10 (credit) and
            # three benign clients of the bench alerted (docs/DETECTION_EXPERIMENTS.md,
            # *Tried and not adopted*).
            means = np.array([np.nanmean(ranks[rows]) if scored[rows].any() else 0.5 for rows in groups])
            counts = np.array([scored[rows].sum() for rows in groups], dtype=np.float64)
            variance = float(np.nanvar(ranks))
            shift = (underlying_shift if owners is None else trimmed_shift)(means, counts, variance)
    ood_null = max(float(np.quantile(ood_rates, NULL_QUANTILE)), float(ood[counted].mean()), 1.0 / (n + 1))
    return Calibration(
        ood_null=ood_null,
        # Benign clients noisier than any the reference kept exist (a robust warm-up trims
        # them with the thieves), and the far rates of the reference's own clients cannot
        # show them: the far null is never below FAR_FLOOR times the out-of-profile null.
        far_null=min(max(float(np.quantile(far_rates, NULL_QUANTILE)), FAR_FLOOR * ood_null), 0.5),
        boundary_null=boundary_null,
        far_threshold=far_beyond(float(scores.max()), ood_threshold, drift),
        pseudo_clients=len(groups),
        boundary_multiple=multiple,
        boundary_edges=edges,
        boundary_rates=rates,
        boundary_class_factors=factors,
        deep_margin=deep_margin if deep_share > 0.0 else 0.0,
        deep_share=deep_share,
        drift_share=drift,
        rank_edges=rank_edges,
        rank_margins=tables,
        rank_class_means=class_means,
        rank_shift=shift,
    )


def boundary_bins(
    scores: NDArray[np.float64], on: NDArray[np.bool_], ood_threshold: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Bins of the reference's out-of-profile ``scores`` (at its BIN_QUANTILES and the
    out-of-profile threshold) and the share of boundary answers (``on``) in each.

    Rates never fall with the score (farther from the data, at least as uncertain; this also
    smooths the small outer bins), and beyond the threshold, where the reference holds
    almost nothing, the rate is the highest of any bin.

    >>> s = np.linspace(0.0, 1.0, 1000)
    >>> edges, rates = boundary_bins(s, s > 0.9, 0.999)
    >>> [round(r, 2) for r in rates]
    [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    edges = score_bins(scores, ood_threshold)
    bins = np.searchsorted(np.asarray(edges), scores)
    rates, last = [], float(on.mean())
    for b in range(len(edges)):
        inside = bins == b
        if inside.sum() >= 50:  # a smaller bin keeps the rate of the bin before it
            last = float(on[inside].mean())
        rates.append(last)
    rates = list(np.maximum.accumulate(rates))
    return edges, tuple(float(r) for r in [*rates, max(rates)])


def score_bins(scores: NDArray[np.float64], ood_threshold: float) -> tuple[float, ...]:
    """Edges cutting the reference's out-of-profile ``scores`` into bins: its BIN_QUANTILES and
    the out-of-profile threshold (the boundary chance's bins, and the margin ranks')."""
    return tuple(sorted({float(q) for q in np.quantile(scores, BIN_QUANTILES)} | {float(ood_threshold)}))


def margin_quantiles(margins: NDArray[np.float64]) -> NDArray[np.float64]:
    """RANK_SAMPLE quantiles of ``margins``, each a margin the sample holds (so ties stay
    ties): one bin's rank table (``rank_tables``)."""
    return np.quantile(margins, (np.arange(RANK_SAMPLE) + 0.5) / RANK_SAMPLE, method="inverted_cdf")


def rank_tables(
    scores: NDArray[np.float64], margins: NDArray[np.float64], ood_threshold: float
) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """Bins of the reference's out-of-profile ``scores`` (``boundary_bins``'s edges) and, per
    bin, RANK_SAMPLE quantiles of its answers' ``margins`` (values the reference gave, so
    ties stay ties), against which a live answer's margin is ranked (``margin_ranks``).

    Farther from the data, answers are at least as uncertain (as the boundary chance never
    falls with the score): each bin's quantiles are at most the bin's before it, and a bin of
    fewer than 50 answers, and the one beyond the threshold, keep the table before them.

    >>> s = np.linspace(0.0, 1.0, 1000)
    >>> edges, tables = rank_tables(s, 1.0 - s, 0.999)
    >>> len(tables) == len(edges) + 1, [round(t[64], 2) for t in tables]
    (True, [0.75, 0.38, 0.18, 0.08, 0.08, 0.08, 0.08])
    """
    edges = score_bins(scores, ood_threshold)
    bins = np.searchsorted(np.asarray(edges), scores)
    tables: list[NDArray[np.float64]] = []
    for b in range(len(edges)):
        inside = margins[bins == b]
        if len(inside) >= 50:
            table = margin_quantiles(inside)
            tables.append(np.minimum(tables[-1], table) if tables else table)
        else:
            tables.append(tables[-1] if tables else margin_quantiles(margins))
    tables.append(tables[-1])
    return edges, tuple(tuple(float(v) for v in t) for t in tables)


def rank_class_means(ranks: NDArray[np.float64], classes: NDArray[np.int64]) -> tuple[float, ...]:
    """Per class index, the mean rank of the answers of that class (NaN ranks left out),
    shrunk towards 1/2 by RANK_CLASS_PRIOR answers: a hard class answers less confidently,
    and a client that asks mostly about it selects nothing.

    >>> ranks = np.r_[np.full(80, 0.2), np.full(80, 0.8)]
    >>> [round(v, 2) for v in rank_class_means(ranks, np.repeat([0, 1], 80))]
    [0.26, 0.74]
    """
    means = []
    for k in range(int(classes.max()) + 1 if len(classes) else 0):
        mine = ranks[(classes == k) & np.isfinite(ranks)]
        means.append(float((mine.sum() + 0.5 * RANK_CLASS_PRIOR) / (len(mine) + RANK_CLASS_PRIOR)))
    return tuple(means)


def underlying_shift(means: NDArray[np.float64], counts: NDArray[np.float64], variance: float) -> float:
    """How far below 1/2 the NULL_QUANTILE-lowest *underlying* mean rank of the pseudo-clients
    lies: from their observed mean ranks (``means``; not centred on their classes' means,
    which left too little room: ``calibrate``) over
    ``counts`` answers, less the sampling noise of their sizes (a rank's ``variance`` over the
    reference, divided by the count), normal tail, an upper bound over resampled pseudo-clients
    (as ``underlying_multiple``); in [0, 1/2]. Fewer than two pseudo-clients with
    RANK_MIN_ANSWERS answers show no spread at all: 1/2, a test that never fires.

    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(0.5, 0.04, 500)
    >>> observed = rng.normal(true, np.sqrt(1 / 12 / 40))
    >>> round(underlying_shift(observed, np.full(500, 40.0), 1 / 12), 2)
    0.1
    """
    used = counts >= RANK_MIN_ANSWERS
    means, counts = means[used], counts[used]
    if len(means) < 2:
        return 0.5
    picks = resamples(len(means))
    r, c = means[picks], counts[picks]
    level = (r * c).sum(axis=1) / c.sum(axis=1)
    spread = np.var(r, axis=1) - np.mean(variance / c, axis=1)
    shifts = 0.5 - level + NORMAL_QUANTILE * np.sqrt(np.maximum(spread, 0.0))
    return float(min(max(np.quantile(shifts, 0.9), RANK_MIN_SHIFT), 0.5))


def trimmed_shift(means: NDArray[np.float64], counts: NDArray[np.float64], variance: float) -> float:
    """``underlying_shift`` without the warm-up clients whose answers are less confident than a
    typical client's would be (a normal lower tail below OUTLIER_LEVEL over their number), by
    ``forward_search``: uncertainty-sampling thieves active in a
    warm-up would otherwise set the shift that hides the next one.

    >>> rng = np.random.default_rng(0)
    >>> means = np.r_[rng.normal(0.5, np.sqrt(1 / 12 / 40), 97), 0.15, 0.2, 0.18]  # three samplers
    >>> counts = np.full(100, 40.0)
    >>> round(underlying_shift(means, counts, 1 / 12), 2), round(trimmed_shift(means, counts, 1 / 12), 2)
    (0.18, 0.02)
    """
    used = counts >= RANK_MIN_ANSWERS
    means, counts = means[used], counts[used]
    noise = np.sqrt(max(variance, 1e-12) / np.maximum(counts, 1.0))  # every answer tied: no spread

    def typical(keep: NDArray[np.bool_]) -> float:
        return float((means[keep] * counts[keep]).sum() / max(counts[keep].sum(), 1.0))

    def less_sure(i: int, at: float) -> float:
        return _normal_cdf((means[i] - at) / noise[i])

    def surer(i: int, at: float) -> float:
        return 1.0 - less_sure(i, at)

    keep = forward_search(len(means), less_sure, surer, typical)
    return underlying_shift(means[keep], counts[keep], variance)


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def class_factors(
    on: NDArray[np.bool_], chance: NDArray[np.float64], classes: NDArray[np.int64]
) -> tuple[float, ...]:
    """Per class index, boundary answers observed over those the score bins expect (``on``
    against ``chance``), shrunk towards 1 by CLASS_PRIOR expected answers: a client
    concentrated on a hard class gets more boundary answers, and says nothing by it.

    >>> on = np.array([True, False, False, False] * 50 + [False] * 200)
    >>> [round(f, 2) for f in class_factors(on, np.full(400, 0.125), np.repeat([0, 1], 200))]
    [1.83, 0.17]
    """
    factors = []
    for k in range(int(classes.max()) + 1 if len(classes) else 0):
        mine = classes == k
        factors.append(float((on[mine].sum() + CLASS_PRIOR) / (chance[mine].sum() + CLASS_PRIOR)))
    return tuple(factors)


def trimmed_multiple(observed: NDArray[np.float64], expected: NDArray[np.float64]) -> float:
    """``underlying_multiple`` without the clients whose boundary answers a typical client
    would not give: a Poisson upper tail below OUTLIER_LEVEL over their number, at the kept
    clients' pooled rate.

    A forward search (``forward_search``), so that several thieves cannot shield one another:
    half is set aside, and taken back one at a time, least surprising first, while each is
    within reach of a typical kept client. Testing each against the multiple of all the others
    instead (outermost first) stops at the first thief whose fellows' answers raise that
    multiple enough to cover it: nine thieves (interpolating, stepping and random) among 129
    warm-up clients of a two-class model had put it at 4.3, against 1.1 without them. Testing
    against the kept clients' multiple (their 99th percentile) rather than their pooled rate
    asked a 40-query warm-up share to be beyond the most boundary-prone benign client at
    that level, which no thief's share is: on the project simulator's tabular model one
    boundary prober among 104 warm-up clients (9 boundary answers where 1.4 were expected)
    was kept and raised the multiple from 1.8 to 3.2. A benign client that is merely
    boundary-prone is kept: 40 queries cannot show it beyond a typical one at that level
    unless it is several times as prone.

    >>> expected = np.full(100, 2.0)
    >>> observed = np.r_[np.tile([1.0, 2.0, 3.0], 33), 30.0]  # one prober among them
    >>> round(underlying_multiple(observed, expected), 1), round(trimmed_multiple(observed, expected), 1)
    (6.7, 1.0)
    >>> expected = np.full(100, 10.0)
    >>> several = np.r_[np.tile([7.0, 10.0, 13.0], 31), np.full(7, 40.0)]  # seven samplers, 4x
    >>> round(underlying_multiple(several, expected), 1), round(trimmed_multiple(several, expected), 1)
    (3.3, 1.0)
    >>> rng = np.random.default_rng(1)  # 99 typical 40-query shares and one prober's
    >>> small, expected = np.r_[rng.poisson(2.0, 99), 9.0], np.r_[np.full(99, 2.0), 1.4]
    >>> round(underlying_multiple(small, expected), 1), round(trimmed_multiple(small, expected), 1)
    (2.9, 1.7)
    """

    def typical(keep: NDArray[np.bool_]) -> float:
        return float(observed[keep].sum() / max(expected[keep].sum(), 1e-12))

    def more(i: int, at: float) -> float:
        return poisson_tail(observed[i], at * expected[i])

    def fewer(i: int, at: float) -> float:
        return 1.0 - poisson_tail(observed[i] + 1, at * expected[i])

    keep = forward_search(len(observed), more, fewer, typical)
    return underlying_multiple(observed[keep], expected[keep])


def forward_search(
    n: int,
    upper: Callable[[int, float], float],
    lower: Callable[[int, float], float],
    typical: Callable[[NDArray[np.bool_]], float],
) -> NDArray[np.bool_]:
    """Which of ``n`` pseudo-clients a typical one could be (the mask kept): ``upper(i, at)``
    is the chance of pseudo-client ``i``'s statistic or one more suspect at the ``typical``
    level ``at`` of a set of them, ``lower(i, at)`` of its statistic or one less suspect.

    The search starts from the half nearest the level of all of them, in either direction,
    and takes the others back one at a time, least suspect first, while each is within reach
    (``upper`` at OUTLIER_LEVEL over their number) of the level of those kept. Starting from
    the least suspect half instead set the level below every typical client's where most
    pseudo-clients show nothing (a two-class model whose common class is seldom on the
    boundary: the kept half had no boundary answer at all, the level was 0 and none was taken
    back), and skewed benign clients' own answers then alerted.

    >>> keep = forward_search(5, lambda i, at: 1.0 if i < 4 else 0.0, lambda i, at: 1.0, lambda k: 1.0)
    >>> keep.tolist()
    [True, True, True, True, False]
    """
    level = OUTLIER_LEVEL / max(n, 1)
    everyone = np.ones(n, dtype=bool)
    start = typical(everyone)
    central = [min(upper(i, start), lower(i, start)) for i in range(n)]
    aside = np.argsort(central, kind="stable")[: n // 2]
    keep = everyone.copy()
    keep[aside] = False
    for i in sorted(aside.tolist(), key=lambda i: -upper(i, start)):
        if upper(i, typical(keep)) < level:
            break
        keep[i] = True
    return keep


def poisson_tail(k: float, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(``mean``).

    >>> round(poisson_tail(3, 1.0), 4), poisson_tail(0, 2.0)
    (0.0803, 1.0)
    """
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    term = total = math.exp(-mean)
    for j in range(1, int(k)):
        term *= mean / j
        total += term
    return max(0.0, 1.0 - total)


def underlying_multiple(observed: NDArray[np.float64], expected: NDArray[np.float64]) -> float:
    """The NULL_QUANTILE of the pseudo-clients' *underlying* ratio of boundary answers to
    the reference's chance, from their ``observed`` counts and ``expected`` sums: the spread
    of the observed ratios less the sampling noise of their sizes (method of moments,
    Poisson noise, normal tail), at least 1.

    The sequential test already allows for the sampling noise of a client's own queries; a
    quantile of observed ratios over 40-query pseudo-clients would add that noise a second
    time (for a 5% rate, the 99th percentile of 40 draws is 3 times it) and hide a thief
    that selects boundary queries at that rate.

    >>> rng = np.random.default_rng(0)
    >>> true = rng.uniform(0.8, 1.2, 500)
    >>> round(underlying_multiple(rng.poisson(4.0 * true).astype(float), np.full(500, 4.0)), 1)
    1.3
    """
    used = expected >= 1.0  # smaller pseudo-clients are nearly all noise
    observed, expected = observed[used], expected[used]
    if len(observed) < 2:
        return 1.0
    # A few dozen pseudo-clients estimate a spread poorly, and too low a null alarms on every
    # benign client the sample happened to miss: take an upper bound (the 90th percentile of
    # the estimate over pseudo-clients resampled with replacement).
    picks = resamples(len(observed))
    o, e = observed[picks], expected[picks]
    scale = o.sum(axis=1) / e.sum(axis=1)  # the reference's own level (1 when its chance fits)
    ratios = o / e
    spread = np.var(ratios, axis=1) - np.mean(scale[:, None] / e, axis=1)
    quantiles = scale + NORMAL_QUANTILE * np.sqrt(np.maximum(spread, 0.0))
    return max(float(np.quantile(quantiles, 0.9)), 1.0)


def resamples(n: int) -> NDArray[np.int64]:
    """BOOTSTRAP resamples (rows) of ``n`` pseudo-clients, drawn with replacement, the same
    every time (a model's calibration does not change between fits of the same reference)."""
    return np.random.default_rng(0).integers(0, n, size=(BOOTSTRAP, n))


def _groups(
    n: int, cells: NDArray[np.int64], owners: NDArray[Any] | None, seed: int
) -> list[NDArray[np.int64]]:
    """Row indices of each pseudo-client: the owners' rows, or drawn (see module docstring)."""
    if owners is not None:
        _, inverse = np.unique(np.asarray(owners), return_inverse=True)
        by_owner = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))
        return [g for g in np.split(by_owner, bounds[:-1]) if len(g)]
    rng = np.random.default_rng(seed)
    by_cell = [np.flatnonzero(cells == c) for c in np.unique(cells)]
    weights = np.array([len(g) for g in by_cell], dtype=np.float64)
    groups = []
    for _ in range(PSEUDO_CLIENTS):
        home = by_cell[rng.choice(len(by_cell), p=weights / weights.sum())]
        local = rng.choice(home, size=PSEUDO_SIZE // 2)
        anywhere = rng.integers(0, n, size=PSEUDO_SIZE - PSEUDO_SIZE // 2)
        groups.append(np.concatenate([local, anywhere]))
    return groups
