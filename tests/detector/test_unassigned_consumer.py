"""A consumer that owns no partition says so, once per reminder period (a unit of the loop's
bookkeeping: which partitions a member owns is the broker's, tested in ``tests/kafka``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kafka import TopicPartition

from querywatch.detector.adapters.kafka.consumer import Unassigned


class _Member:
    """What ``Unassigned`` reads of a ``KafkaConsumer``: its assignment and subscription."""

    def __init__(self) -> None:
        self.owned: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def subscription(self) -> set[str]:
        return {"inference-logs"}


def test_a_member_without_partitions_is_said_every_reminder_period(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    member: Any = _Member()
    watch = Unassigned(remind_every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="querywatch.detector.adapters.kafka.consumer"):
        for at in (10.0, 59.0, 61.0, 90.0, 122.0):
            now[0] = at
            watch.check(member)
        member.owned = {TopicPartition("inference-logs", 0)}
        now[0] = 200.0
        watch.check(member)
        member.owned = set()
        now[0] = 250.0
        watch.check(member)  # owned 50 s ago: nothing to say yet
    said = [r.getMessage() for r in caplog.records]
    assert [s.split(" for ")[1].split(" s:")[0] for s in said] == ["61", "122"]
    assert said[0].startswith("this consumer has owned no partition of inference-logs for 61 s")
