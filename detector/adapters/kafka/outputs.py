"""What the consumer sends to Kafka: alerts and risk changes, dead letters, client summaries.

Messages on the alerts topic are keyed by ``client_id`` (a compacted topic then keeps each
client's latest risk) and carry a ``type``: the alert events ``alert.opened``,
``alert.updated`` and ``alert.closed`` in alert schema v1 (the shape of the API and the
webhooks; a reader drops doubles by ``alert_id`` and ``sequence``), and ``risk`` with the
client's latest risk on a model at the end of each checkpoint. Sending is at least once: the
consumer waits for the broker's acknowledgement *before* it commits the checkpoint, so a
crash in between re-sends, and never loses, a message. ``OutputProducer`` is an outcome sink
(``pipeline.sinks``), the first of the consumer's: its ``write`` only sends, and the
checkpoint calls ``flush`` after its database writes, just before the commit, so the round
trip to the broker overlaps the writes instead of preceding them.

Client summaries (``engine.summaries``) go, when the campaign stage does not run in the
consumer, to the summaries topic for ``querywatch aggregate``, keyed by
``summary_key`` (``model_id``, a NUL, ``client_id``: control characters are refused in ids, so
the key is unambiguous, and a compacted topic keeps each (model, client)'s latest summary).
They are sent with the checkpoint that covers their events and acknowledged with its outcomes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaProducer

from querywatch.detector.adapters.kafka.client_config import producer_kwargs
from querywatch.detector.adapters.kafka.deadletters import DeadLetter
from querywatch.detector.config import KafkaSettings
from querywatch.detector.engine.outcomes import Outcome, RiskUpdate, iso_time
from querywatch.detector.engine.summaries import ClientSummary


def summary_key(model_id: str, client_id: str) -> bytes:
    """The summaries topic's key of a (model, client).

    >>> summary_key("digits", "acct-7")
    b'digits\\x00acct-7'
    """
    return f"{model_id}\x00{client_id}".encode()


def alert_messages(
    outcomes: Iterable[Outcome], *, detection_time: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """(client_id, message) pairs for the alerts topic, in event order.

    Each alert event becomes one message; the risk of each (client, model) is sent once,
    as of its last outcome. ``detection_time`` is when the consumer scored the batch.

    >>> from querywatch.detector.engine.outcomes import ALERT_CLOSED, Alert, AlertEvent, Outcome, RiskUpdate
    >>> a = Alert("al_x", "c", "m", 1.0, 1, 0.9, "medium", (), {})
    >>> first = Outcome(RiskUpdate("c", "m", 1.0, 1, 0.1))
    >>> later = Outcome(RiskUpdate("c", "m", 2.0, 2, 0.2), AlertEvent(ALERT_CLOSED, 2, 2.0, a))
    >>> msgs = alert_messages([first, later], detection_time="2026-01-01T00:00:00Z")
    >>> [(c, m["type"]) for c, m in msgs], msgs[0][1]["sequence"], msgs[-1][1]["risk"]
    ([('c', 'alert.closed'), ('c', 'risk')], 2, 0.2)
    """
    messages: list[tuple[str, dict[str, Any]]] = []
    latest: dict[tuple[str, str], RiskUpdate] = {}
    for outcome in outcomes:
        update = outcome.update
        latest[(update.client_id, update.model_id)] = update
        if outcome.event is not None:
            messages.append((update.client_id, outcome.event.to_v1(detection_time=detection_time)))
    messages.extend((client_id, {"type": "risk", **u.to_dict()}) for (client_id, _), u in latest.items())
    return messages


class OutputProducer:
    """One producer for the alerts topic, the dead-letter topic and the summaries topic."""

    def __init__(
        self,
        settings: KafkaSettings,
        producer: KafkaProducer | None = None,
        *,
        summaries_topic: str | None = None,
    ) -> None:
        self.alerts_topic = settings.alerts_topic
        self.dead_letter_topic = settings.dead_letter_topic
        self.summaries_topic = summaries_topic
        self._producer = producer or KafkaProducer(**producer_kwargs(settings, role="outputs"))
        self._pending: list[Any] = []

    def write(self, outcomes: Sequence[Outcome], tx: object) -> None:
        """Send ``outcomes``; the checkpoint awaits their acknowledgement (``flush``) before
        it commits."""
        self.send_outcomes(outcomes)

    def committed(self, tx: object) -> None:
        """Nothing to do: the broker acknowledged before the commit."""

    def send_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        detected = iso_time(time.time())
        for client_id, message in alert_messages(outcomes, detection_time=detected):
            value = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
            headers = [("type", message["type"].encode())]
            self._pending.append(
                self._producer.send(self.alerts_topic, key=client_id.encode(), value=value, headers=headers)
            )

    def send_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self._pending.append(
                self._producer.send(
                    self.dead_letter_topic, key=letter.key, value=letter.raw, headers=letter.headers()
                )
            )

    def send_summaries(self, summaries: Sequence[ClientSummary]) -> None:
        """Send client summaries in order (nowhere if this producer has no summaries topic)."""
        if self.summaries_topic is None:
            return
        for summary in summaries:
            self._pending.append(
                self._producer.send(
                    self.summaries_topic,
                    key=summary_key(summary.model_id, summary.client_id),
                    value=summary.to_bytes(),
                )
            )

    def flush(self) -> None:
        """Wait until the broker acknowledged everything sent; raise if anything failed."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        self._producer.flush()
        for future in pending:
            future.get(timeout=0)

    def close(self) -> None:
        self._producer.close()
