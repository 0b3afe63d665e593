"""Dead letters: a message the engine must not see, kept with its reason and original bytes.

Every message that fails to decode, validate or score raises ``InvalidEvent`` with a
stable reason code (``querywatch.detector.engine.events.REASONS``); the consumer turns it into a
``DeadLetter``, counts it, stores it in the ``dead_letters`` table in the checkpoint
transaction (exactly once) and sends it to the dead-letter topic (at least once). The
consumer never stops on bad input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    *, topic: str, partition: int, offset: int, raw: bytes, key: bytes | None, error: InvalidEvent
) -> DeadLetter:
    """The dead letter for ``raw``, counted under its reason and logged (rate-limited)."""
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
    return DeadLetter(topic, partition, offset, error.reason, error.detail[:MAX_DETAIL], raw, key)
