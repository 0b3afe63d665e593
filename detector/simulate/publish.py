"""Produce a simulated trace into the inference-log topic, optionally at a steady pace.

Reuses the Kafka adapter's producer (``querywatch.detector.adapters.kafka.producer``): messages are keyed by
``client_id`` so each client's events stay in order in one partition. Pacing sends small
chunks on a fixed schedule, so a demo shows alerts arriving while traffic flows instead of
all at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaProducer

from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.client_config import producer_kwargs
from querywatch.detector.adapters.kafka.producer import produce_lines
from querywatch.detector.config import KafkaSettings

#: Chunks per second when pacing (each chunk is one flush).
_CHUNKS_PER_SECOND = 10


def event_lines(events: Iterable[dict[str, Any]], *, stamp: bool = False) -> Iterable[bytes]:
    """Events as compact UTF-8 JSON message values; ``stamp`` sets ``ts`` to the time of sending."""
    for event in events:
        if stamp:
            event = {**event, "ts": round(time.time(), 3)}
        yield json.dumps(event, separators=(",", ":"), allow_nan=False).encode()


def publish_events(
    events: Sequence[dict[str, Any]],
    settings: KafkaSettings,
    *,
    rate: float | None = None,
    stop: threading.Event | None = None,
    stamp: bool = False,
) -> int:
    """Send ``events`` to ``settings.topic`` (created if missing); return how many were sent.

    ``rate`` is events per second (None: as fast as the broker takes them). Setting
    ``stop`` ends a paced run early, after the chunk in flight. ``stamp`` gives each event
    the wall-clock time it is sent at (the live demo), instead of its simulated time.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0 events/s")
    ensure_topics(settings, (settings.topic,))
    producer = KafkaProducer(**producer_kwargs(settings, role="simulator"))
    try:
        if rate is None:
            return produce_lines(producer, settings.topic, event_lines(events, stamp=stamp))
        chunk = max(1, int(rate / _CHUNKS_PER_SECOND))
        began, sent = time.monotonic(), 0
        while sent < len(events) and not (stop is not None and stop.is_set()):
            sent += produce_lines(
                producer, settings.topic, event_lines(events[sent : sent + chunk], stamp=stamp)
            )
            delay = began + sent / rate - time.monotonic()
            if delay <= 0:
                continue
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                break
        return sent
    finally:
        producer.close()
