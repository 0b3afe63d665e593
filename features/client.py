"""All streaming features of one client on one model, updated one query at a time.

The per-client state is a small value with an update function (bytewax's
``(state, event) -> (state, output)``): the engine keeps, evicts, serializes and restores
it without knowing what is inside. Heavy, shared work (projection, cells, out-of-profile
scores) is done for a whole batch by the profile before the per-query updates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from querywatch.features.boundary import BoundaryShare
from querywatch.features.classes import ClassMix
from querywatch.features.coverage import CellCoverage
from querywatch.features.direction import direction_simhash
from querywatch.features.distance import QueryDistances
from querywatch.features.extraction import ExtractionEstimate, ExtractionReference
from querywatch.features.layout import reservoir_capacity
from querywatch.features.nearest import is_structured_step
from querywatch.features.ood import OutOfProfileShare
from querywatch.features.rate import QueryRate
from querywatch.features.resend import input_hashes


class Indicators(NamedTuple):
    """The yes/no evidence one query gave, plus the null chance of a boundary answer.
    ``boundary`` is None when the answer had no scores."""

    out_of_profile: bool
    step: bool
    boundary: bool | None
    exact: bool
    far: bool = False
    boundary_null: float = 0.05
    margin_rank: float | None = None
    """The answer's rank among the reference's margins (``Calibration.margin_ranks``); None
    without scores or rank tables, and for an answer the engine discounts (below)."""
    margin_rank_null: float = 0.5
    """The reference's mean rank for the answered class."""
    boundary_deep: bool = False
    """On the boundary, at or below the reference's 1st-percentile margin (``ProfileLimits.deep_margin``)."""
    boundary_deep_share: float = 0.0
    """The share of the reference's boundary answers that are deep (0: not measured)."""
    isolated: bool = False
    """In profile, yet farther from every earlier query of the client than natural queries
    lie from their nearest (``ProfileLimits.isolation``): farthest-first (k-center) selection."""


class ProfileLimits(NamedTuple):
    """What one model's profile fixes for every client's features, shared by all of them: the
    margin below which an answer is on the boundary (``ReferenceProfile.margin_threshold``),
    the most features two of the reference's records share (``Calibration.record_shared``;
    inf: not measured) and the squared code distance closer than which two of them hardly
    ever lie (``Calibration.record_move``; 0: none), and by rows a client's reservoir holds,
    the squared code distance beyond which a natural query's nearest among them lies only 1%
    of the time (``Calibration.isolation``; inf, or none: not judged); and the margin below
    which a boundary answer is deep, with the share of the reference's that are
    (``Calibration.deep_margin``, ``deep_share``; 0: not measured)."""

    margin_threshold: float
    record_shared: float = math.inf
    record_move: float = 0.0
    isolation: tuple[float, ...] = ()
    deep_margin: float = 0.0
    deep_share: float = 0.0

    @staticmethod
    def isolation_by_rows(limits: Sequence[tuple[int, float]], capacity: int) -> tuple[float, ...]:
        """``Calibration.isolation``'s bands as one limit per rows searched, 0 to ``capacity``.

        >>> ProfileLimits.isolation_by_rows([(2, 9.0), (3, 4.0)], 4)
        (inf, inf, 9.0, 4.0, 4.0)
        """
        by_rows = [math.inf] * (capacity + 1)
        for rows, d2 in limits:
            by_rows[rows:] = [d2] * (capacity + 1 - rows)
        return tuple(by_rows)


#: Every client's extraction estimate until its first refresh (at 40 distinct queries, which
#: most clients never reach), and its boundary share until its first answer with scores (a
#: model that answers with labels only gives none): one shared instance of each, never
#: written, instead of about 50 bytes each a client.
_NO_ESTIMATE = ExtractionEstimate()
_UNSCORED = BoundaryShare()
_SHARED: dict[str, object] = {"extraction": _NO_ESTIMATE, "boundary": _UNSCORED}


