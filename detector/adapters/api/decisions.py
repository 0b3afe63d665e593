"""One client's decision as the API serves it (``/v1/clients/{id}/decision`` and ``/v1/authz``):
what the database knows (through ``decision_cache``), run through ``engine.policy.decide``."""

from __future__ import annotations

import time

from querywatch.detector.adapters.api.decision_cache import DecisionCache
from querywatch.detector.adapters.api.schemas import DecisionPublic, ModelDecisionPublic
from querywatch.detector.adapters.db.decision_inputs import decision_thresholds
from querywatch.detector.adapters.db.session import Session
from querywatch.detector.config import Settings
from querywatch.detector.engine.policy import decide


def client_decision_for(
    *, session: Session, settings: Settings, cache: DecisionCache, client_id: str
) -> DecisionPublic:
    """The client's decision over every model it queried (allow, risk 0 if never seen)."""
    client = cache.client(session, client_id)
    policies = cache.policies(session) if client.views else {}
    decision = decide(
        client_id=client_id,
        status=client.status,
        views=client.views,
        policies=policies,
        defaults=decision_thresholds(settings.api),
        silences=cache.silences(session) if client.views else (),
        now_ts=time.time(),
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
