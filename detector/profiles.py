"""Where reference profiles come from and where they are kept.

A profile is built from a trusted reference file (``querywatch profile``) or, with no
set-up, from the first events of a model (warm-up). Warm-up caps each client's share, so
a thief sending a quarter of the first events cannot define "normal"; the profile's own
fit then trims clients whose inputs sit far from everyone else's.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from detector.clientstate import ClientState, ModelContext
from detector.config import DetectionSettings
from detector.errors import ProfileError
from detector.events import Event
from features.client import score_summary
from models.population import POPULATION_FEATURES
from models.profile import ReferenceProfile, fit_profile


class ProfileStore(Protocol):
    def get(self, model_id: str) -> ReferenceProfile | None: ...
    def put(self, profile: ReferenceProfile) -> None: ...


class MemoryProfileStore:
    """Profiles kept in this process only (replay, tests)."""

    def __init__(self, profiles: Sequence[ReferenceProfile] = ()) -> None:
        self._profiles = {p.model_id: p for p in profiles}

    def get(self, model_id: str) -> ReferenceProfile | None:
        return self._profiles.get(model_id)

    def put(self, profile: ReferenceProfile) -> None:
        self._profiles[profile.model_id] = profile


class DirectoryProfileStore:
    """One ``<model>.qwprofile`` file per model in a directory (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: dict[str, ReferenceProfile] = {}

    def _file(self, model_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", model_id)
        return self.path / f"{safe}.qwprofile"

    def get(self, model_id: str) -> ReferenceProfile | None:
        if model_id in self._cache:
            return self._cache[model_id]
        file = self._file(model_id)
        if not file.exists():
            return None
        try:
            profile = ReferenceProfile.from_bytes(file.read_bytes())
        except ValueError as exc:
            raise ProfileError(f"{file}: {exc}") from None
        if profile.model_id != model_id:
            raise ProfileError(f"{file} holds the profile of model {profile.model_id!r}, not {model_id!r}")
        self._cache[model_id] = profile
        return profile

    def put(self, profile: ReferenceProfile) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        file = self._file(profile.model_id)
        tmp = file.with_suffix(".tmp")
        tmp.write_bytes(profile.to_bytes())
        tmp.replace(file)
        self._cache[profile.model_id] = profile


def build_profile(
    X: np.ndarray,
    *,
    model_id: str,
    settings: DetectionSettings,
    owners: Sequence[str] | None = None,
    labels: Sequence[object] | None = None,
    scores: np.ndarray | None = None,
) -> ReferenceProfile:
    """Fit a profile with the configured geometry; the version is a digest of the data."""
    digest = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()).hexdigest()[:12]
    margins = score_summary(scores)[0] if scores is not None else None
    try:
        return fit_profile(
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


def profile_from_warmup(events: Sequence[Event], settings: DetectionSettings) -> ReferenceProfile:
    """Build a model's profile from its warm-up events, at most ``warmup_per_client`` per client,
    with the feature vectors of its in-profile clients for the population model."""
    taken: Counter[str] = Counter()
    chosen = []
    for event in events:
        if taken[event.client_id] < settings.warmup_per_client:
            taken[event.client_id] += 1
            chosen.append(event)
    X = np.array([e.input for e in chosen])
    lengths = {len(e.scores) for e in chosen if e.scores is not None}
    with_scores = len(lengths) == 1 and all(e.scores is not None for e in chosen)
    scores = np.array([e.scores for e in chosen]) if with_scores else None
    labels = [_label_of(e) for e in chosen]
    profile = build_profile(
        X,
        model_id=chosen[0].model_id,
        settings=settings,
        owners=[e.client_id for e in chosen],
        labels=labels if any(lab is not None for lab in labels) else None,
        scores=scores,
    )
    return replace(profile, population=reference_population(profile, chosen))


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


def _label_of(event: Event) -> object:
    if event.label is not None:
        return event.label
    if event.scores is not None:
        return int(np.argmax(event.scores))
    return None


def read_reference_file(path: str | Path) -> tuple[np.ndarray, list[object] | None, np.ndarray | None]:
    """Reference inputs from ``.npy`` (an (n, d) array), ``.csv`` (numbers only, optional
    header) or ``.jsonl`` (events, or objects with ``input`` and optional ``prediction``).
    Returns inputs, labels (or None) and scores (or None)."""
    path = Path(path)
    if not path.exists():
        raise ProfileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
            return _checked(np.asarray(X, dtype=np.float64), path), None, None
        if suffix == ".csv":
            return _checked(_read_csv(path), path), None, None
        if suffix in (".jsonl", ".ndjson"):
            return _read_jsonl(path)
    except (ValueError, OSError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    raise ProfileError(f"{path}: expected a .npy, .csv or .jsonl file")


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if rows and not _numeric(rows[0]):
        rows = rows[1:]
    return np.array([[float(v) for v in row] for row in rows if row], dtype=np.float64)


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _read_jsonl(path: Path) -> tuple[np.ndarray, list[object] | None, np.ndarray | None]:
    inputs, labels, scores = [], [], []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                inputs.append([float(v) for v in obj["input"]])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"line {number}: {exc}") from None
            prediction = obj.get("prediction") or {}
            labels.append(prediction.get("label"))
            scores.append(prediction.get("scores"))
    X = _checked(np.array(inputs, dtype=np.float64), path)
    has_labels = all(lab is not None for lab in labels)
    widths = {len(s) if isinstance(s, list) else -1 for s in scores}
    has_scores = len(widths) == 1 and -1 not in widths
    return X, labels if has_labels else None, np.array(scores, dtype=np.float64) if has_scores else None


def _checked(X: np.ndarray, path: Path) -> np.ndarray:
    if X.ndim != 2 or len(X) == 0:
        raise ProfileError(f"{path}: expected rows of numbers, got an array of shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ProfileError(f"{path}: holds NaN or infinite values")
    return X
