"""The campaign stage's output to the database: campaigns and their alert events, stored with
the next checkpoint of the process that runs the stage, in its transaction (the consumer of
``querywatch up``, or ``querywatch aggregate``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.alert_store import SavedEvents, save_alert_events
from querywatch.detector.adapters.db.campaigns import false_positives, save_campaigns
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.outcomes import ALERT_CLOSED, AlertEvent
from querywatch.detector.engine.policy import Thresholds
from querywatch.detector.engine.summaries import ClientSummary


class InProcessCampaigns:
    """A stage and what it decided since the last committed write (written again after a
    rollback, so nothing is lost). In ``querywatch up`` the stage lives in memory only (a
    restart starts it afresh from new summaries; stored campaigns stay); the aggregator
    checkpoints it (``adapters.kafka.aggregator``)."""

    def __init__(self, stage: CampaignStage, thresholds: Thresholds | None = None) -> None:
        self.stage = stage
        self.thresholds = thresholds
        self._events: list[AlertEvent] = []
        self._written: list[AlertEvent] = []
        self._signature: tuple[tuple[object, ...], ...] = ()
        #: Models whose stage state an analyst's false-positive mark changed in ``write``.
        self.dismissed_models: set[str] = set()

    def take(self, summaries: Sequence[ClientSummary]) -> None:
        for summary in summaries:
            self._events += self.stage.take(summary)

    def has_events(self) -> bool:
        """Alert events wait to be written (a checkpoint is urgent)."""
        return bool(self._events)

    def pending(self) -> bool:
        return bool(self._events) or self._current() != self._signature

    def write(self, session: Session) -> SavedEvents:
        """Store the live campaigns (if they changed), the ended ones and the alert events.
        Campaigns an analyst marked a false positive meanwhile (the API) end in the stage
        first, so they are not stored as active again; a mark taken back frees their first
        link to open them again (``_undismiss_retracted``)."""
        self._events += self._dismiss_marked(session)
        self._undismiss_retracted(session)
        live = self.stage.campaigns()
        alive = {c.campaign_id for c in live}
        ended = {e.alert.client_id for e in self._events if e.type == ALERT_CLOSED} - alive
        save_campaigns(session=session, live=live, ended=ended)
        self._written = list(self._events)
        return save_alert_events(session=session, events=self._written, thresholds=self.thresholds)

    def _dismiss_marked(self, session: Session) -> list[AlertEvent]:
        live = self.stage.campaigns()
        marked = false_positives(session=session, campaign_ids=[c.campaign_id for c in live])
        events: list[AlertEvent] = []
        for c in live:
            if c.campaign_id in marked:
                self.dismissed_models.add(c.model_id)
                events += self.stage.dismiss(
                    c.model_id, c.campaign_id, c.opened_ts if c.alert is None else c.alert.sent_ts
                )
        return events

    def _undismiss_retracted(self, session: Session) -> None:
        """Dismissed campaigns whose false-positive mark an analyst took back: the stage kept
        them dismissed for good, so the ring was never linked again while its record read "not
        a false positive". Their accounts link afresh from their next summaries."""
        dismissed = {cid: m for m, model in self.stage.models.items() for cid in model.dismissed}
        if not dismissed:
            return
        still = false_positives(session=session, campaign_ids=list(dismissed))
        for campaign_id in dismissed.keys() - still:
            model_id = dismissed[campaign_id]
            self.stage.models[model_id].dismissed.discard(campaign_id)
            self.dismissed_models.add(model_id)

    def committed(self) -> None:
        done = len(self._written)
        self._events = self._events[done:]
        self._written = []
        self.dismissed_models.clear()
        self._signature = self._current()

    def _current(self) -> tuple[tuple[object, ...], ...]:
        """What a stored campaign shows, to the precision it is stored: with only its members
        and risk here, a campaign whose members and risk had stopped changing kept the evidence,
        links, reasons and extraction of that moment while they grew (55 links stored, 59 live)."""
        return tuple(
            (
                c.campaign_id,
                tuple(c.members),
                round(c.risk, 3),
                round(c.peak_risk, 6),
                len(c.links),
                c.reasons,
                None if c.extraction is None else round(c.extraction, 4),
                tuple((k, round(v, 4)) for k, v in sorted(c.features.items())),
                c.capped,
                c.first_alert_ts,
            )
            for c in self.stage.campaigns()
        )
