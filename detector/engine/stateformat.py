"""Stored client state: named, versioned plain data (MessagePack), never pickle.

A checkpoint holds one client's state on each of its models: ``MAGIC`` followed by a
zstd frame, compressed with the fixed ``DICTIONARY``, of a MessagePack map::

    {"version": 4,
     "models": {model_id: {"profile": profile version,
                           "features": {family name: plain data},
                           "evidence": {test name: [floats]},
                           "counters": {counter name: number, string or None},
                           "alert": the open alert's lifecycle, or None,
                           "sources": {"ips": [...], "user_agents": [...]}}}}

Plain data only (maps, arrays, numbers, strings, bytes, None): loading it runs no code, so
whoever can write to the checkpoint table cannot make the consumer execute anything. Parts
are keyed by name, so a release that adds a feature family, an evidence test or a counter
loads older states with the new part starting fresh, and ignores parts it no longer has.

Compression keeps a state within 4 KB (``benchmarks/bench_replay.py`` prints the sizes): the
names, repeated in every state, and the reasons' wording come from the dictionary, so a
state is mostly its own arrays and numbers (digits trace: median 4,091 -> about 2,900 B,
for about 20 us to compress and 10 us to decompress). States written with the first
dictionary (``FIRST_MAGIC``) or as plain MessagePack (``PLAIN_MAGIC``, release 0.2) still load.

Release 0.1 stored ``pickle`` (protocol 5) of positional tuples. ``loads`` still reads those
through an unpickler that resolves no global at all — only the pickle opcodes for plain
data work — and migrates them to the current version.
"""

from __future__ import annotations

import io
import pickle
import threading
from typing import Any

import msgpack
import zstandard

MAGIC = b"QWC2"
#: zstd frames compressed with ``FIRST_DICTIONARY``, as written before the reasons gave each
#: model's benign level (read, never written).
FIRST_MAGIC = b"QWCZ"
#: MessagePack without compression, as release 0.2 wrote it (read, never written).
PLAIN_MAGIC = b"QWCS"
VERSION = 4
#: Versions this release reads: 2 stored whole queries in the reservoir rows of an input wider
#: than 32 features and in the working rows of one wider than 256, which load as the subset of
#: features this release keeps (``features.layout``); 3 kept the first layout generation's
#: subset of them, which this release cannot read (a wide input's query distances start
#: fresh: ``QueryDistances.set_state``). An older release refuses a newer version (its rows
#: hold other features) rather than misread it.
READABLE_VERSIONS = (2, 3, 4)
#: No stored state is near this big; a corrupt or hostile frame cannot make loading allocate more.
MAX_STATE_BYTES = 1 << 20

#: What the compressor referred back to under ``FIRST_MAGIC``: the names and phrases every
#: state repeats. History, like ``V1_FAMILIES``: never edit it (states written with it could
#: no longer be read); a different dictionary needs a new ``MAGIC``, as ``DICTIONARY`` has.
FIRST_PHRASES = " ".join(
    (
        "version models profile features evidence counters alert sources ips user_agents",
        "distances coverage classes ood boundary rate extraction out_of_profile steps far",
        "queries alerts open_alert peak last_ts last_snapshot_risk population_risk",
        "sequence sent_ts below_since below_queries alert_id client_id model_id ts risk severity",
        "reasons technique kind peak_risk source_ips closed_ts critical high medium low client",
        "boundary_share burstiness cell_divergence cell_entropy cells_visited class_divergence",
        "class_entropy coverage_ratio distance_stat exact_resend_share far_share",
        "near_duplicate_share ood_recent ood_share output_entropy population_percentile",
        "rate_per_hour step_share AML.T0024.002",
        "of queries lie outside the model's reference data (a benign client sends about 0.1%);",
        "recent share queries lie farther from the model's data than any reference input",
        "(synthetic or other-domain queries, however many natural ones surround them)",
        "feature profile more unusual than of reference clients (population model)",
        "queries are small fixed-size steps from an earlier query (a perturbation chain, as in",
        "Jacobian or random-step augmentation) of answers sit on the decision boundary",
        "(reference: 5%) \u2014 boundary probing or uncertainty sampling input-space coverage",
        "\u00d7 what a benign client reaches after",
    )
)
FIRST_DICTIONARY = zstandard.ZstdCompressionDict(
    FIRST_PHRASES.encode(), dict_type=zstandard.DICT_TYPE_RAWCONTENT
)
#: What the compressor may refer back to (``MAGIC``): ``FIRST_PHRASES`` and the wording
#: reasons took when they began to give each model's benign level (``models.registry``).
#: History too: never edit it. A phrase added later merely compresses less. Without these,
#: the largest state of the bench's digits trace grew from 4,080 to 4,102 bytes.
DICTIONARY = zstandard.ZstdCompressionDict(
    " ".join(
        (
            FIRST_PHRASES,
            "of queries lie outside the model's reference data (a benign client at most 20%); recent share",
            "(synthetic or other-domain queries, however many natural ones surround them;",
            "a benign client at most",
            "(a perturbation chain, as in Jacobian or random-step augmentation; a benign client at most 5%)",
            "of answers sit on the decision boundary, above the reference's rate for inputs as typical",
            "(a benign client at most \u00d7 it) \u2014 boundary probing or uncertainty sampling",
        )
    ).encode(),
    dict_type=zstandard.DICT_TYPE_RAWCONTENT,
)
_LOCAL = threading.local()

