"""Reference profiles and reference inputs on the local filesystem.

The engine keeps profiles behind ``ProfileStore``; this is the store of ``querywatch
profile --out DIR`` and ``detection.profile_dir``, and the reader of trusted reference files.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.events import Event, answer_label, answer_scores, input_vector, parse_event
from querywatch.detector.engine.profiles import capped
from querywatch.detector.errors import InvalidEvent, ProfileError
from querywatch.detector.pipeline.lines import lines_suffix, open_lines
from querywatch.models.answers import score_rows
from querywatch.models.profile import ReferenceProfile


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

    def latest(self, model_id: str) -> ReferenceProfile | None:
        """The file's profile, as read first: the engines never write a directory (a replay
        keeps its revisions in memory, the consumers in the database)."""
        return self.get(model_id)


@dataclass
class ReferenceRows:
    """A trusted reference file's rows (``read_reference_file``)."""

    inputs: np.ndarray
    labels: list[object] | None
    """The answered labels, when any line of a ``.jsonl`` file has one."""
    scores: np.ndarray | None
    """The answered scores (``models.answers.score_rows``), when any line has them."""
    other_models: int = 0
    """Lines of a ``.jsonl`` file naming another ``model_id``, skipped."""


def read_reference_file(path: str | Path, model_id: str | None = None, logits: bool = False) -> ReferenceRows:
    """Reference inputs from ``.npy`` (an (n, d) array), ``.csv`` (numbers only, optional
    header) or ``.jsonl`` (events, or objects with ``input`` and optional ``prediction``;
    gzip'd as ``.jsonl.gz``; with ``logits``, its scores are raw class scores, read through a
    softmax as live events' are).
    A ``.jsonl`` line naming a ``model_id`` other than ``model_id`` is skipped: an export of
    a serving tier's logs holds every model's events, a challenger's beside the champion's."""
    path = Path(path)
    if not path.exists():
        raise ProfileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
            return ReferenceRows(_checked(np.asarray(X, dtype=np.float64), path), None, None)
        if suffix == ".csv":
            return ReferenceRows(_checked(_read_csv(path), path), None, None)
        if lines_suffix(path) in (".jsonl", ".ndjson"):
            return _read_jsonl(path, model_id, logits)
    except (ValueError, OSError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    raise ProfileError(f"{path}: expected a .npy, .csv, .jsonl or .jsonl.gz file")


@dataclass
class ServedSample:
    """What ``read_served_events`` kept of a file of logged events, and what it counted."""

    events: list[Event]
    """The model's events in file order, at most ``warmup_per_client`` of each client."""
    read: int
    """The model's events in the file."""
    other_models: int
    """Events of other models, skipped."""


_SERVED_HINT = (
    "--served takes logged events (request_id, ts, client_id, model_id, input, prediction), a "
    "sample of what clients sent; for rows the model answered offline (a training split), leave "
    "out --served: the answers are then taken from the model's first live events"
)


def read_served_events(
    path: str | Path,
    model_id: str,
    settings: DetectionSettings,
    *,
    max_dim: int | None = None,
    project: bool = False,
    logits: bool = False,
) -> ServedSample:
    """A sample of served traffic: the logged events of ``model_id`` in a JSON Lines file,
    validated as the pipeline validates them, capped per client as they are read, as a
    warm-up is (``engine.profiles.capped``: a day of logs then fits in memory).

    Every line must be a whole event: its client id is what makes the sample served traffic,
    and what lets the profile trim a client's events as a warm-up does. Rows that the model
    answered offline (its training split, say) carry none, and their answers are surer than
    any client's: a boundary null fitted on them alerted 182 of 258 benign clients of a
    held-out forest. Such a file is a trusted reference *without* ``--served``."""
    path = Path(path)
    if lines_suffix(path) not in (".jsonl", ".ndjson"):
        raise ProfileError(
            f"{path}: --served takes logged events, one JSON object a line (.jsonl, .jsonl.gz)"
        )
    counted: Counter[str] = Counter()

    def model_events() -> Iterator[Event]:
        width = 0
        for number, line in _numbered_lines(path):
            try:
                event = parse_event(line, max_dim=max_dim, project=project, logits=logits)
            except InvalidEvent as exc:
                raise ProfileError(f"{path}: line {number}: {exc.detail}", hint=_SERVED_HINT) from None
            if event.model_id != model_id:
                counted["other"] += 1
                continue
            width = width or len(event.input)
            if len(event.input) != width:
                raise ProfileError(
                    f"{path}: line {number}: {len(event.input)} inputs, where the model's first "
                    f"event has {width}"
                )
            counted["read"] += 1
            yield event

    events = capped(model_events(), settings)
    if not events:
        raise ProfileError(f"{path}: no event of model {model_id!r} ({counted['other']} of other models)")
    return ServedSample(events, counted["read"], counted["other"])


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of a JSON Lines file (``pipeline.lines``), numbered from 1; a file
    that cannot be read (a ``.gz`` cut short) is a ``ProfileError`` naming it."""
    try:
        with open_lines(path) as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line
    except OSError as exc:
        raise ProfileError(f"{path}: {exc}") from None


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    first = 1
    if rows and not _numeric(rows[0]):
        rows, first = rows[1:], 2
    numbered = [(number, row) for number, row in enumerate(rows, first) if row]
    for number, row in numbered:
        if len(row) != len(numbered[0][1]):
            raise ValueError(
                f"line {number}: {len(row)} values, where line {numbered[0][0]} has {len(numbered[0][1])}"
            )
    try:
        return np.array([[float(v) for v in row] for _, row in numbered], dtype=np.float64)
    except ValueError:  # say where, as for a row of the wrong length
        for number, row in numbered:
            for column, text in enumerate(row, 1):
                if not _numeric([text]):
                    raise ValueError(f"line {number}, column {column}: {text!r} is not a number") from None
        raise


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _read_jsonl(path: Path, model_id: str | None, logits: bool = False) -> ReferenceRows:
    inputs: list[np.ndarray] = []
    labels: list[object] = []
    scores: list[np.ndarray | None] = []
    other_models = 0
    for number, line in _numbered_lines(path):
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            if model_id is not None and obj.get("model_id", model_id) != model_id:
                other_models += 1
                continue
            inputs.append(input_vector(obj["input"]))
            prediction = obj.get("prediction") or {}
            if not isinstance(prediction, dict):
                raise ValueError("'prediction' must be an object ('label', 'scores')")
            labels.append(answer_label(prediction.get("label")))  # as live events read them
            scores.append(answer_scores(prediction.get("scores"), logits))
        except InvalidEvent as exc:
            raise ValueError(f"line {number}: {exc.detail}") from None
        except KeyError as exc:
            raise ValueError(f"line {number}: no {exc} field") from None
        except (ValueError, TypeError) as exc:
            raise ValueError(f"line {number}: {exc}") from None
        if len(inputs[-1]) != len(inputs[0]):
            raise ValueError(
                f"line {number}: {len(inputs[-1])} inputs, where the first row has {len(inputs[0])}"
            )
    if not inputs and other_models:
        raise ValueError(f"no line of model {model_id!r} ({other_models} of other models)")
    X = _checked(np.array(inputs, dtype=np.float64), path)
    rows = score_rows(scores)
    return ReferenceRows(X, labels if any(lab is not None for lab in labels) else None, rows, other_models)


def _checked(X: np.ndarray, path: Path) -> np.ndarray:
    if X.ndim != 2 or len(X) == 0:
        raise ProfileError(f"{path}: expected rows of numbers, got an array of shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ProfileError(f"{path}: holds NaN or infinite values")
    return X
