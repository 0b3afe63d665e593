"""Dead letters: a message the engine must not see, kept with its reason and original bytes.

Every message that fails to decode, validate or score raises ``InvalidEvent`` with a
stable reason code (``querywatch.detector.engine.events.REASONS``); the consumer turns it into a
``DeadLetter``, counts it, stores it in the ``dead_letters`` table in the checkpoint
transaction (exactly once), under the client and model it names where it names them, and
sends it to the dead-letter topic (at least once). The
consumer never stops on bad input.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from querywatch.detector.client.events import build_events, missing_as_null
from querywatch.detector.engine.events import Event
from querywatch.detector.errors import InvalidEvent
from querywatch.detector.logging import LogLimiter
from querywatch.detector.metrics import EVENTS_REJECTED

log = logging.getLogger(__name__)
#: One line per reason and minute; the metric counts every one.
_LOG_LIMIT = LogLimiter(every_seconds=60.0)

#: Characters of ``detail`` kept (the original bytes are always kept whole).
MAX_DETAIL = 1000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected message: where it came from, why, and its bytes exactly as received."""

    topic: str
    partition: int
    offset: int
    reason: str
    detail: str
    raw: bytes
    key: bytes | None = None
    client_id: str | None = None
    """The client the message names (``engine.events.claimed_identity``), None if none."""
    model_id: str | None = None

    @property
    def source(self) -> str:
        """``topic/partition/offset`` of the original message.

        >>> DeadLetter("logs", 2, 41, "not_json", "x", b"{").source
        'logs/2/41'
        """
        return f"{self.topic}/{self.partition}/{self.offset}"

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers of the dead-letter message (its value is the original bytes)."""
        return [
            ("querywatch.reason", self.reason.encode()),
            ("querywatch.detail", self.detail.encode()),
            ("querywatch.source", self.source.encode()),
        ]


def reject(
    *,
    topic: str,
    partition: int,
    offset: int,
    raw: bytes,
    key: bytes | None,
    error: InvalidEvent,
    client_id: str | None,
    model_id: str | None,
) -> DeadLetter:
    """The dead letter for ``raw``, from ``client_id`` on ``model_id`` (``pipeline.Refusal``),
    counted under its reason and logged (rate-limited)."""
    EVENTS_REJECTED.labels(reason=error.reason).inc()
    held = _LOG_LIMIT.allow(error.reason)
    if held is not None:
        log.warning(
            "dead-lettered %s/%d/%d: %s: %r (%d more %s in the last minute; all counted in "
            "querywatch_events_rejected_total)",
            topic,
            partition,
            offset,
            error.reason,
            error.detail[:200],
            held,
            error.reason,
        )
    return DeadLetter(
        topic, partition, offset, error.reason, error.detail[:MAX_DETAIL], raw, key, client_id, model_id
    )


def encoded(event: Event) -> bytes:
    """``event`` as EVENT_SCHEMA v1 JSON (``build_events``, ``ts`` in epoch seconds): the
    bytes of a held event taken back from a checkpoint, which has no original ones, when it
    is dead-lettered. ``parse_event`` reads it back to the same event (its input as
    validated, i.e. projected if it was; of its ``meta`` the grouping keys kept).

    >>> import numpy as np
    >>> from querywatch.detector.engine.events import parse_event
    >>> e = Event("r1", 1.5, "c", "m", np.array([0.25, 1.0]), 3, None, "10.0.0.7")
    >>> encoded(e)
    b'{"request_id":"r1","ts":1.5,"client_id":"c","model_id":"m","input":[0.25,1.0],"prediction":{"label":3},"meta":{"ip":"10.0.0.7"}}'
    >>> back = parse_event(encoded(e))
    >>> (back.request_id, back.ts, back.input.tolist(), back.label, back.ip)
    ('r1', 1.5, [0.25, 1.0], 3, '10.0.0.7')
    >>> e.input[0] = np.nan  # a missing value goes as null
    >>> b'"input":[null,1.0]' in encoded(e)
    True
    """
    prediction = {"label": event.label, "scores": None if event.scores is None else event.scores.tolist()}
    (plain,) = build_events(
        request_id=event.request_id,
        ts=event.ts,
        client_id=event.client_id,
        model_id=event.model_id,
        rows=[
            (missing_as_null(event.input.tolist()), {k: v for k, v in prediction.items() if v is not None})
        ],
        meta={"ip": event.ip, "user_agent": event.user_agent, "org": event.org},
    )
    return json.dumps(plain, separators=(",", ":"), allow_nan=False).encode()
