"""Hands events to a sink on a background thread, so a request never waits for Kafka.

``emit`` appends to a bounded in-memory buffer and returns: it never blocks, never does
I/O and never raises. When the buffer is full (the broker has been down for a while) new
events are dropped and counted. The thread encodes the events, opens the sink (retrying
with a back-off while it is unreachable) and writes them in batches.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from .events import missing_as_null
from .sinks import Encoded, Sink

log = logging.getLogger("querywatch.client")

#: Reasons an event can be dropped; each is a label value of the drop metric.
DROP_REASONS = ("buffer_full", "invalid", "send_failed", "unsent_at_close")


def _plain(value: Any) -> Any:
    """JSON for array-likes (numpy arrays and scalars) without importing numpy."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encoded(event: Mapping[str, Any]) -> str:
    """``event`` as JSON; an input's missing values (NaN) as null (``missing_as_null``), which
    only an event that holds one pays for."""
    try:
        return json.dumps(event, separators=(",", ":"), allow_nan=False, default=_plain)
    except ValueError:
        features = event.get("input")
        if features is None:
            raise
        values = features.tolist() if hasattr(features, "tolist") else features
        event = {**event, "input": missing_as_null(values)}
        return json.dumps(event, separators=(",", ":"), allow_nan=False, default=_plain)


class Emitter:
    """Buffer of at most ``capacity`` events drained into ``sink`` by one daemon thread."""

    def __init__(
        self,
        sink: Sink,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        idle_seconds: float = 0.02,
        retry_seconds: tuple[float, ...] = (0.5, 1, 2, 5, 10, 30),
    ) -> None:
        if capacity < 1 or batch_size < 1:
            raise ValueError("capacity and batch_size must be at least 1")
        self.sink = sink
        self.capacity = capacity
        self.batch_size = batch_size
        self.idle_seconds = idle_seconds
        self.retry_seconds = retry_seconds
        self._buffer: deque[Mapping[str, Any]] = deque()
        self._lock = threading.Lock()
        self._accepted = 0
        self._sent = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._stop = threading.Event()
        self._connected = False
        self._thread = threading.Thread(target=self._run, name="querywatch-emitter", daemon=True)
        self._thread.start()

    def emit(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Queue events; return how many were accepted (the rest are counted as dropped)."""
        accepted = dropped = 0
        for event in events:
            if len(self._buffer) >= self.capacity or self._stop.is_set():
                dropped += 1
            else:
                self._buffer.append(event)
                accepted += 1
        with self._lock:
            self._accepted += accepted
            self._dropped["buffer_full"] += dropped
        return accepted

    def stats(self) -> dict[str, Any]:
        """Counters since start: accepted, sent (handed to the sink), dropped by reason, pending."""
        with self._lock:
            return {
                "accepted": self._accepted,
                "sent": self._sent,
                "dropped": dict(self._dropped),
                "pending": len(self._buffer),
                "connected": self._connected,
            }

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered (for up to ``timeout`` seconds), then close the sink."""
        self._stop.set()
        self._thread.join(timeout)

    def _drop(self, reason: str, n: int) -> None:
        if n:
            with self._lock:
                self._dropped[reason] += n

    def _run(self) -> None:
        attempt = 0
        while True:
            if not self._connected:
                if self._stop.is_set():
                    break
                try:
                    self.sink.open()
                except Exception as exc:  # any failure to reach the sink: retry later
                    pause = self.retry_seconds[min(attempt, len(self.retry_seconds) - 1)]
                    if attempt == 0:
                        log.warning("querywatch sink unreachable (%s); retrying every %s s", exc, pause)
                    attempt += 1
                    self._stop.wait(pause)
                    continue
                attempt = 0
                self._connected = True
            batch = self._take()
            if not batch:
                if self._stop.is_set():
                    break
                time.sleep(self.idle_seconds)
                continue
            self._write(batch)
        self._finish()

    def _take(self) -> list[Encoded]:
        batch: list[Encoded] = []
        while self._buffer and len(batch) < self.batch_size:
            event = self._buffer.popleft()
            try:
                value = _encoded(event)
                batch.append((str(event["client_id"]).encode(), value.encode()))
            except (TypeError, ValueError, KeyError) as exc:
                log.warning("querywatch dropped an event that is not valid JSON: %s", exc)
                self._drop("invalid", 1)
        return batch

    def _write(self, batch: list[Encoded]) -> None:
        try:
            lost = self.sink.write(batch, lambda n: self._drop("send_failed", n))
        except Exception as exc:  # a broken sink: count the batch, reopen before the next
            log.warning("querywatch sink failed (%s); reconnecting", exc)
            self._drop("send_failed", len(batch))
            self._close_sink(0.0)
            return
        self._drop("send_failed", lost)
        with self._lock:
            self._sent += len(batch) - lost

    def _finish(self) -> None:
        if self._connected:
            self._close_sink(2.0)
        self._drop("unsent_at_close", len(self._buffer))
        self._buffer.clear()

    def _close_sink(self, timeout: float) -> None:
        self._connected = False
        try:
            self.sink.close(timeout)
        except Exception as exc:
            log.warning("querywatch sink did not close cleanly: %s", exc)
