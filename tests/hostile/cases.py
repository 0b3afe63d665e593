"""The hostile-input suite: single events that once crashed or poisoned the consumer.

Each case is one raw message and the dead-letter reason it must get. The suite is
inserted into a clean trace and run through replay and the real consumer; the clean
clients' counts must equal a clean run's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

#: Inputs longer than this are rejected in the suite's settings (the default projects them).
SUITE_MAX_DIM = 64
#: Event byte limit in the suite's settings.
SUITE_MAX_BYTES = 4096


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes
    reason: str


def _event(n: int, **changes: object) -> bytes:
    base: dict[str, object] = {
        "request_id": f"hostile-{n}",
        "ts": 1767571200.0,  # replaced by the suite with a time inside the clean trace
        "client_id": f"hostile-client-{n}",
        "model_id": "digits-v1",
        "input": [0.0] * 64,
    }
    return json.dumps({**base, **changes}).encode()


def cases(model_id: str, dim: int, ts: float, classes: int) -> list[Case]:
    """The suite for a stream of ``model_id`` (``dim`` inputs, ``classes`` scores) around ``ts``."""
    good = {"model_id": model_id, "input": [0.5] * dim, "ts": ts}
    even = [1.0 / classes] * classes
    huge_ts = _event(2, **{**good, "ts": "#"}).replace(b'"#"', b"9" * 400)
    changes: list[tuple[str, dict[str, object], str]] = [
        ("ts past year 9999", {"ts": 1e300}, "bad_timestamp"),
        ("ts year 10000 text", {"ts": "10000-01-01T00:00:00Z"}, "bad_timestamp"),
        ("ts before 1970", {"ts": -5}, "bad_timestamp"),
        ("NUL in client_id", {"client_id": "evil\u0000client"}, "bad_identifier"),
        ("newline in request_id", {"request_id": "r\nFAKE LOG LINE"}, "bad_identifier"),
        ("lone surrogate in model_id", {"model_id": "m\ud800"}, "bad_identifier"),
        ("escape in label", {"prediction": {"label": "\u001b[31m"}}, "bad_identifier"),
        ("label beyond 64 bits", {"prediction": {"label": 10**30}}, "wrong_type"),
        ("negative scores", {"prediction": {"scores": [1.5, -0.5] + [0.0] * (classes - 2)}}, "bad_scores"),
        ("scores not summing to one", {"prediction": {"scores": [0.01] * classes}}, "bad_scores"),
        ("scores of the wrong length", {"prediction": {"scores": [*even, 0.0]}}, "bad_scores"),
        ("far-future epoch ts", {"ts": 1e11}, "future_timestamp"),
        ("far-future text ts", {"ts": "2100-01-01T00:00:00Z"}, "future_timestamp"),
        ("too many inputs", {"input": [0.5] * (SUITE_MAX_DIM + 1)}, "too_many_inputs"),
        ("oversized", {"input": [0.123456789] * 400}, "oversized"),
    ]
    made = [
        Case(name, _event(n, **{**good, **change}), reason)
        for n, (name, change, reason) in enumerate(changes, 3)
    ]
    return [Case("ts a huge integer", huge_ts, "bad_timestamp"), *made]
