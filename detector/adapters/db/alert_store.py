"""Store the engine's alert events and decide them (in the caller's transaction).

Each ``AlertEvent`` becomes an ``alert_events`` row (unique per alert and sequence, so a
replayed batch adds nothing) and brings the alert row up to date. The engine closing an
alert also resolves it (``resolved_by`` = ``engine``): the feed never shows an alert the
engine has closed as open. Every new event is run through ``engine.policy.decide``: its
decision is stored with it, and whether it pages (not a trusted client, not a model in
monitor mode, no matching silence, at least the model's page risk) is returned with it, for
the outbox sink (``outbox.OutboxSink``) that queues its deliveries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.alert_schema import alert_fields, event_body
from querywatch.detector.adapters.db.campaigns import campaign_floors
from querywatch.detector.adapters.db.policies import active_silences, as_silence, client_views, policies_for
from querywatch.detector.adapters.db.tables import AlertEventRow, AlertRow, ClientRow, utcnow
from querywatch.detector.engine.outcomes import (
    ALERT_CLOSED,
    ALERT_OPENED,
    AlertEvent,
)
from querywatch.detector.engine.policy import ModelDecision, ModelView, Thresholds, decide

ENGINE = "engine"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One alert event as stored: its alert's row (as of the batch's last event), the event's
    row (with its body), and whether it pages (is delivered) after the decision policy."""

    alert: AlertRow
    event: AlertEventRow
    pages: bool


@dataclass
class SavedEvents:
    """What a ``save_alert_events`` call added."""

    events: list[StoredEvent] = field(default_factory=list)
    opened: list[AlertRow] = field(default_factory=list)
    closed: list[AlertRow] = field(default_factory=list)

    @property
    def suppressed(self) -> int:
        """Alert events stored and decided but not delivered (trust, monitor, silence)."""
        return sum(not e.pages for e in self.events)


def event_time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def save_alert_events(
    *, session: Session, events: Sequence[AlertEvent], thresholds: Thresholds | None = None
) -> SavedEvents:
    """Add alert events to ``session`` (flushed, not committed); doubles are ignored."""
    saved = SavedEvents()
    if not events:
        return saved
    ids = list({e.alert.alert_id for e in events})
    alerts = {a.alert_id: a for a in session.scalars(select(AlertRow).where(AlertRow.alert_id.in_(ids)))}
    now = utcnow()
    snapshots: list[dict[str, Any]] = []  # each event's alert as of that event
    rows: list[AlertEventRow] = []
    for event in events:
        row = alerts.get(event.alert.alert_id)
        if row is None:
            if event.type != ALERT_OPENED:
                continue  # its opening was never stored (e.g. evicted state); nothing to update
            row = alerts[event.alert.alert_id] = _new_row(event, now)
            session.add(row)
            saved.opened.append(row)
        elif event.sequence <= row.sequence:
            continue  # already stored (a replayed batch)
        else:
            _apply(row, event, now)
            if event.type == ALERT_CLOSED:
                saved.closed.append(row)
        snapshots.append(alert_fields(row))
        rows.append(
            AlertEventRow(
                alert_id=row.alert_id,
                sequence=event.sequence,
                type=event.type,
                event_at=event_time(event.ts),
                detected_at=now,
                body=None,
            )
        )
    session.flush()  # the alert rows first: their events refer to them
    session.add_all(rows)
    session.flush()
    decide_event = _decider(session, [alerts[e.alert_id] for e in rows], thresholds or Thresholds())
    for event_row, snapshot in zip(rows, snapshots, strict=True):
        row = alerts[event_row.alert_id]
        decision = decide_event(row, snapshot["risk"], tuple(snapshot["reasons"]))
        row.last_event_id = event_row.id
        if decision is not None:
            row.decision = snapshot["decision"] = decision.action
            row.silenced_by = snapshot["silenced_by"] = decision.silenced_by
        event_row.body = event_body(event_row, snapshot)
        saved.events.append(StoredEvent(row, event_row, decision is None or decision.pages))
    session.flush()
    return saved


def _new_row(event: AlertEvent, now: datetime) -> AlertRow:
    a = event.alert
    return AlertRow(
        alert_id=a.alert_id,
        kind=a.kind,
        client_id=a.client_id,
        model_id=a.model_id,
        opened_at=event_time(a.ts),
        queries=a.queries,
        risk=a.risk,
        peak_risk=max(a.peak_risk, a.risk),
        severity=a.severity,
        technique=a.technique,
        reasons=list(a.reasons),
        features=dict(a.features),
        extraction=a.extraction,
        source_ips=list(a.source_ips),
        user_agents=list(a.user_agents),
        sequence=event.sequence,
        event_at=event_time(event.ts),
        detected_at=now,
        state="open",
        false_positive=False,
    )


def _apply(row: AlertRow, event: AlertEvent, now: datetime) -> None:
    a = event.alert
    row.queries = a.queries
    row.risk = a.risk
    row.peak_risk = max(row.peak_risk, a.peak_risk, a.risk)
    row.severity = a.severity
    if a.reasons:
        row.reasons = list(a.reasons)
    if a.features:
        row.features = dict(a.features)
    if a.extraction is not None:
        row.extraction = a.extraction
    row.source_ips = list(a.source_ips) or row.source_ips
    row.user_agents = list(a.user_agents) or row.user_agents
    row.sequence = event.sequence
    row.event_at = event_time(event.ts)
    if event.type == ALERT_CLOSED:
        row.closed_by_engine_at = event_time(event.ts)
        if row.state != "resolved":
            row.state = "resolved"
            row.resolved_by = ENGINE
            row.resolved_at = now
            row.resolution_note = (
                f"{event.why}: closed by the engine" if event.why else "closed by the engine"
            )


def _decider(
    session: Session, rows: list[AlertRow], thresholds: Thresholds
) -> Callable[[AlertRow, float, tuple[str, ...]], ModelDecision | None]:
    """A function deciding one alert event (its client on its model at the event's risk,
    the client's other models as stored): whether it pages, and the client's decision (the
    strictest over its models); None for campaign alerts."""
    client_ids = list({r.client_id for r in rows if r.kind == "client"})
    by_client: dict[str, list[ClientRow]] = {}
    if client_ids:
        for c in session.scalars(select(ClientRow).where(ClientRow.client_id.in_(client_ids))):
            by_client.setdefault(c.client_id, []).append(c)
    policies = policies_for(session=session, model_ids=[r.model_id for r in rows])
    floors = campaign_floors(session=session, client_ids=client_ids)
    now = utcnow()
    silences = [as_silence(s) for s in active_silences(session=session, now=now)]

    def decide_event(row: AlertRow, risk: float, reasons: tuple[str, ...]) -> ModelDecision | None:
        if row.kind != "client":
            return None
        known = by_client.get(row.client_id, [])
        views = [v for v in client_views(known, floors) if v.model_id != row.model_id]
        floor, ids = floors.get((row.client_id, row.model_id), (0.0, ()))
        views.append(ModelView(row.client_id, row.model_id, risk, reasons, row.extraction, ids, floor))
        result = decide(
            client_id=row.client_id,
            status=known[0].status if known else "normal",
            views=views,
            policies=policies,
            defaults=thresholds,
            silences=silences,
            now_ts=now.timestamp(),
        )
        model = next(m for m in result.models if m.model_id == row.model_id)
        return replace(model, action=result.action)  # what the serving tier does with the client

    return decide_event