#: Release 0.1's positional layout (history: never changes with the registry).
V1_FAMILIES = ("distances", "coverage", "classes", "ood", "boundary", "rate")
V1_TESTS = ("out_of_profile", "steps", "boundary", "coverage", "far")  # "far" came late in 0.1
V1_COUNTERS = ("queries", "alerts", "open_alert", "peak", "last_ts", "last_snapshot_risk", "population_risk")

ModelStates = dict[str, dict[str, Any]]


def dumps(models: ModelStates) -> bytes:
    """Serialize a client's per-model states (see the module docstring for the layout)."""
    body: bytes = msgpack.packb({"version": VERSION, "models": models}, default=_plain, use_bin_type=True)
    return MAGIC + compress(body)


def compress(body: bytes) -> bytes:
    """``body`` as a zstd frame with ``DICTIONARY`` (the part of a state after ``MAGIC``)."""
    coders = _coders()
    frame: bytes = coders[0].compress(body)
    return frame


def loads(data: bytes) -> ModelStates:
    """The per-model states in ``data``, migrated to the current version; ValueError if
    ``data`` is not a querywatch client state."""
    for magic, decompressor in zip((MAGIC, FIRST_MAGIC), _coders()[1:], strict=True):
        if data.startswith(magic):
            try:
                body = decompressor.decompress(data[len(magic) :], max_output_size=MAX_STATE_BYTES)
            except zstandard.ZstdError as exc:
                raise ValueError(f"corrupt client state: {exc}") from None
            return _unpack(body)
    if data.startswith(PLAIN_MAGIC):
        return _unpack(data[len(PLAIN_MAGIC) :])
    if data[:2] == b"\x80\x05":
        return _migrate_v1(_plain_unpickle(data))
    raise ValueError("not a querywatch client state")


#: A thread's compressor, its decompressor of ``MAGIC`` states and of ``FIRST_MAGIC`` ones.
_Coders = tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor, zstandard.ZstdDecompressor]


def _coders() -> _Coders:
    """This thread's compressor and decompressors (none may be shared between threads)."""
    coders: _Coders | None = getattr(_LOCAL, "coders", None)
    if coders is None:
        coders = _LOCAL.coders = (
            # Level 1: a state is mostly arrays that higher levels do not shrink further.
            zstandard.ZstdCompressor(
                level=1, dict_data=DICTIONARY, write_content_size=False, write_dict_id=False
            ),
            zstandard.ZstdDecompressor(dict_data=DICTIONARY),
            zstandard.ZstdDecompressor(dict_data=FIRST_DICTIONARY),
        )
    return coders


def _unpack(body: bytes) -> ModelStates:
    try:
        loaded = msgpack.unpackb(body, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"corrupt client state: {exc}") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("models"), dict):
        raise ValueError("not a querywatch client state")
    if loaded.get("version") not in READABLE_VERSIONS:
        raise ValueError(f"client state version {loaded.get('version')!r} is newer than this release")
    models: ModelStates = loaded["models"]
    return models


class _NoGlobals(pickle.Unpickler):
    """Refuses every global: classes, functions, ``__reduce__`` tricks all need one."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"client state refers to {module}.{name}; only plain data is allowed")


def _plain_unpickle(data: bytes) -> Any:
    try:
        return _NoGlobals(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"not a loadable 0.1 client state: {exc}") from None


def _migrate_v1(loaded: Any) -> ModelStates:
    """Release 0.1's ``{model: {"profile", "features": (6), "evidence": (4 or 5), "counters": (7)}}``."""
    if not isinstance(loaded, dict):
        raise ValueError("not a querywatch client state")
    models: ModelStates = {}
    for model_id, old in loaded.items():
        try:
            features, evidence, counters = old["features"], old["evidence"], old["counters"]
            tests = dict(zip(V1_TESTS, evidence, strict=False))
            tests["coverage"] = [tests["coverage"]]  # a bare float in 0.1
            models[str(model_id)] = {
                "profile": old["profile"],
                "features": dict(zip(V1_FAMILIES, features, strict=True)),
                "evidence": tests,
                "counters": dict(zip(V1_COUNTERS, counters, strict=True)),
            }
        except (KeyError, TypeError, ValueError):
            continue  # that model's part starts fresh rather than failing the whole client
    return models


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (anything else is a bug: state must be plain data)."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == ():
        return item()
    raise TypeError(f"client state must be plain data, got {type(value).__name__}")
