"""Reference profiles and reference inputs on the local filesystem.

The engine keeps profiles behind ``ProfileStore``; this is the store of ``querywatch
profile --out DIR`` and ``detection.profile_dir``, and the reader of trusted reference files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.engine.events import (
    MAX_INPUT,
    Event,
    answer_label,
    answer_scores,
    input_vector,
    json_error,
    parse_event,
)
from querywatch.detector.engine.profiles import capped
from querywatch.detector.errors import InvalidEvent, ProfileError
from querywatch.detector.pipeline.lines import lines_suffix, open_lines
from querywatch.detector.pipeline.outputs import written_whole
from querywatch.models.answers import score_rows
from querywatch.models.profile import ReferenceProfile


class DirectoryProfileStore:
    """One ``<model>.qwprofile`` file per model in a directory (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: dict[str, ReferenceProfile] = {}

    def _file(self, model_id: str) -> Path:
        """The model's file: its id as it is when that is a safe file name, else the id made
        safe and a digest of the real one (``fraud/v1`` and ``fraud v1`` once shared
        ``fraud_v1.qwprofile``, and the second ``querywatch profile --out`` replaced the first)."""
        safe = _safe_name(model_id)
        if safe != model_id:
            safe += "-" + hashlib.sha256(model_id.encode()).hexdigest()[:8]
        return self.path / f"{safe}.qwprofile"

    def _files(self, model_id: str) -> list[Path]:
        """Where the model's profile may be: its file, then the name it had before names got a
        digest (a directory written then keeps working)."""
        legacy = self.path / f"{_safe_name(model_id)}.qwprofile"
        return list(dict.fromkeys((self._file(model_id), legacy)))

    def get(self, model_id: str) -> ReferenceProfile | None:
        if model_id in self._cache:
            return self._cache[model_id]
        for file in self._files(model_id):
            profile = self._read(file)
            if profile is None or _written_for_other(profile, model_id, file):
                continue
            if profile.model_id != model_id:
                raise ProfileError(
                    f"{file} holds the profile of model {profile.model_id!r}, not {model_id!r}"
                )
            self._cache[model_id] = profile
            return profile
        return None

    def put(self, profile: ReferenceProfile) -> None:
        """Write the model's file; never over another model's profile (a file renamed by hand,
        or one of a model whose id made the same name before names got a digest)."""
        self.path.mkdir(parents=True, exist_ok=True)
        file = self._file(profile.model_id)
        held = self._held_by(file)
        if held is not None and held != profile.model_id:
            raise ProfileError(
                f"{file} holds the profile of model {held!r}: not replaced by that of {profile.model_id!r}",
                hint="move that file away, or give the profile another --out directory",
            )
        with written_whole(file, binary=True) as f:
            f.write(profile.to_bytes())
        self._cache[profile.model_id] = profile
        self._drop_legacy(profile.model_id)

    def _drop_legacy(self, model_id: str) -> None:
        """Remove the model's file from before names got a digest, once its new one is written:
        one file per model, and the old name free for the model whose name it is."""
        for legacy in self._files(model_id)[1:]:
            if self._held_by(legacy) == model_id:
                legacy.unlink(missing_ok=True)

    def _held_by(self, file: Path) -> str | None:
        """The model whose profile ``file`` holds; None if there is none or it cannot be read
        (the model's own file, then, which writing repairs)."""
        try:
            profile = self._read(file)
        except ProfileError:
            return None
        return None if profile is None else profile.model_id

    @staticmethod
    def _read(file: Path) -> ReferenceProfile | None:
        """The profile in ``file``, None if there is no file; any failure to read or decode it
        (a file cut short, a folder of that name) is a ``ProfileError`` naming it."""
        if not file.exists():
            return None
        try:
            data = file.read_bytes()
            if not data.startswith(_ZIP_MAGIC):  # numpy's word for it would suggest allow_pickle
                raise ValueError("not a querywatch profile (no zip archive: `querywatch profile` writes one)")
            return ReferenceProfile.from_bytes(data)
        except Exception as exc:  # untrusted bytes: zipfile, zlib and numpy each fail their own way
            reason = f"[Errno {exc.errno}] {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            raise ProfileError(f"{file}: cannot be read as a profile: {reason}") from None

    def latest(self, model_id: str) -> ReferenceProfile | None:
        """The file's profile, as read first: the engines never write a directory (a replay
        keeps its revisions in memory, the consumers in the database)."""
        return self.get(model_id)


#: The first bytes of a profile file (``ReferenceProfile.to_bytes``: a NumPy ``.npz``, a zip archive).
_ZIP_MAGIC = b"PK\x03\x04"


def _safe_name(model_id: str) -> str:
    """A model id with every character that is unsafe in a file name replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model_id)


def _written_for_other(profile: ReferenceProfile, model_id: str, file: Path) -> bool:
    """Whether ``file`` holds another model's profile under that model's name from before names
    got a digest (``a_b.qwprofile`` of model ``a/b``): not this model's, and no error."""
    return profile.model_id != model_id and file.name == f"{_safe_name(profile.model_id)}.qwprofile"


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
            return ReferenceRows(_checked(_read_npy(path), path), None, None)
        if suffix == ".csv":
            return ReferenceRows(_checked(_read_csv(path), path), None, None)
        if lines_suffix(path) in (".jsonl", ".ndjson"):
            return _read_jsonl(path, model_id, logits)
    except (ValueError, OSError, EOFError) as exc:
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
    invalid: Counter[str]
    """Lines that are no valid event, skipped, by reason (``engine.events.REASONS``)."""
    first_invalid: dict[str, tuple[int, str]]
    """Per reason, its first such line (number) and what is wrong with it."""


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

    A line that is no valid event is skipped and counted by reason, as the pipeline
    dead-letters it: logs hold some (a write cut short, a NaN score), and a day of them should
    not be cleaned by hand first. A file of which no line is a valid event is refused with its
    first line's reason: rows that the model answered offline (its training split, say) carry
    no client id, which is what makes the sample served traffic and lets the profile trim a
    client's events as a warm-up does, and their answers are surer than any client's: a
    boundary null fitted on them alerted 182 of 258 benign clients of a held-out forest. Such
    a file is a trusted reference *without* ``--served``."""
    path = Path(path)
    if lines_suffix(path) not in (".jsonl", ".ndjson"):
        raise ProfileError(
            f"{path}: --served takes logged events, one JSON object a line (.jsonl, .jsonl.gz)"
        )
    counted: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    first_invalid: dict[str, tuple[int, str]] = {}

    def skip(number: int, reason: str, detail: str) -> None:
        invalid[reason] += 1
        first_invalid.setdefault(reason, (number, detail))

    def model_events() -> Iterator[Event]:
        width = 0
        for number, line in _numbered_lines(path):
            try:
                event = parse_event(line, max_dim=max_dim, project=project, logits=logits)
            except InvalidEvent as exc:
                skip(number, exc.reason, exc.detail)
                continue
            if event.model_id != model_id:
                counted["other"] += 1
                continue
            width = width or len(event.input)
            if len(event.input) != width:
                skip(
                    number,
                    "wrong_dimension",
                    f"{len(event.input)} inputs, where the model's first event has {width}",
                )
                continue
            counted["read"] += 1
            yield event

    events = capped(model_events(), settings)
    if invalid["wrong_dimension"] >= counted["read"] > 0:  # the first event's width is not the file's
        number, detail = first_invalid["wrong_dimension"]
        raise ProfileError(
            f"{path}: the model's events come in more than one width (line {number}: {detail}; "
            f"{invalid['wrong_dimension']} such lines against {counted['read']}): one model id, one input"
        )
    if not events and not counted["other"] and invalid:
        number, detail = min(first_invalid.values())
        raise ProfileError(f"{path}: no line is a valid event; line {number}: {detail}", hint=_SERVED_HINT)
    if not events:
        skipped = f", {invalid.total()} no valid event" if invalid else ""
        raise ProfileError(
            f"{path}: no event of model {model_id!r} ({counted['other']} of other models{skipped})"
        )
    return ServedSample(events, counted["read"], counted["other"], invalid, first_invalid)


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


#: The first bytes of every ``.npy`` file.
_NPY_MAGIC = b"\x93NUMPY"


def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file's array of real numbers (booleans and integers read as such), as floats.

    Anything else is said plainly: numpy's own message for a file that is not a ``.npy`` one,
    or holds Python objects, suggests loading it with ``allow_pickle``, which would run code
    from the file; a structured array ended in a TypeError and a complex one lost its
    imaginary parts in silence."""
    with path.open("rb") as f:
        if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise ProfileError(f"{path}: is not a .npy file (no NumPy header): save the rows with numpy.save")
    try:
        X = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise ProfileError(f"{path}: not a numeric array (it holds Python objects)") from None
        raise
    if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf":
        dtype = X.dtype if isinstance(X, np.ndarray) else type(X).__name__
        raise ProfileError(f"{path}: not a numeric array ({dtype}); expected rows of real numbers")
    return np.asarray(X, dtype=np.float64)


def _read_csv(path: Path) -> np.ndarray:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    first, header = 1, None
    if rows and not _numeric(rows[0]):
        header, rows, first = rows[0], rows[1:], 2
    numbered = [(number, row) for number, row in enumerate(rows, first) if row]
    for number, row in numbered:
        if len(row) != len(numbered[0][1]):
            raise ValueError(
                f"line {number}: {len(row)} values, where line {numbered[0][0]} has {len(numbered[0][1])}"
            )
    try:
        return np.array([[_cell(v) for v in row] for _, row in numbered], dtype=np.float64)
    except ValueError:  # say where, as for a row of the wrong length
        for number, row in numbered:
            for column, text in enumerate(row, 1):
                if not _numeric([text]):
                    said = f"line {number}, column {column}: {text!r} is not a number"
                    raise ValueError(said + _text_column(numbered, column, header)) from None
        raise


def _text_column(numbered: list[tuple[int, list[str]]], column: int, header: list[str] | None) -> str:
    """What to do about a column with no number in any row (ids, names, categories): the
    file holds the model's inputs only; empty when some row has a number there."""
    if any(_numeric([row[column - 1]]) and row[column - 1].strip() for _, row in numbered):
        return ""
    name = f" ({header[column - 1]!r})" if header is not None and len(header) >= column else ""
    return (
        f"; column {column}{name} holds no number in any row: ids, names or categories are no input of "
        "the model: leave the column out, or write it as the numbers the model reads"
    )


def _numeric(row: list[str]) -> bool:
    try:
        [_cell(v) for v in row]
    except ValueError:
        return False
    return True


def _cell(text: str) -> float:
    """A CSV cell's number; an empty cell is a missing value (NaN), as pandas writes one."""
    return float(text) if text.strip() else math.nan


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
        except RecursionError:  # json.loads of 100,000 nested brackets
            raise ValueError(f"line {number}: nested too deeply to be a row") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: {json_error(exc)}") from None
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
    if np.isinf(X).any():  # NaN is a missing value, as in events (``ReferenceProfile.filled``)
        raise ProfileError(f"{path}: holds infinite values")
    beyond = np.abs(X) > MAX_INPUT  # as events: one such row overflowed the fit
    if beyond.any():
        row = int(np.flatnonzero(beyond.any(axis=1))[0])
        raise ProfileError(f"{path}: row {row + 1} holds a number beyond ±{MAX_INPUT:g}")
    return X
