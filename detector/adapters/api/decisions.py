"""One client's decision as the API serves it (``/v1/clients/{id}/decision`` and ``/v1/authz``):
what the database knows, run through ``engine.policy.decide``."""

from __future__ import annotations

from querywatch.detector.adapters.api.schemas import DecisionPublic, ModelDecisionPublic
from querywatch.detector.adapters.db.clients import client_rows, client_status
from querywatch.detector.adapters.db.policies import active_silences, as_silence, client_views, policies_for
from querywatch.detector.adapters.db.session import Session
from querywatch.detector.adapters.db.tables import utcnow
from querywatch.detector.config import Settings
from querywatch.detector.engine.policy import Thresholds, decide


def client_decision_for(*, session: Session, settings: Settings, client_id: str) -> DecisionPublic:
    """The client's decision over every model it queried (allow, risk 0 if never seen)."""
    rows = client_rows(session=session, client_id=client_id)
    api = settings.api
    now = utcnow()
    decision = decide(
        client_id=client_id,
        status=client_status(session=session, client_id=client_id, rows=rows),
        views=client_views(rows),
        policies=policies_for(session=session, model_ids=[r.model_id for r in rows]),
        defaults=Thresholds(api.degrade_risk, api.block_risk, api.degraded_precision),
        silences=[as_silence(s) for s in active_silences(session=session, now=now)],
        now_ts=now.timestamp(),
    )
    return DecisionPublic(
        client_id=client_id,
        action=decision.action,
        risk=decision.risk,
        reasons=list(decision.reasons),
        output_precision=decision.output_precision,
        mitigations=list(decision.mitigations),
        status=decision.status,
        models=[
            ModelDecisionPublic(
                model_id=m.model_id,
                action=m.action,
                risk=m.risk,
                reasons=list(m.reasons),
                pages=m.pages,
                silenced_by=m.silenced_by,
            )
            for m in decision.models
        ],
    )
