"""Put engine outcomes into a test database, as the consumer would."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.sinks import store_outcomes
from querywatch.detector.engine.outcomes import RiskUpdate
from tests.outcomes import first_alert, opening

T0 = 1_800_000_000.0


def seed_client(
    sessions: sessionmaker[Session],
    client_id: str,
    risk: float,
    *,
    model_id: str = "digits-v1",
    alert: bool = False,
    ts: float = T0,
    extraction: float | None = None,
) -> str | None:
    """One client at ``risk`` (and an open alert if asked; its ``extraction`` estimate if
    given); returns the alert id."""
    features = {"coverage": risk, **({} if extraction is None else {"extraction": extraction})}
    update = RiskUpdate(client_id, model_id, ts, 100, risk, ("coverage high",), features)
    opened = first_alert(update) if alert else None
    with transaction(sessions) as session:
        store_outcomes(session=session, outcomes=[opening(update, opened)])
    return opened.alert_id if opened else None
