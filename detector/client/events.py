"""Inference events (EVENT_SCHEMA v1) as a model server builds them: one per input row.

Standard library only: this module runs inside the serving process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

#: Prefix of client ids derived from a raw API key, so an analyst sees what they are.
KEY_PREFIX = "key_"


def client_id_for_key(raw_key: str) -> str:
    """The client id of a raw API key: a SHA-256 digest, so the key never leaves the server.

    Unsalted on purpose: API keys are long random secrets, so the digest cannot be
    reversed, and every party (this library, a gateway calling ``/v1/authz`` with the raw
    key) derives the same id without sharing a secret.

    >>> client_id_for_key("sk-live-123")
    'key_9418b81169b79003fd8c4481e61b79a7'
    """
    return KEY_PREFIX + hashlib.sha256(raw_key.encode()).hexdigest()[:32]


def client_ip(
    headers: Mapping[str, str], peer: str | None, *, trusted_header: str | None, trusted_hops: int = 1
) -> str | None:
    """The caller's address: from ``trusted_header`` when a proxy we trust sets it, else the peer.

    ``X-Forwarded-For`` lists one address per proxy; only the last ``trusted_hops`` entries
    were written by proxies we run, so the entry just before them is the caller's (earlier
    entries are whatever the caller chose to send).

    >>> h = {"x-forwarded-for": "6.6.6.6, 203.0.113.7"}
    >>> client_ip(h, "10.0.0.2", trusted_header="X-Forwarded-For")
    '203.0.113.7'
    >>> client_ip(h, "10.0.0.2", trusted_header=None)
    '10.0.0.2'
    """
    if trusted_header is None:
        return peer
    value = headers.get(trusted_header.lower())
    if not value:
        return peer
    hops = [part.strip() for part in value.split(",") if part.strip()]
    if not hops:
        return peer
    return hops[max(0, len(hops) - trusted_hops)]


def missing_as_null(values: Sequence[Any]) -> list[Any]:
    """``values`` with each NaN (a missing value, as a model that reads NaN as missing is
    served it) as None, which JSON writes as null: what the event schema takes for a missing
    input value, where a JSON writer refuses NaN or writes what strict readers refuse.

    >>> missing_as_null([0.5, float("nan"), 2])
    [0.5, None, 2]
    """
    return [None if isinstance(value, float) and value != value else value for value in values]


def build_events(
    *,
    request_id: str,
    ts: float | str,
    client_id: str,
    model_id: str,
    rows: Sequence[tuple[Sequence[float], Mapping[str, Any] | None]],
    meta: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One event per ``(input, prediction)`` row of a request.

    A request of N rows gives N events whose ids are ``<request_id>:<i>`` (a single row
    keeps ``request_id``), so the consumer's duplicate filter never merges two rows.

    >>> rows = [([0.1, 0.2], {"label": 1}), ([0.3, 0.4], {"label": 0})]
    >>> [e["request_id"] for e in build_events(request_id="r1", ts=1.0, client_id="c",
    ...                                        model_id="m", rows=rows)]
    ['r1:0', 'r1:1']
    """
    extra = {k: v for k, v in (meta or {}).items() if v is not None}
    events = []
    for i, (features, prediction) in enumerate(rows):
        event: dict[str, Any] = {
            "request_id": request_id if len(rows) == 1 else f"{request_id}:{i}",
            "ts": ts,
            "client_id": client_id,
            "model_id": model_id,
            "input": features,
        }
        if prediction:
            event["prediction"] = dict(prediction)
        if extra:
            event["meta"] = extra
        events.append(event)
    return events
