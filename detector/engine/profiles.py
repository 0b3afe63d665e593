"""Where reference profiles come from and where they are kept.

A profile is built from a trusted reference file (``querywatch profile``) or, with no
set-up, from the first events of a model (warm-up). Warm-up caps each client's share, so
a thief sending a quarter of the first events cannot define "normal"; the profile's own
fit then trims clients whose inputs sit far from everyone else's. A trusted file whose
answers cannot calibrate the boundary test is completed from the same sample
(``profile_with_live_answers``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.clientstate import ClientState, ModelContext
from querywatch.detector.engine.events import Event
from querywatch.detector.errors import ProfileError
from querywatch.features.client import score_summary
from querywatch.models.answers import score_rows, with_live_answers
from querywatch.models.calibration import RATE_MIN_CLIENTS
from querywatch.models.population import POPULATION_FEATURES
from querywatch.models.profile import ReferenceProfile, fit_profile
from querywatch.models.registry import EVIDENCE_TESTS


class ProfileStore(Protocol):
    def get(self, model_id: str) -> ReferenceProfile | None:
        """The model's profile (a store may keep it in memory once read)."""

    def put(self, profile: ReferenceProfile) -> None:
        """Store a profile, or a new revision of one (``ReferenceProfile.revision``)."""

    def latest(self, model_id: str) -> ReferenceProfile | None:
        """The newest revision now stored, read afresh (another writer may have added one)."""


class MemoryProfileStore:
    """Profiles kept in this process only (replay, tests), first read from ``source`` (a
    profile directory) where it holds the model. ``source`` is never written: a replay's
    refreshes and live answers leave the user's files as they were, so the next replay of
    the same trace gives the same report."""

    def __init__(self, profiles: Sequence[ReferenceProfile] = (), source: ProfileStore | None = None) -> None:
        self._profiles = {p.model_id: p for p in profiles}
        self._source = source

    def get(self, model_id: str) -> ReferenceProfile | None:
        profile = self._profiles.get(model_id)
        if profile is None and self._source is not None:
            profile = self._source.get(model_id)
            if profile is not None:
                self._profiles[model_id] = profile
        return profile

    def put(self, profile: ReferenceProfile) -> None:
        self._profiles[profile.model_id] = profile

    def latest(self, model_id: str) -> ReferenceProfile | None:
        return self.get(model_id)


def build_profile(
    X: np.ndarray,
    *,
    model_id: str,
    settings: DetectionSettings,
    owners: Sequence[str] | None = None,
    labels: Sequence[object] | None = None,
    scores: np.ndarray | None = None,
    live_answers: bool = False,
) -> ReferenceProfile:
    """Fit a profile with the configured geometry; the version is a digest of the data.

    ``live_answers``: the answer-derived parts are to come from the model's first live events
    (``answers="pending"``, ``models.answers``), whatever answers the rows carry: a model
    answers its training data unlike what clients send (more confidently, or saturated), and
    a boundary null fitted there alarms on benign clients or misses thieves. Without it, only
    saturated answers leave them pending."""
    digest = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()).hexdigest()[:12]
    margins = score_summary(scores)[0] if scores is not None else None
    try:
        profile = fit_profile(
            X,
            model_id=model_id,
            version=digest,
            owners=None if owners is None else np.asarray(owners),
            labels=None if labels is None else list(labels),
            margins=margins,
            cells=settings.codebook_size,
            components=settings.pca_components,
            seed=settings.seed,
        )
    except ValueError as exc:
        raise ProfileError(f"cannot build a profile for {model_id!r}: {exc}") from None
    return replace(profile, answers="pending") if live_answers and owners is None else profile


def derived_thresholds(profile: ReferenceProfile) -> dict[str, float]:
    """The thresholds and null rates a profile derived from its reference, by name: what
    ``GET /v1/models`` and ``querywatch profile`` show, so that an operator sees what a
    model's clients are held to before any of them is scored."""
    thresholds = {"ood_threshold": profile.ood_threshold, "margin_threshold": profile.margin_threshold}
    if len(profile.spread):  # a profile stored before spread scores has none
        thresholds["spread_threshold"] = profile.spread_threshold
    if profile.calibration is not None:
        thresholds["far_threshold"] = profile.calibration.far_threshold
        # Why the out-of-profile null may sit above its 20% floor on a wide model.
        thresholds["drift_share"] = profile.calibration.drift_share
        if profile.calibration.deep_share > 0.0:
            # The margin at or below which a boundary answer is deep, and the reference's
            # share of its boundary answers that are: the boundary test's third alternative.
            thresholds["deep_margin"] = profile.calibration.deep_margin
            thresholds["deep_share"] = profile.calibration.deep_share
        if profile.calibration.isolation:
            # Squared code distance to its nearest earlier query beyond which a query of a
            # client with a full reservoir is isolated (a client with fewer rows: farther).
            thresholds["isolation_limit"] = profile.calibration.isolation[-1][1]
    if len(profile.zero_missing):  # a profile stored before missing values were read has none
        # Features whose 0 is read as a missing value (``ReferenceProfile.read_missing``).
        thresholds["zero_missing_features"] = float(profile.zero_missing.sum())
    thresholds |= {f"null_{name}": value for name, value in EVIDENCE_TESTS.nulls(profile.calibration).items()}
    if profile.answers == "pending":
        # The margin threshold and the answers' nulls come from the first live answers.
        del thresholds["margin_threshold"]
        for name in ("deep_margin", "deep_share", "null_boundary"):
            thresholds.pop(name, None)
        thresholds.pop("null_confidence", None)
    elif profile.margin_threshold <= 0.0:
        # No margins (labels only) or saturated ones: no answer is on the boundary, so the
        # boundary test is silent, and a null beside it would say it was listening.
        thresholds.pop("null_boundary", None)
    if profile.calibration is None or not profile.calibration.rank_margins:
        # No rank tables (no scored answers yet, or a profile stored before them): silent.
        thresholds.pop("null_confidence", None)
    if profile.calibration is None or not profile.calibration.isolation:
        thresholds.pop("null_isolation", None)  # no limits (a profile stored before them): silent
    return thresholds


