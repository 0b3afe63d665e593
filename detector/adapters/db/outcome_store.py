"""Store what the engine decided for a batch of events, in the caller's transaction.

One call per consumer batch: the latest row per (client, model) (upserted), a downsampled
risk history per (client, model), and the alert events with their decisions
(``alert_store``: idempotent on the alert id and sequence, so a replayed batch adds
nothing). Nothing here commits: the consumer commits it together with its offsets.
``DatabaseSink`` is this as an outcome sink (``pipeline.sinks``); it counts the alert
metrics only once the transaction committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from querywatch.detector.adapters.db.alert_store import StoredEvent, save_alert_events
from querywatch.detector.adapters.db.tables import (
    AlertRow,
    Base,
    ClientRow,
    PendingStatusRow,
    RiskPointRow,
    utcnow,
)
from querywatch.detector.engine.outcomes import Outcome, RiskUpdate
from querywatch.detector.engine.policy import Thresholds
from querywatch.detector.metrics import ALERT_EVENTS, ALERTS_CLOSED, ALERTS_OPENED, ALERTS_SUPPRESSED

_Row = TypeVar("_Row", bound=Base)

#: A history point is stored when risk moved at least this much since the last point ...
HISTORY_MIN_RISK_CHANGE = 0.05
#: ... or after this many queries, or when an alert opens or closes.
HISTORY_EVERY_QUERIES = 100
#: Rows fetched per IN (...) query, below every database's parameter limit.
_CHUNK = 500


@dataclass
class SavedOutcomes:
    """What a ``save_outcomes`` call added (for logs and tests)."""

    clients: int = 0
    history_points: int = 0
    new_alerts: list[AlertRow] = field(default_factory=list)
    closed_alerts: int = 0
    events: list[StoredEvent] = field(default_factory=list)

    @property
    def suppressed(self) -> int:
        """Alert events stored and decided but not delivered (trust, monitor, silence)."""
        return sum(not e.pages for e in self.events)

    def extend(self, other: SavedOutcomes) -> None:
        self.clients += other.clients
        self.history_points += other.history_points
        self.new_alerts += other.new_alerts
        self.closed_alerts += other.closed_alerts
        self.events += other.events


@dataclass
class OutcomeTx:
    """What the outcome sinks of one transaction share: its session, and what the database
    sink stored in it (the outbox and log sinks after it read the alert events)."""

    session: Session
    saved: SavedOutcomes = field(default_factory=SavedOutcomes)


class DatabaseSink:
    """Client rows, risk history and decided alert events, as an outcome sink.

    ``thresholds`` are the static decision thresholds (``ApiSettings``), the same the
    decision endpoint uses."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds

    def write(self, outcomes: Sequence[Outcome], tx: OutcomeTx) -> None:
        tx.saved.extend(save_outcomes(session=tx.session, outcomes=outcomes, thresholds=self.thresholds))

    def committed(self, tx: OutcomeTx) -> None:
        saved = tx.saved
        for row in saved.new_alerts:
            ALERTS_OPENED.labels(severity=row.severity).inc()
        for stored in saved.events:
            ALERT_EVENTS.labels(type=stored.event.type).inc()
        if saved.closed_alerts:
            ALERTS_CLOSED.labels(by="engine").inc(saved.closed_alerts)
        if saved.suppressed:
            ALERTS_SUPPRESSED.inc(saved.suppressed)


