"""Parse and validate inference-log events (EVENT_SCHEMA v1).

Every way an event can be wrong maps to one ``InvalidEvent`` reason code, so that the
consumer can count it and dead-letter it with the original bytes. Parsing never raises
anything else.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import simdjson

from querywatch.detector.errors import InvalidEvent

#: Reason codes, stable: they are metric labels and dead-letter reasons.
REASONS = (
    "oversized",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "non_finite",
    "bad_timestamp",
    "wrong_dimension",
    "empty_input",
    "bad_identifier",
    "bad_scores",
    "too_many_inputs",
    "future_timestamp",
    "no_profile",
)

_REQUIRED = ("request_id", "ts", "client_id", "model_id", "input")
_REQUIRED_SET = frozenset(_REQUIRED)
#: The longest id (request, client, model) an event may carry.
MAX_ID = 256
_NUMBER_TYPES = frozenset({int, float})
#: Timestamps are kept to what every store and ``datetime`` can represent: 1970 to year 9999.
MIN_TS = 0.0
MAX_TS = 253402300799.0  # 9999-12-31T23:59:59Z
#: Characters an identifier may not hold: C0/C1 controls, DEL (PostgreSQL refuses NUL in
#: text; the others forge log lines) and lone surrogates (not encodable as UTF-8).
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: How far the sum of ``prediction.scores`` may be from one (rounded probabilities).
SCORES_SUM_TOLERANCE = 0.01


@dataclass(slots=True)
class Event:
    """One validated inference request. ``ts`` is epoch seconds (UTC). Of the event's
    ``meta`` only ``ip``, ``user_agent`` and ``org`` (``meta.org``, else
    ``meta.account_owner``) are kept (strings, cut to ``MAX_SOURCE`` characters): alerts name
    the sources a thief used, and the campaign stage uses them as grouping keys.

    Treat it as immutable; it is not frozen because one is built per message and a frozen
    dataclass costs several times more to construct."""

    request_id: str
    ts: float
    client_id: str
    model_id: str
    input: np.ndarray
    label: int | str | None = None
    scores: np.ndarray | None = None
    ip: str | None = None
    user_agent: str | None = None
    org: str | None = None

    @property
    def answer(self) -> int | str | None:
        """The answer's class: its label, else the index of its top score (None without either)."""
        if self.label is not None:
            return self.label
        if self.scores is not None:
            return int(np.argmax(self.scores))
        return None


#: Longest source IP / user agent kept from an event's ``meta``.
MAX_SOURCE = 128


def clean_identifier(text: str) -> bool:
    """Whether ``text`` holds none of ``_BAD_CHARS``. For ASCII text (nearly every id) that is
    ``isprintable()``, two calls that cost a fraction of the regex's step per character.

    >>> [clean_identifier(text) for text in ("acct-7", "acct\\x007", "ü", "\\x85")]
    [True, False, True, False]
    """
    if text.isascii():
        return text.isprintable()
    return _BAD_CHARS.search(text) is None


def _source(meta: Any, key: str) -> str | None:
    """``meta[key]`` if it is a printable string (cut to ``MAX_SOURCE``), else None: a
    source is context for analysts, never a reason to refuse an event."""
    value = meta.get(key)
    if type(value) is not str or not value:
        return None
    value = value[:MAX_SOURCE]
    return value if clean_identifier(value) else None


def _sources(meta: Any) -> tuple[str | None, str | None, str | None]:
    """The grouping keys an event's ``meta`` carries: ip, user agent, organisation."""
    # Only the keys it has are looked up: simdjson's get() of a missing key raises and
    # catches an error inside, which cost as much as the rest of the event's fast path.
    keys = tuple(meta.keys())  # simdjson's keys() is a generator: membership would consume it
    ip = _source(meta, "ip") if "ip" in keys else None
    user_agent = _source(meta, "user_agent") if "user_agent" in keys else None
    org = _source(meta, "org") if "org" in keys else None
    if org is None and "account_owner" in keys:
        org = _source(meta, "account_owner")
    return ip, user_agent, org