class ClientFeatures:
    """Feature families of one client (see the ``features`` modules for each)."""

    __slots__ = (
        "boundary",
        "classes",
        "coverage",
        "distances",
        "extraction",
        "extraction_reference",
        "limits",
        "ood",
        "rate",
    )

    def __init__(
        self,
        *,
        dim: int,
        cell_prob: NDArray[np.float64],
        expected_cells: NDArray[np.float64],
        class_prior: NDArray[np.float64],
        limits: ProfileLimits,
        seed: int,
        extraction: ExtractionReference | None = None,
    ) -> None:
        # Class counts beyond CLASS_ALLOWANCE take their bytes from the reservoir's (``features.layout``).
        capacity = reservoir_capacity(dim, len(class_prior))
        self.distances = QueryDistances(
            dim, capacity=capacity, seed=seed, isolation=limits.isolation, record_move=limits.record_move
        )
        self.coverage = CellCoverage(cell_prob, expected_cells)
        self.classes = ClassMix(class_prior)
        self.ood = OutOfProfileShare()
        self.boundary = _UNSCORED
        self.rate = QueryRate()
        self.limits = limits
        self.extraction = _NO_ESTIMATE
        self.extraction_reference = extraction

    def update(
        self,
        ts: float,
        cell: int,
        out_of_profile: bool,
        far: bool,
        code: NDArray[np.uint8],
        input_hash: int,
        class_index: int,
        margin: float,
        entropy: float,
        boundary_chance: float = 0.05,
        margin_rank: float = math.nan,
        margin_rank_mean: float = 0.5,
    ) -> Indicators:
        """Learn one query as the profile saw it: its cell, out-of-profile and far flags, 8-bit
        ``code``, the hash of its exact input (``querywatch.features.resend.input_hashes``), predicted
        ``class_index`` (-1 without a prediction), score ``margin`` and ``entropy`` (NaN
        without scores), and the reference's chance of a boundary answer at its distance from
        the data (``ReferenceProfile.view``), and the answer's margin rank and its class's
        mean rank (``Calibration.margin_ranks``); the model's ``limits`` are the client's."""
        # An explainer's samples (one record, different patches blanked) lie out of profile,
        # and farther than any reference input, sample after sample; each masks the record the
        # one before masked, and explores nothing a copy could learn from (``is_masking``).
        # Those of a record near the boundary answer near it, one after another. Asked only
        # of queries out of profile or answered on the boundary: the rest have nothing to discount.
        limits = self.limits
        masking = (out_of_profile or margin < limits.margin_threshold) and self.distances.masks_previous(code)
        # Beyond the profile the reference holds too few answers to say how confident they are
        # (its rank table there is its farthest bin's); the out-of-profile tests judge those queries.
        ranked = margin_rank == margin_rank and not out_of_profile
        exact, _, revisit, on_line, step = self.distances.update(code, input_hash, max(class_index, 0))
        if not exact and self.extraction_reference is not None:
            distinct = self.distances.reservoir.seen
            if self.extraction.due(distinct):
                if self.extraction is _NO_ESTIMATE:
                    self.extraction = ExtractionEstimate()
                self.extraction.refresh(
                    *self.distances.reservoir.sample(), self.extraction_reference, self.classes.counts
                )
        if not exact:  # a resend visits no cell anew
            self.coverage.update(cell)
        if class_index >= 0:
            self.classes.update(class_index)
        self.ood.update(out_of_profile, far)  # the shares show what was sent, revisits included
        share = self.boundary
        if share is _UNSCORED and margin == margin:  # its first scored answer (NaN: no scores)
            share = self.boundary = BoundaryShare()
        boundary = share.update(margin, entropy, limits.margin_threshold, limits.deep_margin)
        # A query that keeps more of the previous one's values than two records ever share is
        # a part of the same record (an explainer's coalition, an occlusion, a sweep's point):
        # its answer is the record's, and says nothing about how the client picks its inputs;
        # nor does where it lies: an explainer's coalitions of two images lie beyond every
        # reference input together, a burst no benign rate allows for. A prober's probes
        # around the boundary point its line search found are not parts.
        # A query closer to the one before than two records ever lie is the same record again
        # (an explainer's noisy samples of one row, LIME's): where it lies and whether its
        # answer sits on the boundary are that record's, counted once (the samples of a row
        # near the edge of the data or near the boundary leave the profile or answer on the
        # boundary together). Its rank and a far query still count: a blending thief's blends
        # lie as close to each other and the confidence test (whose floor absorbs a burst) is
        # what sees them, and a walk out of the data in short steps stays as far as it went.
        # (An exact resend's indicators reach no test: ``models.evidence``.)
        distances = self.distances
        searched = distances.probing
        part = distances.shared > limits.record_shared and not searched
        again = 0 < distances.move < limits.record_move and not searched
        # An answer served without scores has no boundary evidence but may have a rank (its
        # neighbours': ``models.labelmargin``).
        rank = margin_rank if ranked and not part else None
        # A query in profile, yet farther from all the client sent before than natural queries
        # lie from their nearest: a k-center thief picks each query farthest from its others.
        # Beyond the profile, noise or drift sets a query apart as much (the out-of-profile
        # tests judge it); a revisit, a masking, a part or a repeat of the record before is no
        # new pick.
        isolated = distances.apart and not (exact or out_of_profile or part or again or revisit or masking)
        if isolated:
            distances.isolated += 1
        if part or again:
            out_of_profile = False
        if part:
            far = False
        if again:
            boundary = None
        if distances.same_record:
            # Frames of one record near the boundary answer near it together: one answer,
            # the chain's first (``features.distance``). The shares still show every one.
            boundary = rank = None
        if revisit or masking:
            # A sweep along one line crosses the boundary or leaves the profile on its way:
            # the same move again explores nothing new; nor does masking another part of the
            # same record. A move across the line (a probe around one point,
            # ``features.distance``) lies where its point lies, but its answer is new.
            out_of_profile = far = False
            if boundary and (on_line or masking):
                boundary = False
            if on_line or masking:
                rank = None  # a sweep's answers near its record's boundary are its record's
        self.rate.update(ts)
        return Indicators(
            out_of_profile,
            step,
            boundary,
            exact,
            far,
            boundary_chance,
            rank,
            margin_rank_mean,
            bool(boundary) and margin < limits.deep_margin,
            limits.deep_share,
            isolated,
        )

    @staticmethod
    def prepare() -> None:
        """Compile (or load from the cache) the compiled inner loops now, at start-up, rather
        than inside the first batch: that takes from a fraction of a second to a few seconds.
        """
        input_hashes(np.zeros((1, 2)), 0)
        distances, code = QueryDistances(dim=2), np.zeros(2, dtype=np.uint8)
        distances.update(code, input_hash=1, label=0)
        distances.update(code, input_hash=2, label=0)  # searches the reservoir
        is_structured_step(code, code)
        direction_simhash(code, code)

    def extraction_estimate(self) -> float | None:
        """Agreement with the model a copy trained on this client's queries would reach
        (``features.extraction``); None when the profile has no labelled reference."""
        ref = self.extraction_reference
        if ref is None:
            return None
        return self.extraction.value(
            self.distances.reservoir.seen, ref, self.classes.counts, self.boundary.share
        )

    def snapshot(self) -> dict[str, float]:
        """Named feature values (units in the names' docs) for alerts, storage and plots."""
        n = max(self.ood.n, 1)
        extraction = self.extraction_estimate()
        return {
            **({} if extraction is None else {"extraction": extraction}),
            "coverage_ratio": self.coverage.ratio,
            "cells_visited": float(self.coverage.distinct),
            "cell_entropy": self.coverage.entropy,
            "cell_divergence": self.coverage.divergence,
            "ood_share": self.ood.share,
            "far_share": self.ood.far_share,
            "ood_recent": self.ood.recent,
            "distance_stat": self.distances.normality_gap,
            "near_duplicate_share": self.distances.near / n,
            "exact_resend_share": self.distances.exact / n,
            "step_share": self.distances.steps / n,
            "isolated_share": self.distances.isolated / n,
            "class_entropy": self.classes.entropy,
            "class_divergence": self.classes.divergence,
            "boundary_share": self.boundary.share,
            "deep_boundary_share": self.boundary.deep_share,
            "output_entropy": self.boundary.mean_entropy,
            "rate_per_hour": self.rate.rate_per_hour,
            "burstiness": self.rate.burstiness,
        }

    #: The feature families by name, in the order the previous release stored them.
    FAMILIES = ("distances", "coverage", "classes", "ood", "boundary", "rate", "extraction")

    def get_state(self) -> dict[str, Any]:
        """Each family's state by name: tuples, numbers, None and bytes only."""
        return {name: getattr(self, name).get_state() for name in self.FAMILIES}

    def set_state(self, state: Mapping[str, Any]) -> list[str]:
        """Restore the families named in ``state``; returns the names that keep their
        current state (absent, or stored in a shape the family no longer has)."""
        kept = []
        for name in self.FAMILIES:
            stored = state.get(name)
            if stored is None:
                kept.append(name)
                continue
            family = getattr(self, name)
            if family is _SHARED.get(name):  # shared: a client restores into its own
                family = type(family)()
                setattr(self, name, family)
            before = family.get_state()
            try:
                family.set_state(stored)
            except (ValueError, TypeError, IndexError):
                family.set_state(before)  # a failed load may have changed part of it
                kept.append(name)
        return kept


def score_summary(scores: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Top-1 minus top-2 margin and normalised entropy of a batch of score rows (NaN rows stay NaN).

    >>> m, e = score_summary(np.array([[0.5, 0.5], [1.0, 0.0]]))
    >>> m.tolist(), e.round(3).tolist()
    ([0.0, 1.0], [1.0, 0.0])
    """
    if scores.shape[1] < 2:
        nan = np.full(len(scores), math.nan)
        return nan, nan
    top = np.sort(scores, axis=1)[:, -2:]
    margin = top[:, 1] - top[:, 0]
    p = np.clip(scores, 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1) / math.log(scores.shape[1])
    return margin, ent + 0.0  # no negative zeros