def profile_from_warmup(events: Sequence[Event], settings: DetectionSettings) -> ReferenceProfile:
    """Build a model's profile from its warm-up events, at most ``warmup_per_client`` per client,
    with the feature vectors of its in-profile clients for the population model."""
    chosen = capped(events, settings)
    labels, scores = _answers(chosen)
    try:
        profile = build_profile(
            np.array([e.input for e in chosen]),
            model_id=chosen[0].model_id,
            settings=settings,
            owners=[e.client_id for e in chosen],
            labels=labels,
            scores=scores,
        )
    except ProfileError as exc:
        if len(chosen) == len(events):
            raise
        clients = len({e.client_id for e in chosen})
        raise ProfileError(
            f"{exc} ({len(events)} warm-up events from {clients} client{'s' * (clients != 1)}, "
            f"at most warmup_per_client={settings.warmup_per_client} of each kept: a model "
            "this few clients call needs a trusted profile)"
        ) from None
    return replace(profile, population=reference_population(profile, chosen), origin="warmup")


def thin_warmup(profile: ReferenceProfile) -> str | None:
    """Why a profile built as a warm-up is thin, if it is: a model few clients call (or a short
    trace, or a small file of served events) ends its warm-up with what it has, and every
    test's benign rate is then measured on those few clients (on five, most of them alerted)."""
    needed = profile.required_size()
    clients = profile.calibration.pseudo_clients if profile.calibration is not None else 0
    if profile.origin != "warmup" or (profile.reference_size >= needed and clients >= RATE_MIN_CLIENTS):
        return None
    return (
        f"{profile.model_id}'s profile is a warm-up of {profile.reference_size:,} inputs from {clients} "
        f"clients (its first events, or a file of served events); a profile of it needs {needed:,} "
        f"inputs from at least {RATE_MIN_CLIENTS} clients, and with fewer its benign rates rest on too few "
        "(benign clients may alert): give it more served events (querywatch profile --served) or a file "
        "of trusted inputs (querywatch profile --input FILE)"
    )


def profile_with_live_answers(
    trusted: ReferenceProfile, events: Sequence[Event], settings: DetectionSettings
) -> ReferenceProfile:
    """``trusted`` (``answers="pending"``) completed from its model's first events, capped
    per client as a warm-up is (``models.answers``)."""
    chosen = capped(events, settings)
    labels, scores = _answers(chosen)
    return with_live_answers(
        trusted,
        np.array([e.input for e in chosen]),
        np.array([e.client_id for e in chosen]),
        labels,
        None if scores is None else score_summary(scores)[0],
        at=max(e.ts for e in chosen),
        seed=settings.seed,
    )


def capped(events: Iterable[Event], settings: DetectionSettings) -> list[Event]:
    """The events in order, at most ``warmup_per_client`` of each client: what a warm-up
    keeps, and what a served sample read from a file keeps as it is read."""
    taken: Counter[str] = Counter()
    chosen = []
    for event in events:
        if taken[event.client_id] < settings.warmup_per_client:
            taken[event.client_id] += 1
            chosen.append(event)
    return chosen


def _answers(events: Sequence[Event]) -> tuple[list[object] | None, np.ndarray | None]:
    """The events' labels (None if none has one) and scores (``score_rows``: NaN for an
    event without scores)."""
    labels: list[object] = [e.answer for e in events]
    known = labels if any(lab is not None for lab in labels) else None
    return known, score_rows([e.scores for e in events])


def reference_population(profile: ReferenceProfile, events: Sequence[Event]) -> np.ndarray:
    """Feature vectors of the warm-up clients (10+ events, mostly in profile), one row each."""
    by_client: dict[str, list[Event]] = {}
    for event in events:
        by_client.setdefault(event.client_id, []).append(event)
    context = ModelContext.of(profile)
    rows = []
    for client_id, own in sorted(by_client.items()):
        if len(own) < 10:
            continue
        state = ClientState(client_id, context, seed=0)
        for row in context.query_rows(own):
            state.features.update(*row)
        snapshot = state.features.snapshot()
        if snapshot["ood_share"] <= 0.5:
            rows.append([snapshot[k] for k in POPULATION_FEATURES])
    return np.array(rows, dtype=np.float64).reshape(-1, len(POPULATION_FEATURES))
