"""The life of one client's alert on one model: open, update, close, without flapping.

An alert opens when the evidence risk reaches ``alert_risk`` (after ``min_queries``). While
it is open its severity follows the risk (up at once, down only past a hysteresis margin),
and an ``alert.updated`` event is emitted when the severity changed or the risk moved by
``update_risk_step`` since the last event — at most once per ``update_every_seconds`` of
event time, so a receiver is not flooded. It closes only after the risk stayed below
``clear_risk`` for ``close_after_seconds`` of event time *and* ``close_after_queries``
queries (a minimum dwell): a thief whose evidence dips between two rounds keeps one alert.
Everything is event time; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.config.detection import DetectionSettings
from querywatch.detector.engine.grouping import remember_recent
from querywatch.detector.engine.outcomes import (
    ALERT_CLOSED,
    ALERT_OPENED,
    ALERT_UPDATED,
    Alert,
    AlertEvent,
    alert_id_for,
    severity_for,
)


@dataclass(slots=True)
class OpenAlert:
    """What the engine remembers of a client's open alert (checkpointed with its state)."""

    alert: Alert  # as of the last event sent
    sequence: int
    sent_ts: float
    below_since: float | None = None  # event time risk first fell below clear_risk, this dip
    below_queries: int = 0

    def to_state(self) -> dict[str, Any]:
        """Plain data, without what the next event the alert sends recomputes anyway: its
        features (every alert event carries a fresh snapshot; a client's extraction estimate
        is one of them) and sources (the client's
        ``Sources`` are stored beside it), nor fields at their defaults. That keeps a state
        with an open alert within 4 KB. (Field by field, not ``to_dict``: ``asdict`` deep-copies
        every value, which made this most of a checkpoint's cost for such a client.)"""
        alert: dict[str, Any] = {}
        for name, default in _STORED_FIELDS:
            value = getattr(self.alert, name)
            if value != default:
                alert[name] = list(value) if type(value) is tuple else value
        return {
            "alert": alert,
            "sequence": self.sequence,
            "sent_ts": self.sent_ts,
            "below_since": self.below_since,
            "below_queries": self.below_queries,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OpenAlert:
        a: dict[str, Any] = {"features": {}} | dict(state["alert"])
        for name in ("reasons", "source_ips", "user_agents"):
            a[name] = tuple(a.get(name, ()))
        return cls(
            Alert(**a), state["sequence"], state["sent_ts"], state["below_since"], state["below_queries"]
        )

    @classmethod
    def resumed(
        cls, alert_id: str, client_id: str, model_id: str, ts: float, queries: int, peak: float
    ) -> OpenAlert:
        """An alert opened by a release that kept only its id: continued, values from the state."""
        alert = Alert(
            alert_id, client_id, model_id, ts, queries, peak, severity_for(peak), (), {}, peak_risk=peak
        )
        return cls(alert, 1, ts)


#: Alert fields a stored open alert leaves out (see ``OpenAlert.to_state``): the extraction
#: estimate comes with the next snapshot, as the features do (a client's is one of them).
_RECOMPUTED = frozenset({"features", "source_ips", "user_agents", "extraction"})
_REQUIRED = object()
#: (name, default) of the alert fields stored; ``_REQUIRED`` compares unequal to any value.
_STORED_FIELDS = tuple(
    (f.name, _REQUIRED if f.default is MISSING else f.default)
    for f in fields(Alert)
    if f.name not in _RECOMPUTED
)


class Sources:
    """The most recent distinct source IPs and user agents of a client, bounded."""

    __slots__ = ("ips", "limit", "user_agents")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # The shared empty tuple until a source comes (many clients' events carry none):
        # two empty lists would cost each client 112 bytes.
        self.ips: Sequence[str] = ()
        self.user_agents: Sequence[str] = ()

    def see(self, ip: str | None, user_agent: str | None) -> None:
        # A client's sources rarely change: the same latest one returns at once, with no call
        # (this runs for every event).
        ips, agents = self.ips, self.user_agents
        if ip is not None and not (ips and ips[-1] == ip):
            if not isinstance(ips, list):
                ips = self.ips = list(ips)
            remember_recent(ips, ip, self.limit)
        if user_agent is not None and not (agents and agents[-1] == user_agent):
            if not isinstance(agents, list):
                agents = self.user_agents = list(agents)
            remember_recent(agents, user_agent, self.limit)


@dataclass(frozen=True, slots=True)
class Observation:
    """One scored query of a client, as the alert lifecycle needs it."""

    client_id: str
    model_id: str
    ts: float
    queries: int
    evidence_risk: float  # what opens and closes alerts (calibrated)
    risk: float  # what is reported (evidence, or the population rank if higher)
    reasons: tuple[str, ...]
    features: dict[str, float]
    extraction: float | None = None  # the estimate, when this query's snapshot has one


class AlertLifecycle:
    """Decides, per scored query, whether an alert opens, updates, closes or stays as it is."""

    def __init__(self, detection: DetectionSettings, alerts: AlertSettings) -> None:
        self.open_at = detection.alert_risk
        self.clear_below = detection.clear_risk
        self.min_queries = detection.min_queries
        self.settings = alerts

    def needs_explanation(
        self, current: OpenAlert | None, evidence_risk: float, risk: float, ts: float, queries: int
    ) -> bool:
        """Whether ``step`` would emit an event for this query (the engine then computes the
        reasons and features it carries; explaining every query would cost too much)."""
        if current is None:
            return evidence_risk >= self.open_at and queries >= self.min_queries
        if evidence_risk < self.clear_below:
            since = ts if current.below_since is None else current.below_since
            below = 1 if current.below_since is None else current.below_queries + 1
            s = self.settings
            return ts - since >= s.close_after_seconds and below >= s.close_after_queries
        return ts - current.sent_ts >= self.settings.update_every_seconds and self._may_update(current, risk)

    def _may_update(self, current: OpenAlert, risk: float) -> bool:
        sent = current.alert
        return (
            abs(risk - sent.risk) >= self.settings.update_risk_step
            or severity_for(risk, sent.severity) != sent.severity
        )

    def step(
        self,
        current: OpenAlert | None,
        seen: Observation,
        ordinal: int,
        sources: Sources | None,
        *,
        changed: bool = False,
    ) -> tuple[OpenAlert | None, AlertEvent | None]:
        """The open alert after ``seen`` and the event to emit, if any. ``ordinal`` is the
        number the client's next alert on this model would get (for its deterministic id).
        ``changed``: the subject changed in a way its risk does not show (a campaign that gained
        accounts at risk 1.0, whose receivers kept its opening's two), an update as a moved risk is."""
        if current is None:
            if seen.evidence_risk >= self.open_at and seen.queries >= self.min_queries:
                alert = Alert(
                    alert_id_for(seen.client_id, seen.model_id, ordinal, seen.ts),
                    seen.client_id,
                    seen.model_id,
                    seen.ts,
                    seen.queries,
                    seen.risk,
                    severity_for(seen.risk),
                    seen.reasons,
                    seen.features,
                    peak_risk=seen.risk,
                    extraction=seen.extraction,
                    source_ips=_ips(sources),
                    user_agents=_agents(sources),
                )
                return OpenAlert(alert, 1, seen.ts), AlertEvent(ALERT_OPENED, 1, seen.ts, alert)
            return None, None
        peak = max(current.alert.peak_risk, seen.risk)
        if seen.evidence_risk < self.clear_below:
            if current.below_since is None:
                current.below_since, current.below_queries = seen.ts, 0
            current.below_queries += 1
            s = self.settings
            if (
                seen.ts - current.below_since >= s.close_after_seconds
                and current.below_queries >= s.close_after_queries
            ):
                closed = self._snapshot(current, seen, peak, sources, current.alert.severity, seen.ts)
                why = "risk stayed below the clear level"
                return None, AlertEvent(ALERT_CLOSED, current.sequence + 1, seen.ts, closed, why)
        else:
            current.below_since, current.below_queries = None, 0
        severity = severity_for(seen.risk, current.alert.severity)
        if peak > current.alert.peak_risk:
            current.alert = replace(current.alert, peak_risk=peak)
        if seen.ts - current.sent_ts >= self.settings.update_every_seconds and (
            changed or self._may_update(current, seen.risk)
        ):
            current.alert = self._snapshot(current, seen, peak, sources, severity, None)
            current.sequence += 1
            current.sent_ts = seen.ts
            return current, AlertEvent(ALERT_UPDATED, current.sequence, seen.ts, current.alert)
        return current, None

    @staticmethod
    def _snapshot(
        current: OpenAlert,
        seen: Observation,
        peak: float,
        sources: Sources | None,
        severity: str,
        closed_ts: float | None,
    ) -> Alert:
        return replace(
            current.alert,
            queries=seen.queries,
            risk=seen.risk,
            peak_risk=peak,
            severity=severity,
            reasons=seen.reasons or current.alert.reasons,
            features=seen.features or current.alert.features,
            extraction=current.alert.extraction if seen.extraction is None else seen.extraction,
            closed_ts=closed_ts,
            source_ips=_ips(sources) or current.alert.source_ips,
            user_agents=_agents(sources) or current.alert.user_agents,
        )


def _ips(sources: Sources | None) -> tuple[str, ...]:
    return () if sources is None else tuple(sources.ips)


def _agents(sources: Sources | None) -> tuple[str, ...]:
    return () if sources is None else tuple(sources.user_agents)
