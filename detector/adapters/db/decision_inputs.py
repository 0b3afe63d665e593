"""What ``engine.policy.decide`` reads, as plain values, and which commits change it.

The decision endpoints cache these reads (``adapters.api.decision_cache``); ``watch_changes``
tells the cache, after each commit of a session the API made, what the commit changed: the
policies, the silences, or a client's rows (an analyst's status). A rolled-back
transaction changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.campaigns import campaign_floors
from querywatch.detector.adapters.db.clients import client_rows, client_status
from querywatch.detector.adapters.db.policies import active_silences, as_policy, as_silence, client_views
from querywatch.detector.adapters.db.tables import (
    CampaignRow,
    ClientRow,
    ModelPolicyRow,
    PendingStatusRow,
    SilenceRow,
)
from querywatch.detector.config import ApiSettings
from querywatch.detector.engine.policy import ModelPolicy, ModelView, Silence, Thresholds


@dataclass(frozen=True, slots=True)
class ClientInputs:
    """A client's status and its view on every model it queried (none: never seen)."""

    status: str = "normal"
    views: tuple[ModelView, ...] = ()


@dataclass
class Changes:
    """What one commit changed, as far as decisions go."""

    policies: bool = False
    silences: bool = False
    clients: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.policies or self.silences or bool(self.clients)


def decision_thresholds(api: ApiSettings) -> Thresholds:
    """The static thresholds of the settings, for every model without an override (the
    decision endpoints and the consumer's alert decisions use the same)."""
    return Thresholds(api.degrade_risk, api.block_risk, api.degraded_precision)


def read_client(*, session: Session, client_id: str) -> ClientInputs:
    rows = client_rows(session=session, client_id=client_id)
    floors = campaign_floors(session=session, client_ids=[client_id]) if rows else {}
    return ClientInputs(
        client_status(session=session, client_id=client_id, rows=rows), tuple(client_views(rows, floors))
    )


def read_policies(*, session: Session) -> dict[str, ModelPolicy]:
    """Every model's stored policy (only models with one; the rest take the defaults)."""
    return {row.model_id: as_policy(row, row.model_id) for row in session.scalars(select(ModelPolicyRow))}


def read_silences(*, session: Session, now: datetime) -> list[Silence]:
    """Silences not removed and not expired at ``now`` (``Silence.matches`` checks the expiry
    again at each decision, so a list kept a while stays right)."""
    return [as_silence(s) for s in active_silences(session=session, now=now)]


_CHANGES = "querywatch.decision_changes"


def watch_changes(sessions: sessionmaker[Session], on_change: Callable[[Changes], None]) -> None:
    """Call ``on_change`` after every commit of a session from ``sessions`` that changed a
    policy, a silence or a client's row."""

    def flushed(session: Session, _context: Any, _instances: Any) -> None:
        changes: Changes = session.info.setdefault(_CHANGES, Changes())
        for row in (*session.new, *session.dirty, *session.deleted):
            if isinstance(row, ModelPolicyRow):
                changes.policies = True
            elif isinstance(row, SilenceRow):
                changes.silences = True
            elif isinstance(row, ClientRow | PendingStatusRow):
                changes.clients.add(row.client_id)
            elif isinstance(row, CampaignRow):  # a verdict: its members' campaign floor changes
                changes.clients.update(str(m) for m in row.members)

    def committed(session: Session) -> None:
        changes = session.info.pop(_CHANGES, None)
        if changes:
            on_change(changes)

    def rolled_back(session: Session) -> None:
        session.info.pop(_CHANGES, None)

    event.listen(sessions, "before_flush", flushed)
    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)
