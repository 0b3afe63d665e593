"""Retry pauses: the schedule, its jitter, and receivers' Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from querywatch.detector.adapters.delivery.backoff import parse_retry_after, retry_delay
from tests.webhooks.conftest import Db, FakeClock, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver, Reply
from tests.webhooks.test_dispatcher import deliveries, dispatcher

schedules = st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=10)


@given(
    schedules, st.integers(min_value=1, max_value=12), st.floats(min_value=0, max_value=0.99), st.integers()
)
def test_pause_stays_within_the_jitter_band(
    schedule: list[float], attempts: int, jitter: float, seed: int
) -> None:
    delay = retry_delay(attempts=attempts, schedule=schedule, jitter=jitter, rng=random.Random(seed))
    if attempts > len(schedule):
        assert delay is None
    else:
        base = schedule[attempts - 1]
        assert delay is not None
        assert base * (1 - jitter) - 1e-6 <= delay <= base * (1 + jitter) + 1e-6


@given(st.text(max_size=60))
def test_any_retry_after_header_is_a_delay_or_ignored(value: str) -> None:
    delay = parse_retry_after(value, now=1e9)
    assert delay is None or delay >= 0


def test_retry_after_is_capped(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(Reply(503, {"Retry-After": "99999999"}))

    dispatcher(db, clock, max_retry_after_seconds=3600.0).run_once()

    [row] = deliveries(db)
    assert row.next_attempt_at == datetime.fromtimestamp(clock.now + 3600, tz=UTC)


def test_each_attempt_is_signed_at_its_own_time(db: Db, receiver: Receiver, clock: FakeClock) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions, at=clock.now)
    receiver.script(500)
    sender = dispatcher(db, clock)
    start = clock.now

    sender.run_once()
    clock.advance(5)
    sender.run_once()

    stamps = [r.headers["webhook-timestamp"] for r in receiver.received]
    assert stamps == [str(int(start)), str(int(start + 5))]
    assert (
        receiver.received[0].headers["webhook-signature"] != receiver.received[1].headers["webhook-signature"]
    )
