"""When to try a failed delivery again: the retry schedule, jitter and ``Retry-After``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from email.utils import parsedate_to_datetime


def retry_delay(
    *, attempts: int, schedule: Sequence[float], jitter: float, rng: random.Random
) -> float | None:
    """Seconds to wait after the ``attempts``-th attempt failed, or None when none is left.

    ``schedule[i]`` is the pause before retry ``i + 1``, so a delivery gets
    ``len(schedule) + 1`` attempts in all. Each pause is spread by ``±jitter`` (a fraction)
    so that many deliveries failing together do not all come back at the same instant.

    >>> rng = random.Random(0)
    >>> [retry_delay(attempts=n, schedule=(5, 300), jitter=0, rng=rng) for n in (1, 2, 3)]
    [5.0, 300.0, None]
    >>> 4.5 <= retry_delay(attempts=1, schedule=(5,), jitter=0.1, rng=rng) <= 5.5
    True
    """
    if attempts < 1:
        raise ValueError("attempts counts the attempts made, so it is at least 1")
    if attempts > len(schedule):
        return None
    base = float(schedule[attempts - 1])
    return max(0.0, base * (1.0 + rng.uniform(-jitter, jitter)))


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds a receiver asked us to wait (``Retry-After``: delay-seconds or an HTTP date).

    >>> parse_retry_after("120", now=0), parse_retry_after("soon", now=0), parse_retry_after(None, now=0)
    (120.0, None, None)
    >>> parse_retry_after("\u00b9", now=0) is None
    True
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0)
    30.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not str.isdigit alone: '¹' is a digit to it
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
