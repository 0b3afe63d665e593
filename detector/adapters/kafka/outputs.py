"""What the consumer sends to Kafka: alerts and risk changes, and dead letters.

Messages on the alerts topic are keyed by ``client_id`` (a compacted topic then keeps each
client's latest risk) and carry a ``type``: ``alert_opened`` and ``alert_closed`` with the
deterministic ``alert_id`` (a reader drops doubles by it), and ``risk`` with the client's
latest risk at the end of each checkpoint. Sending is at least once: the consumer waits for
the broker's acknowledgement *before* it commits the checkpoint, so a crash in between
re-sends, and never loses, a message.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaProducer

from querywatch.detector.adapters.kafka.client_config import producer_kwargs
from querywatch.detector.adapters.kafka.deadletters import DeadLetter
from querywatch.detector.config import KafkaSettings
from querywatch.detector.engine.outcomes import Outcome, RiskUpdate


def alert_messages(outcomes: Iterable[Outcome]) -> list[tuple[str, dict[str, Any]]]:
    """(client_id, message) pairs for the alerts topic, in event order.

    Each opened or closed alert becomes one message; the risk of each client is sent
    once, as of its last outcome.

    >>> from querywatch.detector.engine.outcomes import RiskUpdate
    >>> from types import SimpleNamespace as O
    >>> first = O(update=RiskUpdate("c", "m", 1.0, 1, 0.1), alert=None, closed_alert_id=None)
    >>> later = O(update=RiskUpdate("c", "m", 2.0, 2, 0.2), alert=None, closed_alert_id="al_x")
    >>> msgs = alert_messages([first, later])
    >>> [(c, m["type"]) for c, m in msgs], msgs[-1][1]["risk"]
    ([('c', 'alert_closed'), ('c', 'risk')], 0.2)
    """
    messages: list[tuple[str, dict[str, Any]]] = []
    latest: dict[str, RiskUpdate] = {}
    for outcome in outcomes:
        update = outcome.update
        latest[update.client_id] = update
        if outcome.alert is not None:
            messages.append((update.client_id, {"type": "alert_opened", **outcome.alert.to_dict()}))
        if outcome.closed_alert_id is not None:
            closed = {
                "type": "alert_closed",
                "alert_id": outcome.closed_alert_id,
                "client_id": update.client_id,
                "model_id": update.model_id,
                "ts": update.ts,
                "risk": update.risk,
            }
            messages.append((update.client_id, closed))
    messages.extend((client_id, {"type": "risk", **u.to_dict()}) for client_id, u in latest.items())
    return messages


class OutputProducer:
    """One producer for the alerts topic and the dead-letter topic."""

    def __init__(self, settings: KafkaSettings, producer: KafkaProducer | None = None) -> None:
        self.alerts_topic = settings.alerts_topic
        self.dead_letter_topic = settings.dead_letter_topic
        self._producer = producer or KafkaProducer(**producer_kwargs(settings, role="outputs"))
        self._pending: list[Any] = []

    def send_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        for client_id, message in alert_messages(outcomes):
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
