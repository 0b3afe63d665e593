"""A margin for answers without scores, from the labels of the reference's nearest inputs.

The boundary and confidence tests read each answer's top-1 minus top-2 score margin. A model
served with labels only gives none, and both tests were silent there: on the bench's credit
model with every score removed no uncertainty-sampling thief was alerted (0 of 4; AUC 0.92).
Its picks still lie where the model changes its answer, and the reference says where that is:
among the ``NEIGHBOURS`` reference inputs nearest a query, the answers of an input deep in a
class agree, and those around a boundary are mixed. So an answer's *neighbour margin* is the
share of those neighbours that gave the same answer less the share that gave the commonest
other one, mapped from -1..1 onto 0..1 (0.5: as many for the answer as for another class;
below: the answer disagrees with its neighbourhood). The reference's own margins are measured
without the input's own client (a client's resends and near copies would vote for
themselves).

On the bench's credit, digits and a two-class table, an uncertainty sampler sends 17-34% of
its answers at or below the reference's 5th-percentile neighbour margin, benign clients about
5% and drifted ones up to 10%. The confidence test ranks these margins as it ranks score
margins (its tables, class means and shift derived from the reference's); the boundary test
stays silent on them, its derived multiple too narrow for how a neighbourhood's vote moves
with a client's region (docs/DETECTION_EXPERIMENTS.md, *Tried and not adopted*).
Distances are in the profile's 8-bit codes (each feature in units of its range), to at most
``SIZE`` reference inputs.

A reference answered with scores keeps neighbours too, with rank tables of their own margins
(``LabelNeighbours.with_ranks``): a client may ask for labels only where the serving tier
offers it, and its answers are ranked there rather than left out of the confidence test.
Scored answers never compute a neighbour margin.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from querywatch.features.jit import compiled
from querywatch.models.calibration import per_class, rank_class_means, rank_tables, ranks_among

#: Reference inputs the neighbours are looked for among (a seeded sample of the labelled ones).
SIZE = 2048
#: Neighbours whose answers vote: enough that one mislabelled or odd input moves the margin by
#: a sixteenth, few enough to stay local on a few thousand reference inputs.
NEIGHBOURS = 16
#: Queries compared with the reference at once (a (rows, SIZE) block of distances).
_BLOCK = 512


@dataclass(frozen=True, eq=False)
class LabelNeighbours:
    """Labelled reference inputs (8-bit codes and class indices) that give answers without
    scores a margin (module docstring).

    >>> rng = np.random.default_rng(0)
    >>> codes = rng.integers(0, 256, size=(400, 3)).astype(np.uint8)
    >>> classes = (codes[:, 0] > 127).astype(np.int64)  # the boundary at code 127.5
    >>> ref = LabelNeighbours(codes, classes, 2)
    >>> deep, edge = np.array([[10, 50, 50], [250, 50, 50]], np.uint8), np.array([[127, 50, 50]], np.uint8)
    >>> ref.margins(deep, np.array([0, 1]))[0].tolist(), float(ref.margins(edge, np.array([0]))[0][0]) < 0.9
    ([1.0, 1.0], True)
    """

    codes: NDArray[np.uint8]
    classes: NDArray[np.int64]
    """Class index of each row (``ReferenceProfile.classes``; its length for any other class)."""
    n_classes: int
    """Class slots: the profile's classes and one for any other."""
    rank_edges: tuple[float, ...] = ()
    rank_margins: tuple[tuple[float, ...], ...] = ()
    rank_class_means: tuple[float, ...] = ()
    """Rank tables of the reference's own neighbour margins, by distance from the data, and
    each class's mean rank (``models.calibration.rank_tables``), where the reference's answers
    had scores: the few answers served without them are ranked here (``ranks``). Empty where
    the reference had none, and every answer's margin is its neighbours'."""

    @property
    def beside_scores(self) -> bool:
        """Whether the reference had scores (and these neighbours rank only the answers served
        without them), rather than every answer being ranked by its neighbours."""
        return bool(self.rank_margins)

    @classmethod
    def fit(
        cls,
        codes: NDArray[np.uint8],
        classes: NDArray[np.int64],
        n_classes: int,
        owners: NDArray[Any] | None = None,
        seed: int = 0,
    ) -> tuple[LabelNeighbours, NDArray[np.float64]] | None:
        """The neighbours (a seeded sample of at most ``SIZE`` of the labelled rows) and every
        row's own neighbour margin, its own client's rows (or, without ``owners``, itself) left
        out; None with fewer than 2 * NEIGHBOURS labelled rows or a single class among them."""
        labelled = np.flatnonzero(classes >= 0)
        if len(labelled) < 2 * NEIGHBOURS or len(np.unique(classes[labelled])) < 2:
            return None
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(labelled, min(SIZE, len(labelled)), replace=False))
        neighbours = cls(np.ascontiguousarray(codes[chosen]), classes[chosen].astype(np.int64), n_classes)
        ids = (
            np.arange(len(codes)) if owners is None else np.unique(np.asarray(owners), return_inverse=True)[1]
        )
        return neighbours, neighbours.margins(codes, classes, ids, ids[chosen])[0]

    def with_ranks(
        self,
        ood_scores: NDArray[np.float64],
        margins: NDArray[np.float64],
        classes: NDArray[np.int64],
        ood_threshold: float,
    ) -> LabelNeighbours:
        """These neighbours with the rank tables of the reference rows' own neighbour
        ``margins`` at their out-of-profile ``ood_scores``, and their ``classes``' mean ranks."""
        finite = np.isfinite(margins)
        edges, tables = rank_tables(ood_scores[finite], margins[finite], ood_threshold)
        means = rank_class_means(ranks_among(edges, tables, ood_scores, margins), classes)
        return replace(self, rank_edges=edges, rank_margins=tables, rank_class_means=means)

    def ranks(
        self, ood_scores: NDArray[np.float64], margins: NDArray[np.float64], classes: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Ranks of answers without scores (their neighbour ``margins``) among the reference's
        neighbour margins as far from the data, and their classes' mean ranks
        (``Calibration.margin_ranks``'s counterpart)."""
        ranks = ranks_among(self.rank_edges, self.rank_margins, ood_scores, margins)
        return ranks, per_class(self.rank_class_means, classes, 0.5)

    def margins(
        self,
        codes: NDArray[np.uint8],
        classes: NDArray[np.int64],
        owner_ids: NDArray[np.int64] | None = None,
        row_owner_ids: NDArray[np.int64] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Neighbour margins and normalised entropies of the neighbours' answers, for inputs
        ``codes`` answered ``classes`` (NaN for -1: no answer); rows of the same
        ``owner_ids`` as a reference row's (``row_owner_ids``) do not count it."""
        margin = np.full(len(codes), np.nan)
        entropy = np.full(len(codes), np.nan)
        answered = np.flatnonzero(classes >= 0)
        if not len(answered):
            return margin, entropy
        ref = self.codes.astype(np.float32)
        ref_norms = np.einsum("ij,ij->i", ref, ref)
        k = min(NEIGHBOURS, len(ref) - 1)
        for start in range(0, len(answered), _BLOCK):
            rows = answered[start : start + _BLOCK]
            q = codes[rows].astype(np.float32)
            d2 = np.einsum("ij,ij->i", q, q)[:, None] - 2.0 * q @ ref.T + ref_norms[None, :]
            if owner_ids is not None and row_owner_ids is not None:
                d2[owner_ids[rows][:, None] == row_owner_ids[None, :]] = np.inf
            votes = _nearest_votes(d2, self.classes, k, self.n_classes)
            total = np.maximum(votes.sum(axis=1), 1.0)
            answer = np.minimum(classes[rows], self.n_classes - 1)
            mine = votes[np.arange(len(rows)), answer]
            others = votes.copy()
            others[np.arange(len(rows)), answer] = -1.0
            margin[rows] = (1.0 + (mine - others.max(axis=1)) / total) / 2.0
            p = votes / total[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
            entropy[rows] = h / np.log(max(self.n_classes, 2)) + 0.0
        return margin, entropy


@compiled
def _nearest_votes(
    d2: NDArray[np.float32], classes: NDArray[np.int64], k: int, n_classes: int
) -> NDArray[np.float64]:
    """Per row of squared distances ``d2``, the classes of its ``k`` nearest finite columns,
    counted (a partial sort per row: numpy's ``argpartition`` took 24 of 29 µs a query)."""
    votes = np.zeros((d2.shape[0], n_classes))
    best = np.empty(k, dtype=np.float32)
    which = np.empty(k, dtype=np.int64)
    for i in range(d2.shape[0]):
        filled = 0
        for j in range(d2.shape[1]):
            d = d2[i, j]
            if not d < np.inf or (filled == k and d >= best[k - 1]):
                continue
            at = filled if filled < k else k - 1
            while at > 0 and best[at - 1] > d:
                best[at] = best[at - 1]
                which[at] = which[at - 1]
                at -= 1
            best[at] = d
            which[at] = j
            if filled < k:
                filled += 1
        for t in range(filled):
            votes[i, classes[which[t]]] += 1.0
    return votes
