"""Reference profile of one served model: what benign inputs and answers look like.

Built once from trusted reference inputs (or from the first, per-client-capped events of a
model), then shared read-only by every client's features. Only numpy arrays are kept, so a
profile scores a batch with a few matrix products and saves without pickle.

Geometry: inputs are centred and divided by one global RMS scale (per-feature scaling would
turn noise on near-constant features, such as blank image borders, into huge distances),
projected on the first principal components, and assigned to the nearest of ``K`` k-means
cells.

The out-of-profile score of an input is its distance to the nearest cell centre in the
full scaled space (in-plane distance and PCA residual together). An input is out of profile
when that score, or its *spread score*, is beyond the reference's 99.9th percentile. The
spread score is the same distance with each feature measured in units of its own spread,
floored at SPREAD_FLOOR times the typical feature's (``feature_spread``): features come in
arbitrary units (a 0/1 flag spreads three times as wide as a min-max scaled amount), and
under the one global scale the widest features hid the rest (uniform-random rows of a model
with 12 amounts and 18 flags scored below its own rows: a flag at 0.5 is nearer its mean
than a 0 or a 1 is). Neither score replaces the other: on images, per-feature units raise
the weight of near-blank pixels, whose rare lit values give the reference a heavy tail, and
shifted or faded digits then hide below it (the project simulator's ActiveThief). The far
test reads the global score alone (its threshold rests on the reference's most extreme
input, which that heavy tail would set).

A 0 (or -1, -999) in a feature whose reference values are almost never at or below 0 is a
missing value that a client filled in, and is read as one where that alone puts a row out of
profile (``ReferenceProfile.read_missing``). A value sent as missing (NaN: null or NaN in an
event) is read as the nearest cell's on the fields present (``ReferenceProfile.filled``), in
a live batch and in the reference itself.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from querywatch.features.distance import QueryDistances
from querywatch.features.extraction import ExtractionReference
from querywatch.features.resend import input_hashes
from querywatch.models.calibration import Calibration, calibrate, drift_share
from querywatch.models.extraction import fit_extraction
from querywatch.models.labelmargin import LabelNeighbours
from querywatch.models.steps import neighbour_nulls, record_limits

FloatArray = NDArray[np.float64]
FORMAT_VERSION = 1
#: Share of a reference's rows that may hold a 0 in the features where a 0 is read as a missing
#: value (``zero_missing``).
ZERO_RARE = 0.01
#: Values that pipelines send for a field they do not have: each at or below 0, so in a
#: ``zero_missing`` feature each lies where the reference's values never do.
MISSING_FILLS = (0.0, -1.0, -999.0)
#: The fills of ``MISSING_FILLS`` that no data starting at 0 comes near (``without_far_fills``).
FAR_FILLS = tuple(fill for fill in MISSING_FILLS if fill < -1.0)
#: The expected-coverage table covers this many queries; beyond it coverage has saturated.
COVERAGE_HORIZON = 20_000
#: The out-of-profile threshold is this quantile of the reference's own scores.
OOD_QUANTILE = 0.999
#: A feature's spread is taken as at least this share of the typical feature's (module docstring).
SPREAD_FLOOR = 0.25
#: A boundary answer at or below the reference's margin at this quantile is *deep*
#: (``Calibration.deep_margin``): probes and uncertainty samples crowd there.
DEEP_QUANTILE = 0.01
#: Chance of a boundary answer assumed by a profile made before calibration existed.
UNCALIBRATED_BOUNDARY = 0.25
#: Clients a warm-up left out that its profile names, at most (``ReferenceProfile.left_out``).
LEFT_OUT_LISTED = 100
#: Levels of a client's out-of-profile scores by which a warm-up and a refresh sample trim it
#: (``kept_clients``): its median, upper decile and highest.
TRIMMED_LEVELS = (0.5, 0.9, 1.0)
#: Rows of other clients among which a warm-up row's nearest is looked for (a seeded sample;
#: ``apart_distances``): at most n x APART_SAMPLE distances of APART_WIDTH coordinates at most.
APART_SAMPLE = 2048
#: Coordinates those distances are measured in: the input's own up to this width, a random
#: projection to it beyond (``apart_distances``).
APART_WIDTH = 64
#: The level of a client's distances to other clients' rows by which a warm-up trims it: its
#: upper decile (a diluted thief's stolen fifth). Its median left out benign clients whose
#: data lie apart as a whole (five of the bench's digits warm-up with the extras: a what-if
#: analyst, a resending client, ordinary ones), its highest a client with one odd row.
APART_LEVEL = 0.9
#: Share of a warm-up's spread (its global scale) at or below which the clients it trimmed
#: held the rest: the first fit measured them, and its kept clients are judged again
#: against the fit without them (``_trimmed``).
HELD_SPREAD = 0.5
#: Margins closer than this are one value (float noise of scores rounded in transit).
TIE_TOLERANCE = 1e-6
#: Classes a profile names, at most (``class_table``): with the other slot, the 256 values of
#: the byte a class index is stored in.
MAX_CLASSES = 255
#: A trusted file's inputs kept (as 8-bit codes) to match the live answers' extraction
#: validation set to, when the file has no labels (``ReferenceProfile.natural``).
NATURAL_SAMPLE = 1000


@dataclass(frozen=True)
class BatchView:
    """What a profile says about a batch of inputs (one row per input)."""

    cell: NDArray[np.int64]
    ood_score: FloatArray
    out_of_profile: NDArray[np.bool_]
    far: NDArray[np.bool_]
    quantized: NDArray[np.uint8]
    boundary_chance: FloatArray
    """The reference's chance of a boundary answer at each input's distance from the data."""
    spread_score: FloatArray
    """Spread scores (module docstring); zeros for a profile stored before them."""


class AnswerReading(NamedTuple):
    """How the evidence tests read a batch's answers (``ReferenceProfile.read_answers``)."""

    margins: FloatArray
    """The margins the boundary and confidence tests read (NaN: none)."""
    entropies: FloatArray
    ranks: FloatArray | None
    """Each answer's rank among the reference's margins as far from the data (NaN: unranked);
    None where the profile has no rank tables and no answer was ranked by its neighbours."""
    rank_means: FloatArray | None
    """The reference's mean rank for each answer's class (with ``ranks``)."""
    unscored: FloatArray | None
    """Beside scores, the neighbour margins of the answers served without them (NaN
    elsewhere); None where there are none."""


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Read-only reference of one model (see module docstring)."""

    model_id: str
    version: str
    mean: FloatArray
    scale: float
    components: FloatArray
    centroids: FloatArray
    cell_prob: FloatArray
    ood_threshold: float
    low: FloatArray
    high: FloatArray
    classes: tuple[str, ...]
    class_prior: FloatArray
    margin_threshold: float
    reference_size: int
    #: Feature vectors of reference clients (rows), for the population model; may be empty.
    population: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    #: Null rates of the evidence tests and the far threshold (``models.calibration``).
    calibration: Calibration | None = None
    #: Validation set and learning curve of the extraction estimate (None without labels).
    extraction: ExtractionReference | None = None
    #: Median out-of-profile score of the reference (NaN in profiles stored before refreshes):
    #: the drift test's centre and the most one refresh moves a cell (``models.refresh``).
    typical_score: float = math.nan
    #: ``warmup`` (fitted on a model's first events) or ``reference`` (a trusted file).
    origin: str = "reference"
    #: Where the answer-derived parts (margin threshold, boundary calibration, and the class
    #: prior and extraction reference of a file without labels) come from: ``reference`` (the
    #: fitted rows' own answers), ``pending`` (a trusted file whose answers cannot calibrate
    #: them: the engine takes them from the model's first events, ``models.answers``) or
    #: ``live`` (so taken).
    answers: str = "reference"
    #: Per-feature unit of the spread score (``feature_spread``) and that score's 99.9th
    #: percentile over the reference; empty and infinite in profiles stored before it.
    spread: FloatArray = field(default_factory=lambda: np.zeros(0))
    spread_threshold: float = math.inf
    #: Refreshes since the fit (0: as fitted); ``version`` stays the fit's, so client states carry over.
    revision: int = 0
    #: Event time of the refresh that made this revision, and why (None for a fit).
    refreshed_at: float | None = None
    refresh_reason: str | None = None
    #: Clients the fit left out of its reference (``kept_clients``: their inputs sat far from
    #: everyone else's), by id, sorted, at most LEFT_OUT_LISTED; empty for a trusted file. An
    #: analyst's first suspects: the warm-up's thieves are who it leaves out.
    left_out: tuple[str, ...] = ()
    #: 8-bit codes of up to NATURAL_SAMPLE of a trusted file's inputs, kept while the file's
    #: labels are missing: the live answers' extraction validation set is matched to them
    #: (``with_extraction``); empty otherwise.
    natural: NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.uint8))
    #: Labelled reference inputs that give a margin to answers without scores
    #: (``models.labelmargin``); None when the reference's answers had scores (or no labels).
    label_neighbours: LabelNeighbours | None = None
    #: Features where a 0 (or another of ``MISSING_FILLS``) is a missing value filled in
    #: (``zero_missing``); empty in profiles stored before it.
    zero_missing: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def cells(self) -> int:
        return int(self.centroids.shape[0])

    def required_size(self) -> int:
        """Reference inputs this profile's fit needs (``required_reference_size``)."""
        return required_reference_size(self.dim, self.cells)

    def view(self, X: FloatArray) -> BatchView:
        """Cells, out-of-profile scores and 8-bit codes of a batch ``X`` (n, dim), its
        missing values read as the nearest cell's (NaN, ``filled``) or as the reference's
        mean (a filled-in 0, ``read_missing``)."""
        X = self.filled(X)
        cell, score, spread = self._place(X)
        if self.zero_missing.any():
            X, cell, score, spread = self.read_missing(X, cell, score, spread)
        out = self._outside(score, spread)
        codes = quantize(X, self.low, self.high)
        cal = self.calibration
        far = cal.far_threshold if cal is not None else np.inf
        chance = cal.boundary_chance(score) if cal is not None else np.full(len(X), UNCALIBRATED_BOUNDARY)
        return BatchView(cell, score, out, score > far, codes, chance, spread)

    def read_answers(
        self, view: BatchView, classes: NDArray[np.int64], margins: FloatArray, entropies: FloatArray
    ) -> AnswerReading:
        """How the tests read the answers of the batch ``view`` (answered ``classes``, -1
        without an answer; score ``margins`` and ``entropies``, NaN without scores): the live
        engine and a refresh's sample alike.

        On a reference answered with labels only, every answer's margin is its neighbours'
        (``models.labelmargin``): a score margin would be ranked against tables of another
        quantity. Beside scores, an answer served without them (a client may ask for labels
        only) is ranked among the reference's own neighbour margins."""
        neighbours, cal = self.label_neighbours, self.calibration
        if neighbours is not None and not neighbours.beside_scores:
            margins, entropies = neighbours.margins(view.quantized, classes)
        ranks = means = unscored = None
        if cal is not None and cal.rank_margins:
            ranks, means = cal.margin_ranks(view.ood_score, margins, classes)
        if neighbours is not None and neighbours.beside_scores:
            rows = np.flatnonzero(np.isnan(margins) & (classes >= 0))
            if len(rows):
                if ranks is None or means is None:
                    ranks, means = np.full(len(margins), np.nan), np.full(len(margins), 0.5)
                unscored = np.full(len(margins), np.nan)
                unscored[rows] = neighbours.margins(view.quantized[rows], classes[rows])[0]
                ranks[rows], means[rows] = neighbours.ranks(
                    view.ood_score[rows], unscored[rows], classes[rows]
                )
        return AnswerReading(margins, entropies, ranks, means, unscored)

    def _place(self, X: FloatArray) -> tuple[NDArray[np.int64], FloatArray, FloatArray]:
        centred = X - self.mean
        S = centred / self.scale
        Z = S @ self.components.T
        residual = np.maximum(np.einsum("ij,ij->i", S, S) - np.einsum("ij,ij->i", Z, Z), 0.0)
        d2 = _squared_distances(Z, self.centroids)
        cell = np.argmin(d2, axis=1)
        score = np.sqrt(np.maximum(d2[np.arange(len(X)), cell], 0.0) + residual)
        spread = self.spread_scores(centred) if len(self.spread) else np.zeros(len(X))
        return cell, score, spread

    def _outside(self, score: FloatArray, spread: FloatArray) -> NDArray[np.bool_]:
        """Which placed rows lie out of profile (``_place``'s scores)."""
        return (score > self.ood_threshold) | (spread > self.spread_threshold)

    def filled(self, X: FloatArray) -> FloatArray:
        """``X`` (n, dim) with each missing value (NaN) read as the value of the cell centre
        nearest its row on the fields present (the reference's mean in a row with none): ``X``
        itself when none is missing.

        Tree models read NaN as missing, and their servers log it (as null or NaN). The
        nearest cell's value, not the feature's mean: a gap read as the mean pulls a
        synthetic row towards the centre of the data, and on the project simulator's wide
        victim a uniform-random thief that leaves a quarter of each row's fields missing
        was then never alerted (peak risk 0.22; alerted at query 40 so read), and records of
        correlated fields with one missing lay farther out than the reference's own (0.72
        of them beyond its median score, against 0.58 so read), which a refresh reads as
        drift. Clients of natural records with gaps stay quiet either way (bench credit and
        digits, 30% of the benign events with one to three fields missing: none alerted).

        >>> rng = np.random.default_rng(0)
        >>> base = rng.normal(size=(400, 1))
        >>> p = fit_profile(np.hstack([base, base, base]) + rng.normal(0, 0.05, (400, 3)),
        ...                 model_id="m", version="1", cells=8, components=2)
        >>> p.filled(np.array([[1.5, np.nan, 1.5], [np.nan] * 3]))[0, 1].round(1)
        np.float64(1.5)
        """
        missing = np.isnan(X)
        if not missing.any():
            return X
        rows = np.flatnonzero(missing.any(axis=1))
        gaps, present = missing[rows], np.where(missing[rows], 0.0, X[rows])
        centres = self.mean + self.cell_centres()
        # Squared distances to each centre over the fields present only.
        d2 = (present**2).sum(axis=1)[:, None] - 2.0 * present @ centres.T + (~gaps) @ (centres**2).T
        fill = centres[np.argmin(d2, axis=1)]
        fill[gaps.all(axis=1)] = self.mean
        out = X.copy()
        out[rows] = np.where(gaps, fill, X[rows])
        return out

    def read_missing(
        self, X: FloatArray, cell: NDArray[np.int64], score: FloatArray, spread: FloatArray
    ) -> tuple[FloatArray, NDArray[np.int64], FloatArray, FloatArray]:
        """``X`` and its placement (``_place``: cells, scores and spread scores, changed in
        place) with each missing value (one of ``MISSING_FILLS`` in a ``zero_missing``
        feature) read as a value sent as missing is (``filled``: the nearest cell's on the
        fields present), in rows with at most half of their features missing that lie out of
        profile as sent and in profile so read: only those rows are placed again.

        Clients fill a field they do not have with 0 (or -1, -999), and where the data never
        holds such a value such a record lies beyond every reference input (on the bench's
        credit model four such clients were alerted, by the far and isolation tests). Half,
        so that the fields present still place the row; a quarter, until 2026-12-06, left a
        10-input record with three fields at 0 as sent, and five of eight such clients of the
        project simulator's two-class victim alerted. A row out of profile even so is read as
        sent, and so is a row in profile as sent: the 0s a Jacobian-augmentation step clips
        to, read as missing, broke its steps and lost the simulator's diluted JbDA thieves
        (docs/DETECTION_EXPERIMENTS.md, *Tried and not adopted*)."""
        missing = np.isin(X, MISSING_FILLS) & self.zero_missing
        count = missing.sum(axis=1)
        rows = np.flatnonzero((count > 0) & (count <= max(1, self.dim // 2)) & self._outside(score, spread))
        if not len(rows):
            return X, cell, score, spread
        filled = self.filled(np.where(missing[rows], np.nan, X[rows]))
        placed = self._place(filled)
        read = ~self._outside(placed[1], placed[2])
        if not read.any():
            return X, cell, score, spread
        rows = rows[read]
        X = X.copy()
        X[rows] = filled[read]
        for column, again in zip((cell, score, spread), placed, strict=True):
            column[rows] = again[read]
        return X, cell, score, spread

    def cell_centres(self) -> FloatArray:
        """The cells' centres in input units, less the reference's mean (they lie in the
        principal plane): where ``spread_scores`` measures from and ``filled`` reads gaps."""
        return np.asarray(self.scale * (self.centroids @ self.components), dtype=np.float64)

    def spread_scores(self, centred: FloatArray) -> FloatArray:
        """Spread scores of centred inputs (module docstring): the distance to the nearest
        cell centre (in input space: they lie in the principal plane) in ``spread`` units."""
        centres = self.cell_centres() / self.spread
        nearest = _squared_distances(centred / self.spread, centres).min(axis=1)
        return np.asarray(np.sqrt(np.maximum(nearest, 0.0)), dtype=np.float64)

    def expected_cells(self) -> FloatArray:
        """Expected distinct cells after n = 1..COVERAGE_HORIZON draws from the reference:
        sum_k 1 - (1 - p_k)^n."""
        n = np.arange(1, COVERAGE_HORIZON + 1, dtype=np.float64)[:, None]
        return np.asarray((1.0 - (1.0 - self.cell_prob[None, :]) ** n).sum(axis=1), dtype=np.float64)

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """Serialize as an ``.npz`` archive (no pickle: profiles may come from elsewhere)."""
        header = {
            "format": FORMAT_VERSION,
            "model_id": self.model_id,
            "version": self.version,
            "scale": self.scale,
            "ood_threshold": self.ood_threshold,
            "spread_threshold": None if math.isinf(self.spread_threshold) else self.spread_threshold,
            "classes": list(self.classes),
            "margin_threshold": self.margin_threshold,
            "reference_size": self.reference_size,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
            "typical_score": None if math.isnan(self.typical_score) else self.typical_score,
            "origin": self.origin,
            "answers": self.answers,
            "revision": self.revision,
            "refreshed_at": self.refreshed_at,
            "refresh_reason": self.refresh_reason,
            "left_out": list(self.left_out),
        }
        extra: dict[str, Any] = {}
        if self.extraction is not None:
            e = self.extraction
            header["extraction"] = {"classes": e.classes}
            extra = {
                "extraction_codes": e.codes,
                "extraction_labels": e.labels,
                "extraction_curve": np.vstack([e.curve_n, e.curve_agreement]),
                "extraction_log_proba": e.log_proba,
                "extraction_prior": e.prior,
                "extraction_pool_codes": e.pool_codes,
                "extraction_pool_labels": e.pool_labels,
            }
        if self.label_neighbours is not None:
            n = self.label_neighbours
            header["label_neighbours"] = {
                "classes": n.n_classes,
                "rank_edges": list(n.rank_edges),
                "rank_margins": [list(table) for table in n.rank_margins],
                "rank_class_means": list(n.rank_class_means),
            }
            extra |= {"label_codes": n.codes, "label_classes": n.classes}
        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            mean=self.mean,
            components=self.components,
            centroids=self.centroids,
            cell_prob=self.cell_prob,
            low=self.low,
            high=self.high,
            class_prior=self.class_prior,
            population=self.population,
            spread=self.spread,
            natural=self.natural,
            zero_missing=self.zero_missing,
            **extra,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        """Load a profile written by :meth:`to_bytes`; ``ValueError`` if it is not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                header: dict[str, Any] = json.loads(bytes(z["header"]).decode())
                raw = {k: np.asarray(z[k]) for k in z.files if k != "header"}
                natural = raw.pop("natural", np.zeros((0, 0))).astype(np.uint8)
                zero_missing = raw.pop("zero_missing", np.zeros(0)).astype(bool)
                label_codes, label_classes = raw.pop("label_codes", None), raw.pop("label_classes", None)
                label_neighbours = None
                if header.get("label_neighbours") and label_codes is not None and label_classes is not None:
                    tables = header["label_neighbours"]
                    label_neighbours = LabelNeighbours(
                        label_codes.astype(np.uint8),
                        label_classes.astype(np.int64),
                        int(tables["classes"]),
                        tuple(float(v) for v in tables.get("rank_edges", ())),
                        tuple(tuple(float(v) for v in t) for t in tables.get("rank_margins", ())),
                        tuple(float(v) for v in tables.get("rank_class_means", ())),
                    )
                arrays = {k: v.astype(np.float64) for k, v in raw.items() if not k.startswith("extraction_")}
                extraction = None
                # A profile stored before the estimate weighed class mixes has no copy's
                # log-probabilities: it has no estimate until the model's next fit.
                if header.get("extraction") and "extraction_log_proba" in raw:
                    extraction = ExtractionReference(
                        codes=raw["extraction_codes"].astype(np.uint8),
                        labels=raw["extraction_labels"].astype(np.uint8),
                        classes=int(header["extraction"]["classes"]),
                        curve_n=raw["extraction_curve"][0].astype(np.float64),
                        curve_agreement=raw["extraction_curve"][1].astype(np.float64),
                        log_proba=raw["extraction_log_proba"].astype(np.float32),
                        prior=raw["extraction_prior"].astype(np.float64),
                        pool_codes=raw["extraction_pool_codes"].astype(np.uint8),
                        pool_labels=raw["extraction_pool_labels"].astype(np.uint8),
                    )
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"not a querywatch profile: {exc}") from None
        if header.get("format") != FORMAT_VERSION:
            raise ValueError(f"profile format {header.get('format')!r} is not {FORMAT_VERSION}")
        return cls(
            model_id=header["model_id"],
            version=header["version"],
            scale=float(header["scale"]),
            ood_threshold=float(header["ood_threshold"]),
            spread_threshold=float(header.get("spread_threshold") or math.inf),
            classes=tuple(header["classes"]),
            margin_threshold=float(header["margin_threshold"]),
            reference_size=int(header["reference_size"]),
            calibration=Calibration.from_dict(header["calibration"]) if header.get("calibration") else None,
            extraction=extraction,
            typical_score=math.nan if header.get("typical_score") is None else float(header["typical_score"]),
            origin=str(header.get("origin", "reference")),
            answers=str(header.get("answers", "reference")),
            revision=int(header.get("revision", 0)),
            refreshed_at=None if header.get("refreshed_at") is None else float(header["refreshed_at"]),
            refresh_reason=header.get("refresh_reason"),
            left_out=tuple(header.get("left_out", ())),
            natural=natural,
            label_neighbours=label_neighbours,
            zero_missing=zero_missing,
            **arrays,
        )


def _squared_distances(A: FloatArray, B: FloatArray) -> FloatArray:
    """Squared Euclidean distance of every row of ``A`` to every row of ``B``."""
    return np.asarray(
        np.einsum("ij,ij->i", A, A)[:, None] - 2.0 * A @ B.T + np.einsum("ij,ij->i", B, B)[None, :],
        dtype=np.float64,
    )


def required_reference_size(dim: int, cells: int, ood_quantile: float = OOD_QUANTILE) -> int:
    """How many reference inputs a profile of a ``dim``-input model with ``cells`` cells needs:
    30 per cell (k-means centres and the cell probabilities behind the coverage null), 20 per
    input dimension (the principal axes of a ``dim`` x ``dim`` scatter matrix), and 5 beyond the
    out-of-profile quantile (that threshold is estimated from the inputs above it).

    >>> required_reference_size(64, 64), required_reference_size(20, 64, ood_quantile=0.99)
    (5000, 1920)
    """
    return max(30 * cells, 20 * dim, math.ceil(5.0 / (1.0 - ood_quantile) - 1e-9))


def fit_profile(
    X: FloatArray,
    *,
    model_id: str,
    version: str,
    owners: NDArray[Any] | None = None,
    labels: list[object] | None = None,
    margins: FloatArray | None = None,
    cells: int = 64,
    components: int | None = 16,
    ood_quantile: float = OOD_QUANTILE,
    seed: int = 0,
) -> ReferenceProfile:
    """Fit a profile on reference inputs ``X`` (n, dim).

    ``owners`` (one client id per row) enables robust trimming: clients whose median
    out-of-profile score is far above the other clients' (median + 5 MAD of the per-client
    medians) are dropped and the profile is fitted again, so that a few thieves in a live
    warm-up do not become part of "normal". ``labels`` and ``margins`` (top-1 minus top-2
    score) give the class prior and the boundary reference.

    >>> rng = np.random.default_rng(0)
    >>> p = fit_profile(rng.normal(size=(500, 8)), model_id="m", version="1", cells=4, components=3)
    >>> (p.dim, p.cells, round(float(p.view(rng.normal(size=(2000, 8))).out_of_profile.mean()), 2))
    (8, 4, 0.01)
    """
    # One thread: k-means sums its points in per-thread chunks, so with more threads the
    # centres (and every cell) would depend on the machine's core count; and a one-off fit of
    # a few thousand points gains nothing from threads, which spin on cores others need
    # (measured: 0.3 s of CPU instead of 1.0-1.3 s for the bench's digits warm-up).
    with threadpool_limits(limits=1):
        return _fit_profile(
            X, model_id, version, owners, labels, margins, cells, components, ood_quantile, seed
        )


def _fit_profile(
    X: FloatArray,
    model_id: str,
    version: str,
    owners: NDArray[Any] | None,
    labels: list[object] | None,
    margins: FloatArray | None,
    cells: int,
    components: int | None,
    ood_quantile: float,
    seed: int,
) -> ReferenceProfile:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < max(2 * cells, 10):
        raise ValueError(f"need at least {max(2 * cells, 10)} reference inputs, got {len(X)}")
    missing = np.isnan(X)
    if missing.any():
        # Missing values (NaN) read as their feature's mean for a first fit, then as that
        # fit's nearest cell's, as live rows are (``ReferenceProfile.filled``).
        args = (labels, margins, cells, components, ood_quantile, seed)
        first = _fit_profile(feature_means_filled(X, missing), model_id, version, owners, *args)
        return _fit_profile(first.filled(X), model_id, version, owners, *args)
    X = without_far_fills(X)
    # Two distinct rows a cell at least: 64 cells on a warm-up of 50 distinct inputs put
    # every one at a centre, the thresholds near 1e-8, and every client's queries "farther
    # than any reference input".
    cells = max(2, min(cells, len(np.unique(input_hashes(np.ascontiguousarray(X), 0))) // 2))
    repeated = unanswered = None
    if owners is not None:
        owners = np.asarray(owners)
        repeated_rows = repeats(X, owners)
        repeated, unanswered = repeated_rows.where, repeated_rows.answer
        if margins is not None:
            margins = np.where(unanswered, np.nan, np.asarray(margins, dtype=np.float64))
    if labels is not None and (margins is None or (owners is not None and says_nothing(margins))):
        # Labels only, or live answers saturated (a one-hot answer is a label): the answers'
        # margins come from the reference's labels (``_fit``). A trusted file's saturated
        # answers wait for live ones instead (below).
        margins = None

    def fit(keep: NDArray[np.bool_]) -> ReferenceProfile:
        """The profile of the ``keep`` rows; everything else is the same for both fits."""
        return _fit(
            X,
            keep,
            model_id,
            version,
            labels,
            margins,
            cells,
            components,
            ood_quantile,
            seed,
            owners,
            repeated,
            unanswered,
        )

    keep = np.ones(len(X), dtype=bool)
    profile = fit(keep)
    if owners is not None:
        keep, profile = _trimmed(profile, X, owners, seed, max(2 * cells, 10), fit)
        if not keep.all():
            left_out = sorted({str(owner) for owner in owners[~keep].tolist()})
            profile = replace(profile, left_out=tuple(left_out[:LEFT_OUT_LISTED]))
    elif profile.margin_threshold == 0.0 and margins is not None and np.isfinite(margins).any():
        # Saturated answers (a model's on its own training data) cannot calibrate the
        # boundary; live answers will (``models.answers``).
        profile = replace(profile, answers="pending")
    profile = with_extraction(profile, X, keep, labels, seed)
    if profile.extraction is None and owners is None:
        # A trusted file without labels: live answers will label a validation set, matched
        # to these rows so that it stands for the model's data (``with_extraction``).
        sample = np.random.default_rng(seed).permutation(len(X))[:NATURAL_SAMPLE]
        profile = replace(profile, natural=quantize(X[np.sort(sample)], profile.low, profile.high))
    return profile


def _trimmed(
    profile: ReferenceProfile,
    X: FloatArray,
    owners: NDArray[Any],
    seed: int,
    least: int,
    fit: Callable[[NDArray[np.bool_]], ReferenceProfile],
) -> tuple[NDArray[np.bool_], ReferenceProfile]:
    """The rows a warm-up keeps and their profile, from ``profile`` (its fit on every row):
    its clients judged by ``kept_clients`` against that fit, and the fit without those it
    trims (every row and ``profile`` itself when it trims none, or leaves fewer than
    ``least`` rows).

    Where the trimmed clients held most of the warm-up's spread (the fit without them has
    at most ``HELD_SPREAD`` of its scale), the kept ones are judged again against the fit
    without them, and those it trims are left out too: rows of values a thousand times the
    data's (a range-stretching poison, a unit error) set the first fit's scale and principal
    axes, every other client then looked alike, and the clients a warm-up leaves out
    otherwise stayed in. Ten accounts of 40 such rows among the first events of the bench's
    digits trace kept one of its uniform-random thieves in the profile, and all three went
    unalerted. On a warm-up without them the first fit measures its clients fairly, and a
    second round, judging the rest against a fit already cleaned, trims ordinary clients
    too: it is not run there."""

    def judged(fitted: ReferenceProfile, rows: NDArray[np.int64] | slice) -> NDArray[np.bool_]:
        """Which of ``rows`` (all of them: a slice, no copy) ``kept_clients`` keeps against
        ``fitted``."""
        return kept_clients(
            fitted.view(X[rows]), owners[rows], apart_distances(fitted, X[rows], owners[rows], seed)
        )

    keep = judged(profile, slice(None))
    if keep.all() or keep.sum() < least:
        return np.ones(len(X), dtype=bool), profile
    trimmed = fit(keep)
    if trimmed.scale > HELD_SPREAD * profile.scale:
        return keep, trimmed
    rows = np.flatnonzero(keep)
    again = judged(trimmed, rows)
    if again.all() or again.sum() < least:
        return keep, trimmed
    keep[rows[~again]] = False
    return keep, fit(keep)


def kept_clients(view: BatchView, owners: NDArray[Any], apart: FloatArray | None = None) -> NDArray[np.bool_]:
    """Rows of the clients a warm-up keeps: not outlying (``outlying_clients``) by the
    median of their out-of-profile or their spread scores (a uniform-random thief among a
    model's amounts and flags is outlying by the second only), nor by the upper decile or
    the highest of their out-of-profile scores, nor (given ``apart``, ``apart_distances``)
    by the upper decile of their rows' distances to other clients' rows (APART_LEVEL), and
    not with most of their inputs out of profile.

    The median misses a thief that sends four natural queries to each stolen one; it sets
    the out-of-profile threshold all the same, since a warm-up's 99.9th percentile is its
    handful of highest rows (of 1,160 rows, the second). On the project's simulator, two to
    six such thieves among 25 users raised the threshold by half or more: on digits they
    then went unalerted or alerted after 934-2,546 queries (126 without them; their upper
    decile stands out), and on the tabular model half of four or six went unalerted (only
    a few of each one's rows, its highest, stand out). Trimmed by all three, both profiles
    are the ones fitted without the thieves. Not the spread scores' upper levels:
    on images near-blank pixels give benign clients heavy tails there (on the bench's
    digits a resending client stood out by them, and its going moved every cell).

    Scores are measured against a profile fitted with the thieves in it, whose cells move
    towards their rows: on the simulator's two-class model (ten inputs) four such thieves'
    highest scores stood among the users' (1.15-1.71 against up to 1.17) and none was left
    out; the out-of-profile threshold rose from 1.13 to 1.68 and two of the four were never
    alerted. How far a row lies from every *other* client's rows does not move with the
    fit: their random rows lie 2-5 times farther than any user's, on all four victims.
    """
    _, inverse = np.unique(owners, return_inverse=True)
    mostly_out = np.bincount(inverse, weights=view.out_of_profile) > 0.5 * np.bincount(inverse)
    outlying = outlying_clients(view.ood_score, owners, TRIMMED_LEVELS) | outlying_clients(
        view.spread_score, owners
    )
    if apart is not None:
        outlying |= outlying_clients(apart, owners, (APART_LEVEL,))
    return np.asarray(~outlying & ~mostly_out[inverse], dtype=np.bool_)


def apart_distances(
    profile: ReferenceProfile, X: FloatArray, owners: NDArray[Any], seed: int = 0
) -> FloatArray:
    """Each row's distance to the nearest row of another client, among a seeded sample of at
    most APART_SAMPLE rows, on the inputs centred and divided by ``profile``'s scale (a seeded
    random projection of them to APART_WIDTH coordinates on a wider input, which keeps each
    distance within about a fifth). A row no other client's row lies near is one the others
    never send: a thief's synthetic query among natural ones. 0 for every row of a lone client.

    Not in the principal plane with the distance off it as one coordinate, the out-of-profile
    score's geometry: two random rows differ off the plane by far more than their distances'
    difference, and with ten thieves among 25 users each thief's random rows found another
    thief's near in that reduction (five of ten stayed in the digits fit).

    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(200, 4)), rng.normal(size=(5, 4)) + 8.0])
    >>> owners = np.array([i % 10 for i in range(200)] + [99] * 5)
    >>> p = fit_profile(X[:200], model_id="m", version="1", cells=4, components=3)
    >>> d = apart_distances(p, X, owners)
    >>> bool(d[200:].min() > 3 * np.quantile(d[:200], 0.99))
    True
    """
    rng = np.random.default_rng(seed)
    P = (np.asarray(X, dtype=np.float64) - profile.mean) / profile.scale
    if P.shape[1] > APART_WIDTH:
        P = P @ (rng.normal(size=(P.shape[1], APART_WIDTH)) / math.sqrt(APART_WIDTH))
    owners = np.asarray(owners)
    sample = np.arange(len(P))
    if len(P) > APART_SAMPLE:
        sample = np.sort(rng.choice(len(P), APART_SAMPLE, replace=False))
    anchors, anchor_owners = P[sample], owners[sample]
    nearest = np.zeros(len(P))
    for start in range(0, len(P), 512):
        d2 = _squared_distances(P[start : start + 512], anchors)
        d2[owners[start : start + 512, None] == anchor_owners[None, :]] = np.inf
        nearest[start : start + 512] = d2.min(axis=1)
    nearest[~np.isfinite(nearest)] = 0.0
    return np.asarray(np.sqrt(np.maximum(nearest, 0.0)), dtype=np.float64)


def outlying_clients(
    scores: FloatArray, owners: NDArray[Any], quantiles: tuple[float, ...] = (0.5,)
) -> NDArray[np.bool_]:
    """Rows of clients one of whose ``quantiles`` of out-of-profile scores (their median by
    default) is above the median + 5 MAD of every client's same quantile: the robust trimming
    of a warm-up and of a refresh sample.

    >>> owners = np.array(list("aaaaabbbbbccccc"))
    >>> scores = np.array([1.0, 1.1, 0.9, 1.0, 1.0] * 2 + [1.0, 0.9, 1.1, 1.0, 9.0])
    >>> outlying_clients(scores, owners).any(), outlying_clients(scores, owners, (0.5, 0.9))[-5:].all()
    (np.False_, np.True_)
    """
    _, inverse = np.unique(owners, return_inverse=True)
    # Every client's quantiles at once (numpy's linear interpolation): its scores sorted, in
    # one run per client, read at each quantile of the way through the run.
    ordered = scores[np.lexsort((scores, inverse))]
    counts = np.bincount(inverse)
    ends = np.cumsum(counts)
    outlying = np.zeros(len(counts), dtype=bool)
    for quantile in quantiles:
        at = ends - counts + quantile * (counts - 1)
        below = np.floor(at).astype(np.int64)
        above = np.minimum(below + 1, ends - 1)
        levels = ordered[below] + (at - below) * (ordered[above] - ordered[below])
        centre = np.median(levels)
        spread = 1.4826 * np.median(np.abs(levels - centre)) + 1e-12
        outlying |= levels > centre + 5.0 * spread
    return np.asarray(outlying[inverse], dtype=np.bool_)


def quantize(X: FloatArray, low: FloatArray, high: FloatArray) -> NDArray[np.uint8]:
    """8-bit codes of ``X``: each feature's ``low``..``high`` onto 0..255 (clipped; a constant
    feature is 0).

    >>> quantize(np.array([[0.0, 5.0], [1.0, 5.0]]), np.array([0.0, 5.0]), np.array([1.0, 5.0])).tolist()
    [[0, 0], [255, 0]]
    """
    span = np.where(high > low, high - low, 1.0)
    return np.clip(np.rint((X - low) / span * 255.0), 0, 255).astype(np.uint8)


class Repeats(NamedTuple):
    """Rows whose place (``where``) and whose answer (``answer``) the live tests take no
    evidence from (``repeats``)."""

    where: NDArray[np.bool_]
    answer: NDArray[np.bool_]


def repeats(X: FloatArray, owners: NDArray[Any]) -> Repeats:
    """Rows the live tests take no evidence from, each owner's rows in order: where a row
    lies (exact resends of an earlier row, and rows that go again along a line their owner
    has been sweeping, ``features.distance``), and its answer (resends, and those revisits
    that move along the line, not across it). Not maskings (``ClientFeatures.update``),
    which the live tests discount only out of profile or answered on the boundary, a score
    and a margin threshold this profile's fit has yet to make. Nor a chain's later answers,
    which the live boundary test leaves to the chain's first (``features.distance``, *same
    record*): a record's near copies answer as it does, on the boundary or off it, so they
    move the rate's estimate by noise, not one way (leaving them out moved the simulator's
    tabular warm-up so that one of its five boundary probers went unalerted). The
    reference's nulls must not count the others: an analyst sweeping in a warm-up would
    raise the boundary null, and so would
    a client resending one input that gets a boundary answer (a retrying client's four copies
    of one answer where 0.4 were expected are no benign rate: the live test sees one query);
    a client resending one input beyond the profile would raise the out-of-profile and far
    nulls the same way.

    >>> line = np.linspace(0.0, 1.0, 12)[:, None] * np.ones((1, 6)) * 0.2
    >>> [int(m.sum()) > 0 for m in repeats(line, np.zeros(12))], int(repeats(line, np.arange(12)).where.sum())
    ([True, True], 0)
    >>> [int(m.sum()) for m in repeats(np.ones((3, 6)), np.zeros(3))]  # two resends of the first row
    [2, 2]
    """
    codes = quantize(X, X.min(axis=0), X.max(axis=0))  # as the profile fitted on X codes them
    hashes = input_hashes(np.ascontiguousarray(X, dtype=np.float64), 0)
    where = np.zeros(len(X), dtype=bool)
    answer = np.zeros(len(X), dtype=bool)
    clients: dict[Any, QueryDistances] = {}
    for i, owner in enumerate(owners.tolist()):
        distances = clients.get(owner)
        if distances is None:
            distances = clients[owner] = QueryDistances(X.shape[1])
        exact, _, revisit, on_line, _ = distances.update(codes[i], int(hashes[i]), 0)
        where[i] = exact or revisit
        answer[i] = exact or on_line
    return Repeats(where, answer)


def _fit(
    X: FloatArray,
    keep: NDArray[np.bool_],
    model_id: str,
    version: str,
    labels: list[object] | None,
    margins: FloatArray | None,
    cells: int,
    n_components: int | None,
    ood_quantile: float,
    seed: int,
    owners: NDArray[Any] | None,
    repeated: NDArray[np.bool_] | None = None,
    unanswered: NDArray[np.bool_] | None = None,
) -> ReferenceProfile:
    R = X[keep]
    # Codes span every reference row's values, trimmed rows' too (thieves step beyond the
    # data, and a step clipped at the range's end is no step), that lie within one span of
    # the kept rows': a trimmed client's 1e6 in every feature, among a warm-up's first
    # events, squeezed the data into a few codes and hid every digits T-RND thief. A feature
    # the kept rows hold constant has no values to squeeze, and keeps every row's.
    low, high = R.min(axis=0), R.max(axis=0)
    span = np.where(high > low, high - low, np.inf)
    reached = (low - span <= X) & (high + span >= X)
    mean = R.mean(axis=0)
    centred = R - mean
    scale = float(np.sqrt(np.mean(np.sum(centred**2, axis=1)))) or 1.0
    S = centred / scale
    k = min(n_components or S.shape[1], S.shape[1])
    # Principal axes from the (d, d) scatter matrix: a 64x64 eigenproblem, not an SVD of the data.
    _, vectors = np.linalg.eigh(S.T @ S)
    comps = np.ascontiguousarray(vectors[:, ::-1][:, :k].T)
    Z = S @ comps.T
    # k-means on at most 100 points per cell (plenty for the centres), then every point assigned.
    rng = np.random.default_rng(seed)
    sample = Z if len(Z) <= 100 * cells else Z[rng.choice(len(Z), 100 * cells, replace=False)]
    km = KMeans(n_clusters=cells, random_state=seed, n_init=1, max_iter=100).fit(sample)
    centres = km.cluster_centers_.astype(np.float64)
    assigned = np.argmin(_squared_distances(Z, centres), axis=1)
    counts = np.bincount(assigned, minlength=cells).astype(np.float64)
    cell_prob = (counts + 0.5) / (counts.sum() + 0.5 * cells)
    names, prior = class_table(labels, keep)
    draft = ReferenceProfile(
        model_id=model_id,
        version=version,
        mean=mean,
        scale=scale,
        spread=feature_spread(centred),
        components=comps,
        centroids=centres,
        cell_prob=cell_prob,
        ood_threshold=np.inf,
        low=np.where(reached, X, np.inf).min(axis=0),
        high=np.where(reached, X, -np.inf).max(axis=0),
        classes=names,
        class_prior=prior,
        margin_threshold=0.0,
        reference_size=len(R),
        zero_missing=zero_missing(R),
    )
    view = draft.view(R)
    threshold = float(np.quantile(view.ood_score, ood_quantile))
    spread_threshold = float(np.quantile(view.spread_score, ood_quantile))
    counted = None if repeated is None else ~repeated[keep]
    kept_owners = None if owners is None else owners[keep]
    classes = None if labels is None else class_indices(labels, keep, names)
    kept_margins = None if margins is None else np.asarray(margins, dtype=np.float64)[keep]
    label_neighbours = None
    if classes is not None:
        label_neighbours, kept_margins = answer_neighbours(
            view.quantized,
            view.ood_score,
            kept_margins,
            classes,
            len(prior),
            threshold,
            owners=kept_owners,
            unanswered=None if unanswered is None else unanswered[keep],
            seed=seed,
        )
    margin_threshold, deep_margin = score_thresholds(kept_margins, label_neighbours)
    calibration = calibrate(
        view.ood_score,
        threshold,
        view.cell,
        out_of_profile=(view.ood_score > threshold) | (view.spread_score > spread_threshold),
        owners=kept_owners,
        counted=counted,
        margins=kept_margins,
        margin_threshold=margin_threshold,
        deep_margin=deep_margin,
        classes=classes,
        drift=drift_share(view.ood_score, threshold, view.spread_score, spread_threshold, counted=counted),
        seed=seed,
    )
    limits = record_limits(view.quantized, owners=kept_owners, seed=seed)
    neighbours = neighbour_nulls(view.quantized, owners=kept_owners, seed=seed, classes=len(prior))
    calibration = replace(
        calibration,
        steps_null=neighbours.steps,
        record_shared=limits.shared,
        record_move=limits.move,
        isolation=neighbours.isolation,
    )
    return replace(
        draft,
        ood_threshold=threshold,
        spread_threshold=spread_threshold,
        margin_threshold=margin_threshold,
        calibration=calibration,
        label_neighbours=label_neighbours,
        typical_score=float(np.median(view.ood_score)),
    )


def answer_neighbours(
    codes: NDArray[np.uint8],
    ood_scores: FloatArray,
    margins: FloatArray | None,
    classes: NDArray[np.int64],
    n_classes: int,
    ood_threshold: float,
    *,
    owners: NDArray[Any] | None,
    unanswered: NDArray[np.bool_] | None,
    seed: int,
) -> tuple[LabelNeighbours | None, FloatArray | None]:
    """The neighbours (``models.labelmargin``) of reference rows (8-bit ``codes``,
    out-of-profile ``ood_scores``, answered ``classes``, of ``owners``) and the margins the
    calibration reads. Answers with score ``margins``: those margins, and neighbours with rank
    tables of the rows' own neighbour margins, where a client served labels only (a serving
    option it may ask for) is ranked rather than left out of the confidence test. Labels only
    (``margins`` None): the rows' own neighbour margins, which every answer is then ranked by.
    ``unanswered`` rows (resends, a sweep's revisits) vote for nothing. No neighbours, and the
    margins as given, without two labelled classes."""
    fitted = LabelNeighbours.fit(codes, classes, n_classes, owners=owners, seed=seed)
    if fitted is None:
        return None, margins
    neighbours, own = fitted
    if unanswered is not None:
        own = np.where(unanswered, np.nan, own)
    if margins is None:
        return neighbours, own
    return neighbours.with_ranks(ood_scores, own, classes, ood_threshold), margins


def score_thresholds(margins: FloatArray | None, neighbours: LabelNeighbours | None) -> tuple[float, float]:
    """The boundary and deep-boundary margins of the reference's answers (``boundary_margin``);
    0 for both (the boundary test silent) without scores, or where the margins are the
    neighbours' (``LabelNeighbours.beside_scores`` false): there the boundary test's derived
    multiple is too narrow for how a neighbourhood's vote moves with a client's region."""
    if margins is None or (neighbours is not None and not neighbours.beside_scores):
        return 0.0, 0.0
    scored = margins[np.isfinite(margins)]
    return boundary_margin(scored), boundary_margin(scored, DEEP_QUANTILE)


def feature_means_filled(X: FloatArray, missing: NDArray[np.bool_]) -> FloatArray:
    """``X`` with each ``missing`` value read as the mean of its feature's values present (0
    in a feature with none).

    >>> feature_means_filled(np.array([[1.0, np.nan], [3.0, np.nan]]), np.array([[0, 1], [0, 1]], bool))
    array([[1., 0.],
           [3., 0.]])
    """
    counts = (~missing).sum(axis=0)
    means = np.where(missing, 0.0, X).sum(axis=0) / np.maximum(counts, 1)
    return np.where(missing, means, X)


def zero_missing(R: FloatArray) -> NDArray[np.bool_]:
    """Features of the reference rows ``R`` whose 0 (or another of ``MISSING_FILLS``) is read
    as a missing value: those in which fewer than ZERO_RARE / dim of the rows are at or below
    0, so that fewer than ZERO_RARE of the reference's rows would hold one (on a model whose
    noisy inputs are clipped at 0, most rows hold a 0 somewhere, and there it is a value)."""
    return np.asarray(np.mean(R <= 0.0, axis=0) < ZERO_RARE / R.shape[1])


def without_far_fills(X: FloatArray) -> FloatArray:
    """Reference rows ``X`` with each far fill read as its feature's mean (``X`` itself
    when there is none): a value of ``FAR_FILLS`` that lies farther below the feature's
    other values than they spread (a -999 below amounts in [0, 1]), in a feature that
    ``zero_missing`` would mark without such fills.

    When clients fill a field with -999 in a warm-up, the fills set the feature's lowest
    value, which squeezes every natural value into a few of its 8-bit codes, and put more
    than ZERO_RARE / dim of the rows below 0, so the feature was not one whose fills are
    read as missing: eight benign clients doing so on the bench's credit model hid every
    thief (``docs/DETECTION.md``, *Missing values sent as 0*). A 0 or a -1 stays as it is: it lies within
    reach of data that starts at 0, and only its rarity (``zero_missing``) marks it a fill.

    >>> X = np.array([[0.2, 0.5], [0.4, -999.0], [0.6, 0.7], [0.8, 0.9]])
    >>> without_far_fills(X)[:, 1].round(2).tolist()
    [0.5, 0.7, 0.7, 0.9]
    >>> without_far_fills(np.array([[-999.0, 1.0], [-2.0, 2.0], [3.0, 3.0]]))[:, 0].tolist()
    [-999.0, -2.0, 3.0]
    """
    fills = np.isin(X, FAR_FILLS)
    others = ~fills
    if not fills.any() or not others.any():
        return X
    low = np.where(others, X, np.inf).min(axis=0)
    high = np.where(others, X, -np.inf).max(axis=0)
    far = fills & others.any(axis=0) & (low - (high - low) > X)
    far &= zero_missing(np.where(far, np.inf, X))
    if not far.any():
        return X
    kept = ~far
    mean = np.where(kept, X, 0.0).sum(axis=0) / np.maximum(kept.sum(axis=0), 1)
    return np.where(far, mean, X)


def feature_spread(centred: FloatArray) -> FloatArray:
    """Per-feature unit of the spread score, from centred reference rows: each
    feature's RMS spread, at least SPREAD_FLOOR times the RMS over features of those spreads,
    times sqrt(dim) (so a reference row's mean squared score stays at most 1, as under the
    one global scale).

    >>> feature_spread(np.array([[-1.0, -0.1, 0.0], [1.0, 0.1, 0.0]])).round(3).tolist()
    [1.732, 0.251, 0.251]
    """
    spread = np.sqrt(np.mean(centred**2, axis=0))
    typical = float(np.sqrt(np.mean(spread**2))) or 1.0
    return np.asarray(np.sqrt(len(spread)) * np.maximum(spread, SPREAD_FLOOR * typical), dtype=np.float64)


def class_table(labels: list[object] | None, keep: NDArray[np.bool_]) -> tuple[tuple[str, ...], FloatArray]:
    """Class names (sorted) of the kept rows' labels and the class prior (one more entry for
    any other class; half a count added to each).

    A model with more than MAX_CLASSES classes keeps its MAX_CLASSES most frequent ones by name
    (ties by name), the rest sharing the other slot: class indices are stored in one byte (a
    client's reservoir, the extraction reference), and the first MAX_CLASSES names in sorted
    order (the cap was 64) would have put a 100-class model's classes "64".."99" and some in
    between, a third of its answers, in that one slot, where they looked like a class the
    reference never answered.

    >>> names, prior = class_table(["b", "a", "b", None], np.ones(4, dtype=bool))
    >>> names, [round(float(p), 2) for p in prior]
    (('a', 'b'), [0.33, 0.56, 0.11])
    """
    if labels is not None:
        kept = [str(lab) for lab, k_ in zip(labels, keep, strict=True) if k_ and lab is not None]
        classes, class_counts = np.unique(np.array(kept, dtype=str), return_counts=True)
        top = np.sort(np.argsort(-class_counts, kind="stable")[:MAX_CLASSES])
        names = tuple(str(c) for c in classes[top])
        prior = class_counts[top].astype(np.float64)
    else:
        names, prior = (), np.zeros(0)
    prior = np.append(prior, 0.0) + 0.5
    return names, prior / prior.sum()


def says_nothing(margins: FloatArray) -> bool:
    """Whether answers with these top-1/top-2 ``margins`` (NaN without scores) say nothing of
    how sure the model is: none has scores, or they are saturated (``boundary_margin`` finds
    no boundary in them: a one-hot answer, a fully grown tree's or a 1-nearest-neighbour
    model's, is a label). Their margins are their neighbours' (``models.labelmargin``).

    >>> [says_nothing(m) for m in (np.array([np.nan, np.nan]), np.ones(50), np.linspace(0, 1, 50))]
    [True, True, False]
    """
    scored = np.asarray(margins, dtype=np.float64)
    scored = scored[np.isfinite(scored)]
    return not len(scored) or boundary_margin(scored) == 0.0


def boundary_margin(margins: FloatArray, quantile: float = 0.05) -> float:
    """The margin below which an answer is *on the boundary*: halfway from the reference's 5th
    percentile (``quantile``; ``DEEP_QUANTILE`` for a *deep* one) to the next larger margin, so
    that answers tied at the percentile count (a k-nearest-neighbour model's or a small forest's
    scores are multiples of 1/k, and with "below the percentile" an answer at the lowest atom,
    where the percentile falls, would never count: the test would be silent), and 0 (no answer
    is) when that percentile does not separate the answers — at least 95% of them tie at the top
    (saturated answers, e.g. a model's answers on its own training data, which say nothing about
    how confident it is on new inputs). Live answers and the calibration compare with it alike
    (``margin < it``); margins within TIE_TOLERANCE are one atom.

    >>> boundary_margin(np.linspace(0.0, 1.0, 101)), boundary_margin(np.r_[np.full(97, 1.0), 0.2, 0.3, 0.5])
    (0.055, 0.0)
    >>> k15 = np.arange(16) / 15  # margins of a 15-neighbour model, 10% of them ties at 0
    >>> round(boundary_margin(np.r_[np.zeros(10), np.repeat(k15[1:], 6)]) * 15, 2)
    0.5
    """
    if not len(margins):
        return 0.0
    percentile = float(np.quantile(margins, quantile))
    larger = margins[margins > percentile + TIE_TOLERANCE]
    if percentile >= float(np.max(margins)) - 1e-3 or not len(larger):
        return 0.0
    return 0.5 * (percentile + float(larger.min()))


def class_indices(
    labels: list[object], keep: NDArray[np.bool_] | None, names: tuple[str, ...]
) -> NDArray[np.int64]:
    """Class index of each kept row's label (every row's without ``keep``; -1 without a
    label; ``len(names)`` for a class beyond them)."""
    index = {name: i for i, name in enumerate(names)}
    kept = labels if keep is None else [lab for lab, k in zip(labels, keep, strict=True) if k]
    return np.array([-1 if lab is None else index.get(str(lab), len(names)) for lab in kept], dtype=np.int64)


def with_extraction(
    profile: ReferenceProfile,
    X: FloatArray,
    keep: NDArray[np.bool_],
    labels: list[object] | None,
    seed: int,
    natural: NDArray[np.uint8] | None = None,
) -> ReferenceProfile:
    """The profile with its extraction reference, fitted on the kept rows (once, after trimming).

    ``natural`` (8-bit codes of the model's own data, when the rows are another population's)
    makes the validation set stand for that data: each natural row's nearest labelled row
    enters it, with its answer (``fit_extraction``). A trusted file without labels is answered by live
    traffic (``models.answers``), whose clients may favour some classes: on the bench's
    credit model the events' class mix is 38-45% / 33-37% / 19-24% where the model's data is
    59% / 30% / 11%. Weighing each event by how much likelier its profile cell is in the file
    left the validation set at 50-53% / 31-32% / 15-19% (cells are coarser than the classes'
    regions); matched, it is 60% / 30-32% / 8-10%.
    """
    if labels is None or not profile.classes:
        return profile
    R = X[keep]
    view = profile.view(R)
    index = {name: i for i, name in enumerate(profile.classes)}
    kept = [lab for lab, k in zip(labels, keep, strict=True) if k]
    label_idx = np.array([-1 if lab is None else index.get(str(lab), -1) for lab in kept], dtype=np.int64)
    extraction = fit_extraction(
        R,
        view.quantized,
        label_idx,
        len(profile.classes),
        typical=~view.out_of_profile,
        natural=natural,
        seed=seed,
    )
    return replace(profile, extraction=extraction)
