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
from typing import Any

from sqlalchemy import BindParameter, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

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

#: A history point is stored when risk moved at least this much since the last point ...
HISTORY_MIN_RISK_CHANGE = 0.05
#: ... or after this many queries, or when an alert opens or closes.
HISTORY_EVERY_QUERIES = 100
#: Rows fetched per IN (...) query, below every database's parameter limit.
_CHUNK = 500

# The reads of every checkpoint, built once (building one, its IN list's every element
# coerced, cost more than running it).
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_CLIENTS = Base.metadata.tables[ClientRow.__tablename__]
_STORED_CLIENTS = select(
    _CLIENTS.c.client_id, _CLIENTS.c.model_id, _CLIENTS.c.first_seen, _CLIENTS.c.last_seen, _CLIENTS.c.status
).where(_CLIENTS.c.client_id.in_(_IDS))
#: A client row's update: the columns are the keys of the rows given (``_write_clients``).
_UPDATE_CLIENT = update(_CLIENTS).where(
    (_CLIENTS.c.client_id == bindparam("b_client_id")) & (_CLIENTS.c.model_id == bindparam("b_model_id"))
)
_PENDING = Base.metadata.tables[PendingStatusRow.__tablename__]
_PENDING_STATUSES = select(_PENDING.c.client_id, _PENDING.c.status).where(_PENDING.c.client_id.in_(_IDS))
_DELETE_PENDING = delete(_PENDING).where(_PENDING.c.client_id.in_(_IDS))
_POINTS = Base.metadata.tables[RiskPointRow.__tablename__]
_LAST_POINTS = select(_POINTS.c.client_id, _POINTS.c.model_id, _POINTS.c.risk, _POINTS.c.queries).where(
    _POINTS.c.id.in_(
        select(func.max(_POINTS.c.id))
        .where(_POINTS.c.client_id.in_(_IDS))
        .group_by(_POINTS.c.client_id, _POINTS.c.model_id)
    )
)


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
    decided with; the defaults if not given.

    Client rows and history points are written as plain statements, a few per batch
    (``executemany``), not as ORM objects: a checkpoint touches hundreds of clients, and
    loading each row as an object (its JSON columns decoded) to flush it back one by one
    cost the consumer more than a tenth of its time."""
    saved = SavedOutcomes()
    if not outcomes:
        return saved
    client_ids = list(dict.fromkeys(o.update.client_id for o in outcomes))
    stored = _stored_clients(session, client_ids)
    last_points = _last_points(session, client_ids)
    points: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], _ClientSpan] = {}
    for outcome in outcomes:  # once per event: the span's fold inline, the usual no-point case first
        update = outcome.update
        key = (update.client_id, update.model_id)
        span = seen.get(key)
        if span is None:
            span = seen[key] = _ClientSpan(update, update.ts, update.ts)
        else:
            span.latest = update
            if update.ts < span.first_ts:
                span.first_ts = update.ts
            elif update.ts > span.last_ts:
                span.last_ts = update.ts
        if update.reasons or update.features:
            span.explained = update
        elif outcome.event is None and key in last_points:
            continue  # no point without features (``_wants_point``)
        if _wants_point(last_points.get(key), update, outcome.event is not None):
            points.append(
                {
                    "client_id": update.client_id,
                    "model_id": update.model_id,
                    "ts": event_time(update.ts),
                    "queries": update.queries,
                    "risk": update.risk,
                    "features": dict(update.features),
                }
            )
            last_points[key] = (update.risk, update.queries)
    statuses = {client_id: status for (client_id, _), (_, _, status) in stored.items()}
    unseen = [client_id for client_id in client_ids if client_id not in statuses]
    for chunk in _chunks(unseen):  # a status set before a client's first event: its row takes it
        pending = {c: status for c, status in session.execute(_PENDING_STATUSES, {"ids": chunk})}
        if pending:
            statuses.update(pending)
            session.execute(_DELETE_PENDING, {"ids": list(pending)})
    _write_clients(session, stored, seen, statuses)
    if points:
        session.execute(insert(_POINTS), points)
        saved.history_points = len(points)
    session.flush()
    events = save_alert_events(
        session=session, events=[o.event for o in outcomes if o.event is not None], thresholds=thresholds
    )
    saved.new_alerts = events.opened
    saved.closed_alerts = len(events.closed)
    saved.events = events.events
    saved.clients = len(seen)
    return saved


#: What the batch needs of a stored client row: (first_seen, last_seen, status).
_Stored = tuple[datetime, datetime, str]


def _stored_clients(session: Session, client_ids: list[str]) -> dict[tuple[str, str], _Stored]:
    stored: dict[tuple[str, str], _Stored] = {}
    for chunk in _chunks(client_ids):
        rows = session.execute(_STORED_CLIENTS, {"ids": chunk})
        stored.update(((c, m), (first, last, status)) for c, m, first, last, status in rows)
    return stored


@dataclass(slots=True)
class _ClientSpan:
    """One client's updates in a batch, folded (in ``save_outcomes``): the client row needs
    only the latest update, the latest one that explained itself (most updates carry no
    reasons: the engine explains on alerts, every 100 queries and when risk moves), and the
    event-time span."""

    latest: RiskUpdate
    first_ts: float
    last_ts: float
    explained: RiskUpdate | None = None


def _write_clients(
    session: Session,
    stored: dict[tuple[str, str], _Stored],
    seen: dict[tuple[str, str], _ClientSpan],
    statuses: dict[str, str],
) -> None:
    """Insert the new (client, model) rows and update the others, one ``executemany`` each
    for new rows, rows with a new explanation, and rows without one (their reasons and
    features stay as stored). An update never writes ``status``: it is the analyst's."""
    now = utcnow()
    new: list[dict[str, Any]] = []
    explained: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    for (client_id, model_id), span in seen.items():
        first, last = event_time(span.first_ts), event_time(span.last_ts)
        row: dict[str, Any] = {"risk": span.latest.risk, "queries": span.latest.queries, "updated_at": now}
        if span.explained is not None:
            row["reasons"] = list(span.explained.reasons)
            row["features"] = dict(span.explained.features)
        before = stored.get((client_id, model_id))
        if before is None:  # the analyst's status holds on every model: a new model's row copies it
            status = statuses.get(client_id, "normal")
            row.update(
                client_id=client_id, model_id=model_id, first_seen=first, last_seen=last, status=status
            )
            new.append(row)
            continue
        row.update(b_client_id=client_id, b_model_id=model_id)
        row.update(first_seen=min(before[0], first), last_seen=max(before[1], last))
        (plain if span.explained is None else explained).append(row)
    if new:
        session.execute(insert(_CLIENTS), new)
    for rows in (explained, plain):
        if rows:
            session.execute(_UPDATE_CLIENT, rows)


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
        rows = session.execute(_LAST_POINTS, {"ids": chunk})
        points.update({(c, m): (risk, queries) for c, m, risk, queries in rows})
    return points


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]
