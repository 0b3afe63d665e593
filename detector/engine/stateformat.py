"""Stored client state: named, versioned plain data (MessagePack), never pickle.

A checkpoint holds one client's state on each of its models. Since version 2 it is
``MAGIC`` followed by a MessagePack map::

    {"version": 2,
     "models": {model_id: {"profile": profile version,
                           "features": {family name: plain data},
                           "evidence": {test name: [floats]},
                           "counters": {counter name: number, string or None}}}}

Plain data only (maps, arrays, numbers, strings, bytes, None): loading it runs no code, so
whoever can write to the checkpoint table cannot make the consumer execute anything. Parts
are keyed by name, so a release that adds a feature family, an evidence test or a counter
loads older states with the new part starting fresh, and ignores parts it no longer has.

Release 0.1 stored ``pickle`` (protocol 5) of positional tuples. ``loads`` still reads those
through an unpickler that resolves no global at all — only the pickle opcodes for plain
data work — and migrates them to version 2.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import msgpack

MAGIC = b"QWCS"
VERSION = 2

#: Release 0.1's positional layout (history: never changes with the registry).
V1_FAMILIES = ("distances", "coverage", "classes", "ood", "boundary", "rate")
V1_TESTS = ("out_of_profile", "steps", "boundary", "coverage", "far")  # "far" came late in 0.1
V1_COUNTERS = ("queries", "alerts", "open_alert", "peak", "last_ts", "last_snapshot_risk", "population_risk")

ModelStates = dict[str, dict[str, Any]]


def dumps(models: ModelStates) -> bytes:
    """Serialize a client's per-model states (see the module docstring for the layout)."""
    body: bytes = msgpack.packb({"version": VERSION, "models": models}, default=_plain, use_bin_type=True)
    return MAGIC + body


def loads(data: bytes) -> ModelStates:
    """The per-model states in ``data``, migrated to the current version; ValueError if
    ``data`` is not a querywatch client state."""
    if data.startswith(MAGIC):
        try:
            loaded = msgpack.unpackb(data[len(MAGIC) :], raw=False)
        except (ValueError, msgpack.UnpackException) as exc:
            raise ValueError(f"corrupt client state: {exc}") from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("models"), dict):
            raise ValueError("not a querywatch client state")
        if loaded.get("version") != VERSION:
            raise ValueError(f"client state version {loaded.get('version')!r} is newer than this release")
        models: ModelStates = loaded["models"]
        return models
    if data[:2] == b"\x80\x05":
        return _migrate_v1(_plain_unpickle(data))
    raise ValueError("not a querywatch client state")


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
