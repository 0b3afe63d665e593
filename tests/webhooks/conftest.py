from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from querywatch.detector.adapters.db.alert_schema import alert_fields, event_body
from querywatch.detector.adapters.db.migrate import upgrade
from querywatch.detector.adapters.db.outbox import enqueue_deliveries
from querywatch.detector.adapters.db.session import make_engine, make_sessionmaker
from querywatch.detector.adapters.db.tables import AlertEventRow, AlertRow, Base, WebhookEndpointRow
from querywatch.detector.adapters.delivery.signing import generate_secret
from querywatch.detector.adapters.delivery.ssrf import Resolver, UnsafeWebhookUrl
from querywatch.detector.config import ApiSettings, Settings, WebhookSettings
from querywatch.detector.engine.outcomes import ATLAS_TECHNIQUE
from tests.storage.databases import KINDS, settings_for, temporary_database
from tests.webhooks.receiver import Receiver

#: Short schedule so tests move time in seconds; no jitter so times are exact. The timeout is
#: the real one for a local receiver: 1 s timed a delivery out under three test workers while
#: the image built alongside (tests that time out set their own, shorter).
TEST_WEBHOOKS = WebhookSettings(
    retry_schedule=(5.0, 60.0, 600.0),
    timeout_seconds=3.0,
    allow_hosts=("127.0.0.1",),
    poll_seconds=0.05,
    jitter=0.0,
    lease_margin_seconds=1.0,
)


class FakeClock:
    """Epoch seconds that move only when the test says so (starts at the real time, so
    signatures stay within the receivers' 5-minute tolerance)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def catch_up(self, seconds: float = 1.0) -> None:
        """Move to ``seconds`` past the real time: rows the test just wrote, stamped with the
        real time, are due (on a loaded machine writing them can take longer than a second)."""
        self.now = max(self.now, time.time()) + seconds


@dataclass
class Db:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    def with_webhooks(self, **changes: Any) -> Settings:
        webhooks = self.settings.webhooks.model_copy(update=changes)
        return self.settings.model_copy(update={"webhooks": webhooks})


@pytest.fixture(scope="session")
def migrated_url() -> Iterator[Callable[[str], str]]:
    """One migrated database per kind for the whole session, made on first use (a
    PostgreSQL database costs about a second to create); ``db`` empties it after each test."""
    urls: dict[str, str] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:

        def url_for(kind: str) -> str:
            if kind not in urls:
                urls[kind] = stack.enter_context(temporary_database(kind, Path(tmp)))
                upgrade(settings_for(urls[kind]))
            return urls[kind]

        yield url_for


@pytest.fixture(params=KINDS)
def db(request: pytest.FixtureRequest, migrated_url: Callable[[str], str]) -> Iterator[Db]:
    url = migrated_url(str(request.param))
    settings = settings_for(url, webhooks=TEST_WEBHOOKS, api=ApiSettings(public_url="http://qw.test:8000"))
    engine = make_engine(settings.database)
    try:
        yield Db(settings, engine, make_sessionmaker(engine))
        with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())
    finally:
        engine.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def add_endpoint(sessions: sessionmaker[Session], url: str, **filters: Any) -> WebhookEndpointRow:
    with sessions() as session, session.begin():
        endpoint = WebhookEndpointRow(url=url, secret=generate_secret(), **filters)
        session.add(endpoint)
    return endpoint


def add_alert(
    sessions: sessionmaker[Session],
    n: int = 1,
    *,
    severity: str = "high",
    model_id: str = "digits-v1",
    at: float | None = None,
) -> AlertRow:
    """Insert an alert and its outbox rows in one transaction, as the outcome sinks do."""
    opened = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    with sessions() as session, session.begin():
        alert = AlertRow(
            alert_id=f"al_test{n:04d}",
            client_id=f"acct-{n}",
            model_id=model_id,
            opened_at=opened,
            queries=120,
            risk=0.97,
            severity=severity,
            technique=ATLAS_TECHNIQUE,
            reasons=["coverage grows like a grid sweep"],
            features={"coverage_ratio": 3.2},
        )
        session.add(alert)
        session.flush()
        event = AlertEventRow(alert_id=alert.alert_id, sequence=1, type="alert.opened", event_at=opened)
        session.add(event)
        session.flush()
        alert.last_event_id = event.id
        event.body = event_body(event, alert_fields(alert))
        enqueue_deliveries(session=session, alert=alert, event=event, now=opened)
    return alert


def dns(table: dict[str, Sequence[str]]) -> Resolver:
    """A resolver answering from a fixed table (the tests have no public DNS)."""

    def resolve(host: str, port: int) -> Sequence[str]:
        if host in table:
            return table[host]
        raise UnsafeWebhookUrl(f"webhook host {host!r} does not resolve")

    return resolve
