"""Structured logs for every long-running command: one JSON object per line on stderr.

Log shippers (Loki, Elasticsearch, CloudWatch) parse a JSON line without a custom grammar,
and fields passed with ``extra=`` (``client_id``, ``partition``, ``alert_id`` ...) stay
queryable instead of being buried in a sentence. ``log_json = false`` gives plain lines for
a developer's terminal.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from querywatch.detector.config import Settings
from querywatch.detector.errors import ConfigError

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
#: ``color_message`` is uvicorn's copy of the message with terminal colours.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}
#: Libraries that narrate every connection at INFO: only their warnings are worth a line.
#: Alembic narrates each revision and, since 1.18, each plugin it registers on import.
_CHATTY = ("kafka", "uvicorn.access", "httpx", "httpcore", "alembic")
#: What varies between two lines of one kind: addresses, counts, durations.
_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?")
_PLAIN = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time (UTC, RFC 3339), level, logger, message, extras.

    >>> record = logging.LogRecord("qw", logging.INFO, __file__, 1, "hi %s", ("you",), None)
    >>> record.client_id = "acct-1"
    >>> line = json.loads(JsonFormatter().format(record))
    >>> line["level"], line["logger"], line["message"], line["client_id"]
    ('info', 'qw', 'hi you', 'acct-1')
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> logging.Handler:
    """Send all logs to ``stream`` (stderr) at ``settings.log_level``, as JSON if ``log_json``.

    Calling it again replaces the handler it installed before (no doubled lines).
    """
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        raise ConfigError(f"log_level {settings.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else logging.Formatter(_PLAIN))
    handler.set_name("querywatch")
    handler.addFilter(ClientChatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "querywatch"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return handler


class LogLimiter:
    """At most one log line per key and period: a flood of hostile events must not flood the
    log (or its disk) too, and a state that lasts (an outage, a paused partition, a model
    warming up) is said again without a line per poll. ``allow`` says whether to log now,
    and how many were held back; a limiter of one thing leaves ``key`` out.

    >>> now = [0.0]
    >>> limit = LogLimiter(every_seconds=60, clock=lambda: now[0])
    >>> [limit.allow("not_json") for _ in range(3)]
    [0, None, None]
    >>> now[0] = 61.0
    >>> limit.allow("not_json"), limit.allow("bad_scores")
    (2, 0)
    >>> limit.restart(); now[0] = 100.0; limit.allow(), limit.allow("bad_scores")
    (None, None)
    >>> limit.keep_only(["not_json"]); limit.allow(), limit.allow("bad_scores")
    (0, 0)
    """

    def __init__(self, every_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_seconds = every_seconds
        self._clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: Hashable = None) -> int | None:
        """None to stay quiet, else the number of lines held back since the last one."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every_seconds:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)

    def restart(self, key: Hashable = None) -> None:
        """Start ``key``'s period now: its next line is a period away (a line of its own was
        said, or the state it reminds of has just begun)."""
        with self._lock:
            self._last[key] = self._clock()
            self._held.pop(key, None)

    def keep_only(self, keys: Iterable[Hashable]) -> None:
        """Forget the other keys: one allowed again later is allowed at once."""
        kept = set(keys)
        with self._lock:
            self._last = {k: t for k, t in self._last.items() if k in kept}
            self._held = {k: n for k, n in self._held.items() if k in kept}


class ClientChatter(logging.Filter):
    """Lets one line of each kind from the Kafka client through per minute.

    While a broker is away kafka-python logs every failed connection, metadata refresh
    and fetch (about 80 lines every 5 s); the consumer's own outage lines say what matters.
    A kind is the logger and the message with its numbers masked: some lines come formatted
    already (a task's address, how long it ran), and keyed whole each would pass, and stay in
    the limiter's table for good.

    >>> chatter = ClientChatter()
    >>> def record(name: str, msg: str = "Connection failed: %s") -> logging.LogRecord:
    ...     return logging.LogRecord(name, logging.ERROR, "", 0, msg, ("refused",), None)
    >>> [chatter.filter(record("kafka.net.manager")) for _ in range(3)]
    [True, False, False]
    >>> chatter.filter(record("querywatch.x"))
    True
    >>> [chatter.filter(record("kafka.net.selector", f"Task <0x7f{i}a> ran for 0.{i}s")) for i in (1, 2)]
    [True, False]
    """

    def __init__(self, every_seconds: float = 60.0) -> None:
        super().__init__()
        self._limit = LogLimiter(every_seconds)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka"):
            return True
        kind = _NUMBERS.sub("#", str(record.msg))
        return self._limit.allow(f"{record.name}:{kind}") is not None
