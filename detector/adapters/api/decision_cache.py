"""What the decision endpoints read, kept in memory for a short while.

``/v1/authz`` and ``/v1/clients/{id}/decision`` run ``engine.policy.decide`` on a client's
rows, the model policies and the active silences. Read from the database on every request,
that was three queries per decision; kept here, a client seen in the last
``api.decision_cache_seconds`` costs none, and any other one query.

How a change is seen:

* **through this process's API** (a policy set or reverted, a silence added or removed,
  an analyst's status): at once. The API's sessions report every commit that changed one
  (``db.decision_inputs.watch_changes``) and the entries it touched are forgotten; a read
  that started before the change does not put its stale result back (a generation count).
* **from elsewhere** (another API replica, the consumer's risk updates, a policy changed
  with SQL): within ``api.decision_cache_seconds`` (default 1 s, beside the consumer's own
  checkpoint interval of 5 s), after which every entry is read again. 0 turns the cache off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from querywatch.detector.adapters.db.decision_inputs import (
    Changes,
    ClientInputs,
    read_client,
    read_policies,
    read_silences,
)
from querywatch.detector.adapters.db.session import Session
from querywatch.detector.adapters.db.tables import utcnow
from querywatch.detector.engine.policy import ModelPolicy, Silence

T = TypeVar("T")
_POLICIES, _SILENCES = "policies", "silences"


class DecisionCache:
    """Policies, silences and client inputs, each kept ``ttl`` seconds (at most ``capacity``
    clients: a full cache starts over, which costs one query per client)."""

    def __init__(
        self, ttl: float, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._clock = clock
        self._entries: dict[str, tuple[float, object]] = {}
        self._generation = 0

    def client(self, session: Session, client_id: str) -> ClientInputs:
        return self._get(f"client:{client_id}", lambda: read_client(session=session, client_id=client_id))

    def policies(self, session: Session) -> dict[str, ModelPolicy]:
        return self._get(_POLICIES, lambda: read_policies(session=session))

    def silences(self, session: Session) -> list[Silence]:
        return self._get(_SILENCES, lambda: read_silences(session=session, now=utcnow()))

    def changed(self, changes: Changes) -> None:
        """Forget what a commit changed (``db.decision_inputs.watch_changes`` calls this)."""
        self._generation += 1
        if changes.policies:
            self._entries.pop(_POLICIES, None)
        if changes.silences:
            self._entries.pop(_SILENCES, None)
        for client_id in changes.clients:
            self._entries.pop(f"client:{client_id}", None)

    def _get(self, key: str, read: Callable[[], T]) -> T:
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]  # type: ignore[return-value]
        generation = self._generation
        value = read()
        if self.ttl > 0 and generation == self._generation:  # nothing changed while we read
            if len(self._entries) >= self.capacity:
                self._entries.clear()
            self._entries[key] = (now + self.ttl, value)
        return value
