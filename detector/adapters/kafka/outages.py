"""Surviving a database or broker outage in process: retry with backoff, say so once.

A consumer that exits on the first failed checkpoint turns a 5-second database restart
into a crash loop, a rebalance storm and a traceback that names a rebalance callback. The
consumer loop instead treats database and broker errors as an outage of that dependency:
it pauses its partitions (so memory stays bounded: nothing new is read while nothing can
be stored), keeps polling (so it stays in its group), retries with an exponential backoff,
and resumes when a checkpoint succeeds. Nothing is lost: the events since the last stored
checkpoint stay in memory, or are read again from the log by whoever owns the partition.

The operator sees one error line when an outage starts, one reminder a minute while it
lasts, and one line when it ends; ``querywatch_outage`` says which dependency is down.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from kafka.errors import KafkaError

from querywatch.detector.adapters.db.session import DATABASE_ERRORS
from querywatch.detector.logging import LogLimiter
from querywatch.detector.metrics import OUTAGE

log = logging.getLogger(__name__)

#: Errors a consumer outlives by retrying: the database or the broker is away.
RETRYABLE: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, KafkaError, OSError)


def dependency_of(exc: BaseException) -> str:
    """Which dependency an error points at (a metric label and a word for the log)."""
    return "database" if isinstance(exc, DATABASE_ERRORS) else "kafka"


class Outage:
    """The state of one retried dependency: when to try again, and what to log.

    >>> now = [0.0]
    >>> outage = Outage(clock=lambda: now[0], jitter=0.0)
    >>> outage.failed(ConnectionError("refused")), outage.ready()
    (True, False)
    >>> now[0] = 0.5; outage.ready(), outage.failed(ConnectionError("refused"))
    (True, False)
    >>> now[0] = 10.0; outage.recovered()
    True
    """

    def __init__(
        self,
        *,
        first_delay: float = 0.5,
        max_delay: float = 15.0,
        remind_every: float = 60.0,
        jitter: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        waiting: str = "partitions paused",
        resumed: str = "partitions resumed",
    ) -> None:
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self._clock = clock
        #: What waits while the dependency is away, and what goes on once it is back (the log's words).
        self.waiting, self.resumed = waiting, resumed
        self.started: float | None = None
        self.failures = 0
        self.dependency = ""
        self._next_try = 0.0
        self._reminder = LogLimiter(remind_every, clock)

    @property
    def active(self) -> bool:
        return self.started is not None

    def ready(self) -> bool:
        """Whether the backoff allows the next attempt now."""
        return self._clock() >= self._next_try

    def failed(self, exc: BaseException) -> bool:
        """Record a failed attempt; True if it started an outage (its line was logged)."""
        now = self._clock()
        self.failures += 1
        delay = min(self.max_delay, self.first_delay * 2 ** (self.failures - 1))
        self._next_try = now + delay * (1 + random.uniform(-self.jitter, self.jitter))
        if self.started is None:
            self.started = now
            self._reminder.restart()
            self.dependency = dependency_of(exc)
            OUTAGE.labels(dependency=self.dependency).set(1)
            log.error(
                "%s unavailable, %s, retrying with backoff (nothing is lost): %s",
                self.dependency,
                self.waiting,
                _one_line(exc),
            )
            return True
        if self._reminder.allow() is not None:
            log.error(
                "%s still unavailable after %.0f s (%d attempts), %s: %s",
                self.dependency,
                now - self.started,
                self.failures,
                self.waiting,
                _one_line(exc),
            )
        return False

    def recovered(self) -> bool:
        """Record a success; True if it ended an outage (its line was logged)."""
        started, self.started = self.started, None
        self.failures = 0
        self._next_try = 0.0
        if started is None:
            return False
        OUTAGE.labels(dependency=self.dependency).set(0)
        log.warning("%s is back after %.0f s: %s", self.dependency, self._clock() - started, self.resumed)
        return True


def _one_line(exc: BaseException) -> str:
    """The error's type and first line (a driver message can span many)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