def parse_event(
    raw: bytes | str | Mapping[str, Any],
    *,
    max_bytes: int = 1_000_000,
    max_dim: int | None = None,
    project: bool = False,
    logits: bool = False,
) -> Event:
    """Decode and validate one event; raise ``InvalidEvent`` with a reason code otherwise.

    An ``input`` longer than ``max_dim`` is rejected (``too_many_inputs``), or, with
    ``project``, folded onto ``max_dim`` numbers by ``project_input`` so that profile fits
    and per-event work stay bounded whatever a producer sends. With ``logits``, scores are
    a model's raw class scores, read as the probabilities their softmax gives.

    >>> e = parse_event(b'{"request_id":"r1","ts":0,"client_id":"c","model_id":"m","input":[1,2]}')
    >>> (e.client_id, e.input.tolist())
    ('c', [1.0, 2.0])
    >>> parse_event(b'{"request_id":"r1","input":[1]}')
    Traceback (most recent call last):
    ...
    querywatch.detector.errors.InvalidEvent: missing_field: 'ts', 'client_id' and 'model_id' are required
    """
    if isinstance(raw, bytes | str):
        if len(raw) > max_bytes:
            raise InvalidEvent("oversized", f"{len(raw)} bytes exceeds the limit of {max_bytes}")
        event = _parse_common(raw, logits)
        if event is not None:
            return _bounded(event, max_dim, project)
        obj = _decode(raw)
    else:
        obj = raw
    if not _REQUIRED_SET.issubset(obj):
        missing = [repr(name) for name in _REQUIRED if name not in obj]
        named = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
        raise InvalidEvent("missing_field", f"{named} {'is' if len(missing) == 1 else 'are'} required")
    request_id = _identifier(obj, "request_id")
    client_id = _identifier(obj, "client_id")
    model_id = _identifier(obj, "model_id")
    ts = _timestamp(obj["ts"])
    vector = input_vector(obj["input"])
    label, scores = _prediction(obj.get("prediction"), logits)
    meta = obj.get("meta")
    if meta is not None and type(meta) is not dict and not isinstance(meta, Mapping):
        raise InvalidEvent("wrong_type", "'meta' must be an object")
    ip, user_agent, org = (None, None, None) if meta is None else _sources(meta)
    event = Event(request_id, ts, client_id, model_id, vector, label, scores, ip, user_agent, org)
    return _bounded(event, max_dim, project)


def _bounded(event: Event, max_dim: int | None, project: bool) -> Event:
    if max_dim is None or event.input.size <= max_dim:
        return event
    if not project:
        raise InvalidEvent(
            "too_many_inputs", f"'input' has {event.input.size} numbers, more than the limit of {max_dim}"
        )
    event.input = project_input(event.input, max_dim)
    return event


def project_input(vector: np.ndarray, dim: int) -> np.ndarray:
    """``vector`` folded onto ``dim`` numbers by a fixed signed hashing projection.

    Each input position adds, with a sign, to one output position, both drawn once per
    input length from a fixed seed: a random projection that keeps distances on average
    (Weinberger et al., feature hashing), needs O(len) memory and no matrix, and maps an
    input of a given length the same way in every process.

    >>> a = project_input(np.arange(10.0), 4)
    >>> a.shape, bool(np.array_equal(a, project_input(np.arange(10.0), 4)))
    ((4,), True)
    """
    buckets, signs = _projection(vector.size, dim)
    return np.bincount(buckets, weights=signs * vector, minlength=dim)


_PROJECTIONS: OrderedDict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()
_PROJECTIONS_LOCK = threading.Lock()


