"""Store what the engine decided for a batch of events, in the caller's transaction.

One call per consumer batch: the latest row per client (upserted), a downsampled risk
history, new alerts (idempotent on the deterministic ``alert_id``, so a replayed batch adds
nothing) with their webhook outbox rows, and the engine's closing of alerts. Nothing here
commits: the consumer commits it together with its offsets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from querywatch.detector.adapters.db.outbox import enqueue_deliveries
from querywatch.detector.adapters.db.tables import AlertRow, Base, ClientRow, RiskPointRow, utcnow
from querywatch.detector.engine.outcomes import Alert, Outcome, RiskUpdate
from querywatch.detector.metrics import ALERTS_CLOSED, ALERTS_OPENED

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


def event_time(ts: float) -> datetime:
    """Epoch seconds (event time) as an aware UTC datetime.

    >>> event_time(0).isoformat()
    '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(ts, UTC)


def save_outcomes(*, session: Session, outcomes: Sequence[Outcome]) -> SavedOutcomes:
    """Add a batch of engine outcomes to ``session`` (flushed, not committed)."""
    saved = SavedOutcomes()
    if not outcomes:
        return saved
    client_ids = list(dict.fromkeys(o.update.client_id for o in outcomes))
    clients = {c.client_id: c for c in _in_chunks(session, ClientRow, ClientRow.client_id, client_ids)}
    last_points = _last_points(session, client_ids)
    alert_ids = {o.alert.alert_id for o in outcomes if o.alert} | {
        o.closed_alert_id for o in outcomes if o.closed_alert_id
    }
    alerts = {a.alert_id: a for a in _in_chunks(session, AlertRow, AlertRow.alert_id, list(alert_ids))}
    now = utcnow()
    seen: dict[str, _ClientSpan] = {}

    for outcome in outcomes:
        update = outcome.update
        span = seen.get(update.client_id)
        if span is None:
            span = seen[update.client_id] = _ClientSpan(update, update.ts, update.ts)
        span.add(update)
        if outcome.alert is not None and outcome.alert.alert_id not in alerts:
            row = _alert_row(outcome.alert)
            alerts[row.alert_id] = row
            session.add(row)
            saved.new_alerts.append(row)
        if outcome.closed_alert_id is not None:
            closed = alerts.get(outcome.closed_alert_id)
            if closed is not None and closed.closed_by_engine_at is None:
                closed.closed_by_engine_at = event_time(update.ts)
                saved.closed_alerts += 1
        marks_alert = outcome.alert is not None or outcome.closed_alert_id is not None
        if _wants_point(last_points.get(update.client_id), update, marks_alert):
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
            last_points[update.client_id] = (update.risk, update.queries)
            saved.history_points += 1
    for client_id, span in seen.items():
        _apply_span(session, clients, client_id, span, now)
    session.flush()
    _enqueue_webhooks(session, saved.new_alerts)
    saved.clients = len(client_ids)
    for row in saved.new_alerts:
        ALERTS_OPENED.labels(severity=row.severity).inc()
    if saved.closed_alerts:
        ALERTS_CLOSED.labels(by="engine").inc(saved.closed_alerts)
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
    session: Session, clients: dict[str, ClientRow], client_id: str, span: _ClientSpan, now: datetime
) -> None:
    first, last = event_time(span.first_ts), event_time(span.last_ts)
    client = clients.get(client_id)
    if client is None:
        client = ClientRow(client_id=client_id, first_seen=first, last_seen=last, status="normal")
        clients[client_id] = client
        session.add(client)
    update = span.latest
    client.model_id = update.model_id
    client.risk = update.risk
    client.queries = update.queries
    if span.explained is not None:
        client.reasons = list(span.explained.reasons)
        client.features = dict(span.explained.features)
    client.first_seen = min(client.first_seen, first)
    client.last_seen = max(client.last_seen, last)
    client.updated_at = now


def _wants_point(last: tuple[float, int] | None, update: RiskUpdate, marks_alert: bool) -> bool:
    if last is None or marks_alert:
        return True
    risk, queries = last
    return (
        abs(update.risk - risk) >= HISTORY_MIN_RISK_CHANGE
        or update.queries - queries >= HISTORY_EVERY_QUERIES
        or update.queries < queries  # the engine forgot the client and started over
    )


def _alert_row(alert: Alert) -> AlertRow:
    return AlertRow(
        alert_id=alert.alert_id,
        client_id=alert.client_id,
        model_id=alert.model_id,
        opened_at=event_time(alert.ts),
        queries=alert.queries,
        risk=alert.risk,
        severity=alert.severity,
        technique=alert.technique,
        reasons=list(alert.reasons),
        features=dict(alert.features),
        state="open",
        false_positive=False,
    )


def _enqueue_webhooks(session: Session, rows: list[AlertRow]) -> None:
    if not rows:
        return
    for row in rows:
        enqueue_deliveries(session=session, alert=row)


def _last_points(session: Session, client_ids: list[str]) -> dict[str, tuple[float, int]]:
    points: dict[str, tuple[float, int]] = {}
    for chunk in _chunks(client_ids):
        newest = (
            select(func.max(RiskPointRow.id))
            .where(RiskPointRow.client_id.in_(chunk))
            .group_by(RiskPointRow.client_id)
        )
        rows = session.execute(
            select(RiskPointRow.client_id, RiskPointRow.risk, RiskPointRow.queries).where(
                RiskPointRow.id.in_(newest)
            )
        )
        points.update({client_id: (risk, queries) for client_id, risk, queries in rows})
    return points


def _in_chunks(
    session: Session, model: type[_Row], column: InstrumentedAttribute[str], keys: list[str]
) -> Iterable[_Row]:
    for chunk in _chunks(keys):
        yield from session.scalars(select(model).where(column.in_(chunk)))


def _chunks(keys: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]
