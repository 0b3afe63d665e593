"""Where the emitter's thread writes events: a Kafka topic or a JSON Lines file.

A sink is only ever called from the emitter's background thread. ``write`` returns how
many of the events it could not hand over (counted as dropped); an exception from
``open`` means "not reachable now, try again later".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

Encoded = tuple[bytes, bytes]  # (key = client_id, value = one JSON event)

#: ``host``, ``host:port`` or ``[v6 address]:port``, as kafka-python reads them (port 9092 if none).
_BROKER = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)(:(?P<port>\d{1,5}))?")


def broker_addresses(servers: str) -> list[str]:
    """The brokers of a comma-separated list, or a ``ValueError`` naming one that cannot be
    one (a URL, a space, a port out of range): said at once, not as a bootstrap that never
    succeeds. The consumers' settings are read by the same rule.

    >>> broker_addresses("kafka-0.kafka:9092, [::1]:9092,broker")
    ['kafka-0.kafka:9092', '[::1]:9092', 'broker']
    >>> broker_addresses("http://broker:9092")
    Traceback (most recent call last):
    ...
    ValueError: 'http://broker:9092' is not host:port
    """
    found = [s.strip() for s in servers.split(",") if s.strip()]
    for server in found:
        match = _BROKER.fullmatch(server)
        if match is None or (match["port"] is not None and not 0 < int(match["port"]) < 65536):
            raise ValueError(f"{server!r} is not host:port")
    if not found:
        raise ValueError("no broker named")
    return found


class Sink(Protocol):
    def open(self) -> None: ...

    def write(self, batch: Sequence[Encoded], failed: Callable[[int], None]) -> int: ...

    def close(self, timeout: float) -> None: ...


class JsonlSink:
    """Appends one event a line to a file, the trace format ``querywatch replay`` reads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: Any = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("ab")

    def write(self, batch: Sequence[Encoded], failed: Callable[[int], None]) -> int:
        self._file.write(b"".join(value + b"\n" for _key, value in batch))
        self._file.flush()
        return 0

    def close(self, timeout: float) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class KafkaSink:
    """Produces each event to ``topic``, keyed by client id (the consumer needs one client's
    events in one partition).

    ``KafkaProducer()`` raises when no broker answers and ``send()`` blocks up to
    ``max_block_ms`` while the broker is unknown or the producer's buffer is full; both
    happen here, on the emitter's thread, never on a request's. Delivery failures reported
    later by the producer are counted through ``failed``.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "inference-logs",
        *,
        max_block_ms: int = 2000,
        **producer_options: Any,
    ) -> None:
        self.topic = topic
        self.options = {
            "bootstrap_servers": broker_addresses(bootstrap_servers),
            "max_block_ms": max_block_ms,
            "linger_ms": 20,
            **producer_options,
        }
        self._producer: Any = None

    def open(self) -> None:
        from kafka import KafkaProducer  # here: importing kafka-python costs ~50 ms and threads

        self._producer = KafkaProducer(**self.options)

    def write(self, batch: Sequence[Encoded], failed: Callable[[int], None]) -> int:
        from kafka.errors import KafkaError

        lost = 0
        for key, value in batch:
            try:
                future = self._producer.send(self.topic, key=key, value=value)
            except KafkaError:  # KafkaTimeoutError after max_block_ms, buffer full, ...
                lost += 1
                continue
            future.add_errback(lambda _exc: failed(1))
        return lost

    def close(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None