def _projection(size: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    with _PROJECTIONS_LOCK:
        hit = _PROJECTIONS.get((size, dim))
        if hit is not None:
            _PROJECTIONS.move_to_end((size, dim))
            return hit
    rng = np.random.default_rng([size, dim])
    made = (rng.integers(0, dim, size), rng.choice(np.array([-1.0, 1.0]), size))
    with _PROJECTIONS_LOCK:
        _PROJECTIONS[(size, dim)] = made
        while len(_PROJECTIONS) > 8:  # a few input lengths per deployment
            _PROJECTIONS.popitem(last=False)
    return made


def _parse_common(raw: bytes | str, logits: bool = False) -> Event | None:
    """The common, well-formed event, built without a Python object per number.

    simdjson gives a lazy view of the document and copies each numeric array into a
    buffer in C. Anything unusual gives None, and the exact path (``_decode`` and the
    checks above) then accepts the event or says precisely what is wrong with it.
    """
    fields = _extract(raw)
    if fields is None:
        return None
    request_id, ts, client_id, model_id, vector, label, scores, ip, user_agent, org = fields
    if not (0 < len(request_id) <= MAX_ID and 0 < len(client_id) <= MAX_ID and 0 < len(model_id) <= MAX_ID):
        return None
    if not vector.size or not clean_identifier(request_id + client_id + model_id):
        return None
    top = np.abs(vector).max()
    if not top <= MAX_INPUT and (not math.isnan(top) or (np.abs(vector) > MAX_INPUT).any()):
        return None  # the exact path says why (NaN is a missing value)
    if type(label) is str and not clean_identifier(label):
        return None
    if type(label) is int and not MIN_LABEL <= label <= MAX_LABEL:
        return None
    if type(ts) is str:
        ts = _text_timestamp(ts)
    elif not MIN_TS <= ts <= MAX_TS:
        return None
    if scores is not None:
        try:
            scores = class_probabilities(scores, logits)
        except InvalidEvent:  # the exact path says why
            return None
    return Event(request_id, float(ts), client_id, model_id, vector, label, scores, ip, user_agent, org)


def _extract(raw: bytes | str) -> tuple[Any, ...] | None:
    """The plain values of an event with the usual shape, or None.

    Only plain Python values leave this function: simdjson's parser refuses to parse
    again while a view into its previous document is alive.
    """
    # Numeric arrays come out flattened, so nested arrays are ruled out by counting
    # brackets: one for the input, one for the scores (a bracket inside a string only
    # sends the event down the exact path).
    brackets = raw.count(b"[") if isinstance(raw, bytes) else raw.count("[")
    try:
        doc = _parser().parse(raw)
        if type(doc) is not simdjson.Object:
            return None
        request_id, client_id, model_id = doc.get("request_id"), doc.get("client_id"), doc.get("model_id")
        if type(request_id) is int:  # numeric ids read as their digits (``_identifier``)
            request_id = str(request_id)
        if type(client_id) is int:
            client_id = str(client_id)
        ts = doc.get("ts")
        if (
            type(request_id) is not str
            or type(client_id) is not str
            or type(model_id) is not str
            or type(ts) not in _TS_TYPES
        ):
            return None
        array = doc.get("input")
        if type(array) is not simdjson.Array:
            return None
        try:
            vector: np.ndarray | None = np.frombuffer(array.as_buffer(of_type="d"))
        except TypeError:  # not all numbers: a null among them is a missing value
            vector = _with_missing(array.as_list())
        if vector is None:
            return None
        label = scores = None
        keys = tuple(doc.keys())  # optional parts are looked up only if present (see _sources)
        prediction = doc.get("prediction") if "prediction" in keys else None
        if prediction is not None:
            if type(prediction) is not simdjson.Object:
                return None
            answer = tuple(prediction.keys())
            label = prediction.get("label") if "label" in answer else None
            array = prediction.get("scores") if "scores" in answer else None
            if array is not None:
                if type(array) is not simdjson.Array:
                    return None
                scores = np.frombuffer(array.as_buffer(of_type="d"))
                brackets -= 1
        if brackets != 1:
            return None
        meta = doc.get("meta") if "meta" in keys else None
        if type(label) not in _LABEL_TYPES:
            return None
        ip = user_agent = org = None
        if meta is not None:
            if type(meta) is not simdjson.Object:
                return None
            ip, user_agent, org = _sources(meta)
        return request_id, ts, client_id, model_id, vector, label, scores, ip, user_agent, org
    except (ValueError, TypeError, RuntimeError):  # bad JSON, a non-number in an array, a huge integer
        return None


def _with_missing(items: list[Any]) -> np.ndarray | None:
    """Numbers and nulls (missing values) as a vector, a null as NaN; None for anything else."""
    if not set(map(type, items)) <= _NUMBER_OR_NULL:
        return None
    return np.array(_nulls_as_nan(items), dtype=np.float64)


def _nulls_as_nan(items: list[Any]) -> list[Any]:
    """``items`` with each null (None: a missing input value) as NaN, on either path."""
    return [math.nan if item is None else item for item in items]


_NUMBER_OR_NULL = frozenset({int, float, type(None)})
_LABEL_TYPES = frozenset({int, str, type(None)})
#: The integer labels an event may carry: what MessagePack (a checkpoint of held events) stores.
MIN_LABEL, MAX_LABEL = -(2**63), 2**64 - 1
_TS_TYPES = frozenset({int, float, str})
_LOCAL = threading.local()


def _parser() -> simdjson.Parser:
    """This thread's parser (a parser is not safe to share between threads)."""
    parser: simdjson.Parser | None = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = _LOCAL.parser = simdjson.Parser()
    return parser


def _decode(raw: bytes | str) -> Mapping[str, Any]:
    if not isinstance(raw, str):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent("not_utf8", str(exc)) from None
    try:
        obj = _DECODER.decode(raw)
    except InvalidEvent:
        raise
    except json.JSONDecodeError as exc:
        raise InvalidEvent("not_json", json_error(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent("not_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise InvalidEvent("not_object", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def claimed_identity(raw: bytes | str | None, key: bytes | None = None) -> tuple[str | None, str | None]:
    """The (client_id, model_id) that a refused message names, each None where it names none
    that an event could carry: its own fields, else, for the client, its Kafka key (the
    serving tier keys each event by its client id). Refused events are then counted
    against the client that sent them: a thief whose every input the model answers and
    querywatch refuses (padded to another length, say) is seen, not lost among dead letters.

    >>> claimed_identity(b'{"client_id": "acct-7", "model_id": "m", "input": [Infinity]}')
    ('acct-7', 'm')
    >>> claimed_identity(b'{"client_id": 7, "input": [1', key=b"acct-7")
    ('acct-7', None)
    >>> claimed_identity(b'{"client_id": 7}'), claimed_identity(b'{"client_id": "a\\u0000"}')
    (('7', None), (None, None))
    """
    obj: Any = None
    if raw is not None:
        with contextlib.suppress(ValueError, RecursionError):  # not UTF-8 or JSON: the key may say
            obj = json.loads(raw)
    if not isinstance(obj, dict):
        obj = {}
    client_id, model_id = _claimed(obj.get("client_id")), _claimed(obj.get("model_id"))
    if client_id is None and key is not None:
        with contextlib.suppress(UnicodeDecodeError):
            client_id = _claimed(key.decode("utf-8"))
    return client_id, model_id


def _claimed(value: Any) -> str | None:
    """``value`` as an event's id (``_identifier``), or None if no event could carry it."""
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_ID or not clean_identifier(value):
        return None
    return value


def json_error(exc: json.JSONDecodeError) -> str:
    """What is wrong with a record that is no JSON, and where, in the record's own characters:
    the decoder's "line 2 column 1" of a one-line record counts its newline as a line, and
    a record cut short (a truncated write, a message over the producer's size limit) says so.

    >>> try:
    ...     json.loads('{"input": [1, 2]\\n')
    ... except json.JSONDecodeError as exc:
    ...     print(json_error(exc))
    Expecting ',' delimiter where the record ends, after 16 characters (cut short?)
    """
    length = len(exc.doc.rstrip())
    if exc.pos >= length:
        return f"{exc.msg} where the record ends, after {length} characters (cut short?)"
    return f"{exc.msg} at character {exc.pos + 1} of {length}"


def _read_constant(name: str) -> float:
    """NaN (a missing input value, as Python's and many other JSON writers log it), not
    Infinity: where else a NaN stands, the field's own check refuses it."""
    if name != "NaN":
        raise InvalidEvent("non_finite", f"{name} is not a finite number")
    return math.nan


# One decoder for every event: json.loads(..., parse_constant=...) would build one per call.
_DECODER = json.JSONDecoder(parse_constant=_read_constant)


def _identifier(obj: Mapping[str, Any], name: str) -> str:
    value = obj[name]
    if type(value) is int:
        value = str(value)  # a numeric account or request id, as many logs hold them: its digits
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise InvalidEvent(
            "wrong_type", f"{name!r} must be a non-empty string of at most {MAX_ID} characters"
        )
    _printable(value, name)
    return value


def _printable(value: str, name: str) -> None:
    bad = _BAD_CHARS.search(value)
    if bad is not None:
        raise InvalidEvent(
            "bad_identifier",
            f"{name!r} holds the control character or lone surrogate U+{ord(bad.group()):04X} "
            f"at position {bad.start()}",
        )


def _probabilities(scores: np.ndarray) -> bool:
    """True if ``scores`` are class probabilities: none negative, summing to one."""
    # As a list: two numpy reductions of a dozen numbers cost twice as much, for every event.
    values = scores.tolist()
    return min(values) >= 0.0 and abs(math.fsum(values) - 1.0) <= SCORES_SUM_TOLERANCE


#: Units producers log epoch times in besides seconds, finest last: a time in range in one
#: of them is named in the error (``_timestamp``).
_FINER_UNITS = (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9))


def _timestamp(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidEvent("bad_timestamp", "'ts' must be RFC 3339 text or epoch seconds")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent("non_finite", "'ts' is not finite")
        if not MIN_TS <= value <= MAX_TS:
            finer = MAX_TS < value <= MAX_TS * _FINER_UNITS[-1][1]  # a huge integer is no float
            unit = next((u for u, k in _FINER_UNITS if finer and MIN_TS <= value / k <= MAX_TS), None)
            hint = f" (epoch {unit}? send seconds)" if unit else ""
            raise InvalidEvent("bad_timestamp", f"'ts' {str(value)[:40]} is outside 1970 to year 9999{hint}")
        return float(value)
    if isinstance(value, str):
        return _text_timestamp(value)
    raise InvalidEvent("bad_timestamp", "'ts' must be RFC 3339 text or epoch seconds")


def _text_timestamp(value: str) -> float:
    """Epoch seconds of RFC 3339 text (the fast path calls it directly: most producers
    send text)."""
    if value.endswith("z"):  # RFC 3339 allows a lower-case zone letter
        value = value[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads RFC 3339, "Z" included
    except ValueError:
        quoted = _NUMBER_TEXT.fullmatch(value.strip()) is not None
        hint = ": epoch seconds go unquoted, as a number" if quoted else ""
        raise InvalidEvent("bad_timestamp", f"'ts' {value[:40]!r} is not RFC 3339{hint}") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("bad_timestamp", "'ts' must carry a time zone (e.g. a trailing Z)")
    try:
        seconds = parsed.timestamp()
    except (OverflowError, ValueError):  # "9999-12-31T23:59:59-01:00" is past year 9999 in UTC
        seconds = math.inf
    if not MIN_TS <= seconds <= MAX_TS:
        raise InvalidEvent("bad_timestamp", f"'ts' {value[:40]!r} is outside 1970 to year 9999")
    return seconds


def input_vector(value: Any) -> np.ndarray:
    """An event's ``input`` as a vector of floats, a missing value (null or NaN) as NaN, or
    why not: a reference file's rows are read by the same rule as live events, with the same
    hints. A model that reads NaN as missing (a tree ensemble) answers such inputs, so they
    are watched, not refused (``ReferenceProfile.filled`` reads them).

    >>> input_vector([1, 2.5]).tolist(), input_vector([1, None]).tolist()
    ([1.0, 2.5], [1.0, nan])
    >>> input_vector([1e300, 0.5])
    Traceback (most recent call last):
    ...
    querywatch.detector.errors.InvalidEvent: non_finite: 'input' holds a number beyond ±1e+100
    """
    if isinstance(value, list) and None in value:
        value = _nulls_as_nan(value)
    vector = _vector(value, "input", missing=True)
    if vector.size == 0:
        raise InvalidEvent("empty_input", "'input' has no numbers")
    return vector


#: The largest input a vector may hold, in absolute value: far beyond any feature's units,
#: and low enough that squared distances and their sums over any reference stay finite. One
#: warm-up event of 1e300 overflowed them: the fitted thresholds became 0 and NaN, and every
#: thief was judged by a broken profile.
MAX_INPUT = 1e100


def _vector(value: Any, name: str, missing: bool = False) -> np.ndarray:
    """``value`` as a vector of floats, or why not; NaN (a missing value) only with ``missing``."""
    # Fast path first: type() of every item in C, then one sum to catch NaN and infinity.
    if not isinstance(value, list) or not set(map(type, value)) <= _NUMBER_TYPES:
        hint = _what_instead(value, name)
        raise InvalidEvent("wrong_type", f"{name!r} must be an array of numbers{hint}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise InvalidEvent("non_finite", f"{name!r} holds a number too large for a float") from None
    if not math.isfinite(sum(value)):
        if np.isinf(array).any():
            raise InvalidEvent("non_finite", f"{name!r} holds infinity")
        if not missing and np.isnan(array).any():
            raise InvalidEvent("non_finite", f"{name!r} holds NaN")
    if (np.abs(array) > MAX_INPUT).any():
        raise InvalidEvent("non_finite", f"{name!r} holds a number beyond ±{MAX_INPUT:g}")
    return array


#: A number written as text: what a producer that stringifies its fields sends.
_NUMBER_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _what_instead(value: Any, name: str) -> str:
    """What a producer most likely meant by an input (or scores) that is not an array of
    numbers: a record logged by field name, scores by class name, an image or a tensor
    logged as nested arrays, a flag as true or false, a category as text.

    >>> _what_instead({"cat": 0.8}, "prediction.scores")
    ", not an object: send the probabilities in one fixed order (the model's class order)"
    """
    if isinstance(value, Mapping):
        what = "fields' values" if name == "input" else "probabilities"
        order = "feature" if name == "input" else "class"
        return f", not an object: send the {what} in one fixed order (the model's {order} order)"
    if not isinstance(value, list) or name != "input":
        return ""
    if any(isinstance(item, list) for item in value):
        return ", not nested arrays: flatten an image or a tensor (row-major) as the model reads it"
    if any(type(item) is bool for item in value):
        return ", not true or false: send a flag as the number the model reads (1 or 0)"
    text = [item for item in value if isinstance(item, str)]
    if text and all(_NUMBER_TEXT.fullmatch(item.strip()) for item in text):
        return f", not numbers in quotes (at {value.index(text[0])}: {text[0]!r}): send them unquoted"
    if text:
        return ", not text: send a category as the number the model reads (its code, or one-hot columns)"
    return ""


def softmax(logits: np.ndarray) -> np.ndarray:
    """The class probabilities of raw class scores, of one answer or of rows of them (each
    shifted by its largest: no overflow; a row of NaN stays NaN).

    >>> softmax(np.log(np.array([0.2, 0.8]))).round(6).tolist()
    [0.2, 0.8]
    """
    with np.errstate(over="ignore"):  # 1e308 apart: the lower one's probability is 0 either way
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return probabilities


def two_class(score: float, logits: bool = False) -> np.ndarray | None:
    """The two class probabilities that one logged number stands for, or None if it is no
    probability (below 0 or above 1; with ``logits``, any finite number is a logit).

    Two-class models are mostly served with one number, the second (positive) class's
    probability or logit: a fraud score, a churn probability, an Open Inference Protocol
    output of shape [n, 1]. Its answer is [1 - p, p]. Which class the number belongs to
    changes no test: the top-1 minus top-2 margin, |2p - 1|, and the entropy are the same
    either way, and a client's answered class is its label where it sends one.

    >>> two_class(0.25).tolist(), two_class(0.0, logits=True).tolist(), two_class(1.2)
    ([0.75, 0.25], [0.5, 0.5], None)
    """
    if logits:
        return softmax(np.array([0.0, score]))
    if not 0.0 <= score <= 1.0:
        return None
    return np.array([1.0 - score, score])


def _prediction(value: Any, logits: bool = False) -> tuple[int | str | None, np.ndarray | None]:
    if value is None:
        return None, None
    if type(value) is not dict and not isinstance(value, Mapping):
        raise InvalidEvent("wrong_type", "'prediction' must be an object ('label', 'scores')")
    return answer_label(value.get("label")), answer_scores(value.get("scores"), logits)


def answer_label(label: Any) -> int | str | None:
    """An answer's logged ``label`` as querywatch reads it, live and in a reference file; an
    ``InvalidEvent`` says what is wrong with one it cannot read."""
    if type(label) is float and label.is_integer():
        label = int(label)  # a server that logs a numeric label as a float (1.0: numpy's float64)
    elif type(label) is bool:
        label = int(label)  # a yes/no model that logs its answer as true or false (is_fraud)
    if type(label) is float:
        raise InvalidEvent(
            "wrong_type",
            f"'prediction.label' must be an integer or a string, not {label:g}: querywatch reads a "
            "classifier's answers; a regression model's events go without 'prediction' (its inputs "
            "are still watched)",
        )
    if label is not None and not isinstance(label, int | str):
        raise InvalidEvent("wrong_type", "'prediction.label' must be an integer or a string")
    if isinstance(label, int) and not MIN_LABEL <= label <= MAX_LABEL:
        # A held warm-up event is checkpointed as MessagePack, whose integers stop there.
        raise InvalidEvent("wrong_type", "'prediction.label' is an integer beyond 64 bits")
    if isinstance(label, str):
        _printable(label, "prediction.label")
    return label


def answer_scores(scores: Any, logits: bool = False) -> np.ndarray | None:
    """The class probabilities an answer's logged ``scores`` stand for (None: none), live and
    in a reference file: one number, in an array or not, is a two-class model's
    (``two_class``); with ``logits`` the rest go through a softmax. An ``InvalidEvent`` says
    what is wrong with scores it cannot read."""
    if scores is None:
        return None
    if type(scores) is float or type(scores) is int:
        scores = [scores]
    return class_probabilities(_vector(scores, "prediction.scores"), logits)


def class_probabilities(vector: np.ndarray, logits: bool = False) -> np.ndarray | None:
    """``answer_scores`` of scores already read as numbers (the fast path's)."""
    if vector.size == 0:
        return None
    if vector.size == 1:
        single = two_class(float(vector[0]), logits)
        if single is None:
            raise InvalidEvent(
                "bad_scores",
                "'prediction.scores' holds one number, read as a two-class model's second class's "
                f"probability, which must lie in [0, 1]; got {float(vector[0]):.6g} (a model that logs "
                "its logit: QUERYWATCH_INPUTS__SCORES=logits)",
            )
        return single
    if logits:
        return softmax(vector)
    if not _probabilities(vector):
        lowest = float(vector.min())
        got = (  # the rule it breaks: a negative score summing to one was said as "a sum of 1"
            f"score {int(vector.argmin())} is {lowest:.6g}"
            if lowest < 0.0
            else f"got a sum of {float(vector.sum()):.6g}"
        )
        raise InvalidEvent(
            "bad_scores",
            "'prediction.scores' must be class probabilities: none negative, summing to one "
            f"(within {SCORES_SUM_TOLERANCE}); {got} (a model that logs raw class scores: "
            "QUERYWATCH_INPUTS__SCORES=logits)",
        )
    return vector


RecentIds = str | OrderedDict[str, None]
"""A client's latest request ids, oldest first: up to ``SMALL_IDS`` in one string, joined by
``ID_SEPARATOR`` (its first alone), only more in an ordered dict: most clients of a public API
send a handful of requests. An ordered dict of one or two ids costs a client 350 to 450
bytes; a tuple of two, 56 bytes and the second id's string (54 for a short id); one string of
both, the second id's characters and one."""

#: Ids kept in one string (searched in order) before the ordered dict.
SMALL_IDS = 8
#: Joins a client's ids in one string: a valid id holds no control character (``_printable``).
ID_SEPARATOR = "\x00"


def remember_id(ids: RecentIds | None, request_id: str, capacity: int) -> tuple[RecentIds, bool]:
    """``ids`` with ``request_id`` as the most recent of at most ``capacity``, and whether it
    was new (the oldest id is forgotten first; a redelivered id counts as recent). An
    ordered dict is updated in place; a string is replaced.

    >>> ids, new = remember_id(None, "a", 4); ids, new
    ('a', True)
    >>> ids, new = remember_id(ids, "b", 4); ids, new
    ('a\\x00b', True)
    >>> remember_id(ids, "a", 4)
    ('b\\x00a', False)
    """
    if type(ids) is OrderedDict:
        if request_id in ids:
            ids.move_to_end(request_id)
            return ids, False
        ids[request_id] = None
        if len(ids) > capacity:
            ids.popitem(last=False)
        return ids, True
    if ids is None or capacity == 1:
        return request_id, ids != request_id
    assert type(ids) is str
    if ids == request_id:
        return ids, False
    kept = ids.split(ID_SEPARATOR)
    if request_id in kept:
        if kept[-1] != request_id:  # it becomes the most recent
            kept.remove(request_id)
            kept.append(request_id)
            return ID_SEPARATOR.join(kept), False
        return ids, False
    if len(kept) >= capacity:
        del kept[0]
    kept.append(request_id)
    if len(kept) <= SMALL_IDS:
        return ID_SEPARATOR.join(kept), True
    return OrderedDict.fromkeys(kept), True


def forget_id(ids: RecentIds | None, request_id: str) -> RecentIds | None:
    """``ids`` without ``request_id``. An event refused after its id was remembered (its
    time too far ahead, its input of another width than its model's profile) is forgotten,
    so that its dead letter, re-driven once the cause is gone, is judged again rather than
    dropped as a redelivery. An ordered dict is updated in place; a string is replaced.

    >>> forget_id("a\\x00b\\x00c", "b"), forget_id("a", "a"), forget_id("a", "z")
    ('a\\x00c', None, 'a')
    """
    if type(ids) is OrderedDict:
        ids.pop(request_id, None)
        return ids
    if ids is None or ids == request_id:
        return None
    assert type(ids) is str
    kept = ids.split(ID_SEPARATOR)
    if request_id not in kept:
        return ids
    kept.remove(request_id)
    return ID_SEPARATOR.join(kept)


def recent_ids(ids: list[str], capacity: int) -> RecentIds | None:
    """``RecentIds`` of a list of ids, oldest first (``id_list``'s inverse).

    >>> recent_ids(["a", "b", "c"], 2), recent_ids([], 2)
    ('b\\x00c', None)
    """
    recent: RecentIds | None = None
    for r in ids[-capacity:]:
        recent, _ = remember_id(recent, r, capacity)
    return recent


def id_list(ids: RecentIds | None) -> list[str]:
    """The ids, oldest first (for checkpoints)."""
    return [] if ids is None else ids.split(ID_SEPARATOR) if type(ids) is str else list(ids)


class RequestIdFilter:
    """Remembers the last ``capacity`` request ids to drop at-least-once redeliveries
    (``remember_id``): bounded memory, the oldest ids forgotten first.

    >>> seen = RequestIdFilter(capacity=2)
    >>> [seen.is_new(r) for r in ["a", "b", "a", "c", "a", "b"]]
    [True, True, False, True, False, True]
    >>> many = RequestIdFilter(capacity=20)
    >>> [many.is_new(str(i % 12)) for i in range(14)].count(True), many.state()[:3]
    (12, ['2', '3', '4'])
    """

    __slots__ = ("_ids", "capacity")

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._ids: RecentIds | None = None

    def is_new(self, request_id: str) -> bool:
        self._ids, new = remember_id(self._ids, request_id, self.capacity)
        return new

    def forget(self, request_id: str) -> None:
        """Drop ``request_id`` (``forget_id``)."""
        self._ids = forget_id(self._ids, request_id)

    def __len__(self) -> int:
        ids = self._ids
        return 0 if ids is None else ids.count(ID_SEPARATOR) + 1 if type(ids) is str else len(ids)

    def state(self) -> list[str]:
        """The remembered ids, oldest first (for checkpoints)."""
        return id_list(self._ids)

    @classmethod
    def from_state(cls, ids: list[str], capacity: int) -> RequestIdFilter:
        f = cls(capacity)
        f._ids = recent_ids(ids, capacity)
        return f
