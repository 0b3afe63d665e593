"""Load inference-log events (a JSON Lines trace) into the topic, keyed by ``client_id``.

The key keeps each client's events in one partition, in order, which is what lets N
consumers split the work without changing any client's result. Lines are sent as they are
(byte for byte): a line that is not a valid event is still produced, without a key, so that
the consumer dead-letters it, exactly as it would a bad message from a real serving tier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError

from querywatch.detector.adapters.kafka.client_config import producer_kwargs
from querywatch.detector.config import KafkaSettings
from querywatch.detector.engine.events import claimed_identity
from querywatch.detector.pipeline.lines import open_lines

#: Messages sent before waiting for the broker's acknowledgements (bounds memory).
_CHUNK = 10_000


def client_key(line: bytes) -> bytes | None:
    """The message key of an event line: the client it names in UTF-8, read as the consumer
    reads it (``claimed_identity``: a numeric id is its digits, which went unkeyed and so to
    any partition), or None if it names none.

    >>> client_key(b'{"client_id": "acct-7", "input": [1]}'), client_key(b'{"client_id": 7}')
    (b'acct-7', b'7')
    >>> client_key(b'not json') is None
    True
    """
    client_id, _model_id = claimed_identity(line)
    return None if client_id is None else client_id.encode()


def trace_lines(path: str | Path, *, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The non-blank lines of a JSON Lines file, without their line ending.

    ``progress`` is told the bytes of each line read (for a progress bar).
    """
    with open_lines(Path(path)) as trace:
        for line in trace:
            if progress is not None:
                progress(len(line))
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def produce_lines(
    producer: KafkaProducer,
    topic: str,
    lines: Iterable[bytes],
    *,
    too_large: list[tuple[int, int]] | None = None,
) -> int:
    """Send each line as one message keyed by its client id; flush; return how many were sent.

    Raises the producer's error if any send failed, so a caller never believes a partial
    load was complete. A line larger than the producer may send (its ``max_request_size``,
    about 1 MiB) cannot reach the consumer, not even as a dead letter: with ``too_large``
    given, its (line number, size) goes there and the rest of the lines are sent; without,
    the producer's error is raised.
    """
    sent = 0
    pending = []
    for number, line in enumerate(lines, start=1):
        try:
            pending.append(producer.send(topic, key=client_key(line), value=line))
        except MessageSizeTooLargeError:
            if too_large is None:
                raise
            too_large.append((number, len(line)))
        if len(pending) >= _CHUNK:
            sent += _settle(producer, pending)
    return sent + _settle(producer, pending)


def _settle(producer: KafkaProducer, pending: list[Any]) -> int:
    producer.flush()
    for future in pending:
        future.get(timeout=0)
    count = len(pending)
    pending.clear()
    return count


def produce_trace(
    settings: KafkaSettings,
    path: str | Path,
    *,
    topic: str | None = None,
    progress: Callable[[int], None] | None = None,
    too_large: list[tuple[int, int]] | None = None,
) -> int:
    """Produce the trace file at ``path`` into ``topic`` (default: the inference-log topic);
    lines too large to send go to ``too_large`` (``produce_lines``)."""
    producer = KafkaProducer(**producer_kwargs(settings, role="trace-producer"))
    try:
        lines = trace_lines(path, progress=progress)
        return produce_lines(producer, topic or settings.topic, lines, too_large=too_large)
    finally:
        producer.close()
