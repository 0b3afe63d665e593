"""A trusted reference whose answers cannot calibrate the boundary, completed from live answers.

The boundary test needs the model's answers on the inputs benign clients send: how often an
answer falls at or under the reference's 5th-percentile margin, by distance from the data. A
trusted file may carry no answers (``.npy``, ``.csv``) or answers that say nothing about it:
a model's answers on its own training data are saturated (they tie at the top, and
``boundary_margin`` finds no boundary in them). Fitted on such a file, the boundary test
would stay silent, and with it the only sign of a thief that sends natural inputs chosen for
their uncertain answers.

Nor do a model's answers on its training data describe what clients get: it answers them
more confidently, or just differently (on the simulator's tabular model a boundary null
fitted there alerted on 2 of 28 benign clients). So ``querywatch profile`` leaves every
file's answers aside unless told the file is served traffic (``--served``), and a fit on
saturated answers leaves them aside whatever it is told.

Such a profile is marked ``answers="pending"``. It keeps what the file defines and thieves
cannot: the cells, the out-of-profile and far thresholds and their nulls. The engine holds
the model's first events as it holds a warm-up, and fits on them only what derives from the
answers — the margin threshold, the boundary bins, class factors and multiple, and, when the
file had no labels, the class prior and the extraction reference — with the warm-up's
defences: at most ``warmup_per_client`` events per client, resends' and revisits' answers
left out, clients far out of profile trimmed, and clients whose boundary answers a typical
client would not give trimmed (``models.calibration``). The result is the profile's next
revision, so every client state is made under it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from querywatch.models.calibration import calibrate
from querywatch.models.profile import (
    FloatArray,
    ReferenceProfile,
    answer_neighbours,
    class_indices,
    class_table,
    kept_clients,
    repeats,
    says_nothing,
    score_thresholds,
    with_extraction,
)


def with_live_answers(
    profile: ReferenceProfile,
    X: FloatArray,
    owners: NDArray[Any],
    labels: list[object] | None,
    margins: FloatArray | None,
    *,
    at: float | None = None,
    seed: int = 0,
) -> ReferenceProfile:
    """``profile`` (``answers="pending"``) with its answer-derived parts fitted on live rows
    ``X`` of clients ``owners``, their answers' ``labels`` and top-1/top-2 ``margins`` (None
    or NaN without scores); ``at`` is the event time of the newest row.

    >>> from querywatch.models.profile import fit_profile
    >>> rng = np.random.default_rng(0)
    >>> X, saturated = rng.normal(size=(400, 4)), np.ones(400)  # every top-1 score 1.0
    >>> trusted = fit_profile(X, model_id="m", version="v", margins=saturated, cells=4, components=2)
    >>> trusted.answers, trusted.margin_threshold
    ('pending', 0.0)
    >>> owners, labels = np.repeat(np.arange(30), 10), [0, 1] * 150
    >>> live = with_live_answers(trusted, rng.normal(size=(300, 4)), owners, labels, rng.uniform(size=300))
    >>> live.answers, live.revision, live.classes, live.margin_threshold > 0
    ('live', 1, ('0', '1'), True)
    >>> live.ood_threshold == trusted.ood_threshold  # the file's geometry stays
    True
    """
    owners = np.asarray(owners)
    view = profile.view(X)
    keep = kept_clients(view, owners)
    if not keep.any():
        keep = np.ones(len(X), dtype=bool)
    completed = profile
    if not profile.classes and labels is not None:
        names, prior = class_table(labels, keep)
        completed = replace(completed, classes=names, class_prior=prior)
    # Resends' and a sweep's revisits' answers say nothing either way (``repeats``).
    unanswered = repeats(X, owners).answer[keep] if labels is not None or margins is not None else None
    classes = None if labels is None else class_indices(labels, keep, completed.classes)
    kept_margins = None
    if unanswered is not None and margins is not None and not (labels is not None and says_nothing(margins)):
        # Saturated answers say nothing (a one-hot answer is a label): the neighbours' instead.
        kept_margins = np.where(unanswered, np.nan, np.asarray(margins, dtype=np.float64)[keep])
    label_neighbours = None  # the live answers', whatever the file had
    if classes is not None:
        label_neighbours, kept_margins = answer_neighbours(
            view.quantized[keep],
            view.ood_score[keep],
            kept_margins,
            classes,
            len(completed.class_prior),
            profile.ood_threshold,
            owners=owners[keep],
            unanswered=unanswered,
            seed=seed,
        )
    margin_threshold, deep_margin = score_thresholds(kept_margins, label_neighbours)
    calibration = profile.calibration
    if kept_margins is not None and calibration is not None:
        live = calibrate(
            view.ood_score[keep],
            profile.ood_threshold,
            view.cell[keep],
            owners=owners[keep],
            margins=kept_margins,
            margin_threshold=margin_threshold,
            deep_margin=deep_margin,
            classes=classes,
            seed=seed,
        )
        calibration = replace(
            calibration,
            boundary_null=live.boundary_null,
            boundary_multiple=live.boundary_multiple,
            boundary_edges=live.boundary_edges,
            boundary_rates=live.boundary_rates,
            boundary_class_factors=live.boundary_class_factors,
            deep_margin=live.deep_margin,
            deep_share=live.deep_share,
            rank_edges=live.rank_edges,
            rank_margins=live.rank_margins,
            rank_class_means=live.rank_class_means,
            rank_shift=live.rank_shift,
        )
    reason = (
        f"answers taken from the model's first {int(keep.sum())} live events "
        f"of {len(np.unique(owners[keep]))} clients"
    )
    outside = float(view.out_of_profile[keep].mean())
    if calibration is not None and outside > calibration.ood_null:
        # Live traffic unlike the file (cleaner data, another population): alerts for inputs
        # beyond it will follow, and the analyst should hear why before they do.
        reason += (
            f"; {outside:.0%} of them lie outside the file's profile, more than the "
            f"{calibration.ood_null:.1%} a benign client is allowed: the file may not describe "
            "what clients send"
        )
    completed = replace(
        completed,
        margin_threshold=margin_threshold,
        calibration=calibration,
        label_neighbours=label_neighbours,
        answers="live",
        revision=profile.revision + 1,
        refreshed_at=at,
        refresh_reason=reason,
    )
    if completed.extraction is None:
        completed = with_extraction(completed, X, keep, labels, seed, natural=profile.natural)
    # The file's sample served its one purpose: the next revisions have their estimate.
    return replace(completed, natural=np.zeros((0, 0), dtype=np.uint8))


def score_rows(scores: Sequence[Sequence[float] | NDArray[np.float64] | None]) -> NDArray[np.float64] | None:
    """One row of scores per answer (None if no answer has any), NaN for an answer without
    scores or with another number of them than most.

    A model may answer some clients with labels only (a serving option, or a client that
    asked for no scores). The boundary calibration leaves those rows aside, as the live test
    leaves their answers aside; requiring every row to have scores instead left the whole
    model without a boundary test once one label-only answer was in its reference.

    >>> score_rows([[0.2, 0.8], None, [1.0, 0.0, 0.0]]).tolist()
    [[0.2, 0.8], [nan, nan], [nan, nan]]
    >>> score_rows([None]) is None
    True
    """
    widths = Counter(len(s) for s in scores if s is not None)
    if not widths:
        return None
    width = widths.most_common(1)[0][0]
    rows = np.full((len(scores), width), np.nan)
    for i, s in enumerate(scores):
        if s is not None and len(s) == width:
            rows[i] = s
    return rows