def event_time(ts: float) -> datetime:
    """Epoch seconds (event time) as an aware UTC datetime.

    >>> event_time(0).isoformat()
    '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(ts, UTC)


def save_outcomes(
    *, session: Session, outcomes: Sequence[Outcome], thresholds: Thresholds | None = None
) -> SavedOutcomes:
    """Add a batch of engine outcomes to ``session`` (flushed, not committed).

    ``thresholds`` are the static decision thresholds (``ApiSettings``) each alert event is
    decided with; the defaults if not given."""
    saved = SavedOutcomes()
    if not outcomes:
        return saved
    client_ids = list(dict.fromkeys(o.update.client_id for o in outcomes))
    rows = _in_chunks(session, ClientRow, ClientRow.client_id, client_ids)
    clients = {(c.client_id, c.model_id): c for c in rows}
    last_points = _last_points(session, client_ids)
    now = utcnow()
    seen: dict[tuple[str, str], _ClientSpan] = {}
    for outcome in outcomes:
        update = outcome.update
        key = (update.client_id, update.model_id)
        span = seen.get(key)
        if span is None:
            span = seen[key] = _ClientSpan(update, update.ts, update.ts)
        span.add(update)
        if _wants_point(last_points.get(key), update, outcome.event is not None):
            session.add(
                RiskPointRow(
                    client_id=update.client_id,
                    model_id=update.model_id,
                    ts=event_time(update.ts),
                    queries=update.queries,
                    risk=update.risk,
                    features=dict(update.features),
                )
            )
            last_points[key] = (update.risk, update.queries)
            saved.history_points += 1
    statuses = {client_id: row.status for (client_id, _), row in clients.items()}
    unseen = [client_id for client_id in client_ids if client_id not in statuses]
    for pending in _in_chunks(session, PendingStatusRow, PendingStatusRow.client_id, unseen):
        statuses[pending.client_id] = pending.status  # set before its first event: its row takes it
        session.delete(pending)
    for key, span in seen.items():
        _apply_span(session, clients, key, span, now, statuses.get(key[0], "normal"))
    session.flush()
    events = save_alert_events(
        session=session, events=[o.event for o in outcomes if o.event is not None], thresholds=thresholds
    )
    saved.new_alerts = events.opened
    saved.closed_alerts = len(events.closed)
    saved.events = events.events
    saved.clients = len(seen)
    return saved


@dataclass(slots=True)
class _ClientSpan:
    """One client's updates in a batch, folded: the client row needs only the latest update,
    the latest one that explained itself (most updates carry no reasons: the engine
    explains on alerts, every 100 queries and when risk moves), and the event-time span."""

    latest: RiskUpdate
    first_ts: float
    last_ts: float
    explained: RiskUpdate | None = None

    def add(self, update: RiskUpdate) -> None:
        self.latest = update
        self.first_ts = min(self.first_ts, update.ts)
        self.last_ts = max(self.last_ts, update.ts)
        if update.reasons or update.features:
            self.explained = update


def _apply_span(
    session: Session,
    clients: dict[tuple[str, str], ClientRow],
    key: tuple[str, str],
    span: _ClientSpan,
    now: datetime,
    status: str,
) -> None:
    first, last = event_time(span.first_ts), event_time(span.last_ts)
    client = clients.get(key)
    if client is None:  # the analyst's status holds on every model: a new model's row copies it
        client = ClientRow(client_id=key[0], model_id=key[1], first_seen=first, last_seen=last, status=status)
        clients[key] = client
        session.add(client)
    update = span.latest
    client.risk = update.risk
    client.queries = update.queries
    if span.explained is not None:
        client.reasons = list(span.explained.reasons)
        client.features = dict(span.explained.features)
    client.first_seen = min(client.first_seen, first)
    client.last_seen = max(client.last_seen, last)
    client.updated_at = now


def _wants_point(last: tuple[float, int] | None, update: RiskUpdate, marks_alert: bool) -> bool:
    """A point on an alert event, else when risk or queries moved enough — and then only on
    an update the engine explained, so every point after the first carries its features
    (the engine explains at least every 100 queries and on every risk move of 0.05)."""
    if last is None or marks_alert:
        return True
    if not update.features:
        return False
    risk, queries = last
    return (
        abs(update.risk - risk) >= HISTORY_MIN_RISK_CHANGE
        or update.queries - queries >= HISTORY_EVERY_QUERIES
        or update.queries < queries  # the engine forgot the client and started over
    )


def _last_points(session: Session, client_ids: list[str]) -> dict[tuple[str, str], tuple[float, int]]:
    points: dict[tuple[str, str], tuple[float, int]] = {}
    for chunk in _chunks(client_ids):
        newest = (
            select(func.max(RiskPointRow.id))
            .where(RiskPointRow.client_id.in_(chunk))
            .group_by(RiskPointRow.client_id, RiskPointRow.model_id)
        )
        rows = session.execute(
            select(
                RiskPointRow.client_id, RiskPointRow.model_id, RiskPointRow.risk, RiskPointRow.queries
            ).where(RiskPointRow.id.in_(newest))
        )
        points.update({(c, m): (risk, queries) for c, m, risk, queries in rows})
    return points


def _in_chunks(
    session: Session, model: type[_Row], column: InstrumentedAttribute[str], keys: list[str]
) -> Iterable[_Row]:
    for chunk in _chunks(keys):
        yield from session.scalars(select(model).where(column.in_(chunk)))


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]
