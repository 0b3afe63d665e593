"""Everything in one process for a laptop: broker, database, consumer, dispatcher, API, demo.

``querywatch up`` uses this. The services run as threads of one process (the embedded
broker is the only child process), so one ``stop()`` ends all of them and nothing is left
running. Production runs the same pieces as separate, scalable processes instead (see
``deploy/``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import uvicorn

from querywatch.detector.adapters.api.app import create_app
from querywatch.detector.adapters.db import audit, migrate
from querywatch.detector.adapters.db.apikeys import create_api_key
from querywatch.detector.adapters.db.session import (
    DatabaseEngine,
    SessionFactory,
    make_engine,
    make_sessionmaker,
    safe_url,
    transaction,
)
from querywatch.detector.adapters.db.shared_profiles import DatabaseProfileStore
from querywatch.detector.adapters.db.webhooks import delete_endpoints_on_other_ports
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.delivery.endpoints import create_endpoint
from querywatch.detector.adapters.files import DirectoryProfileStore
from querywatch.detector.adapters.kafka.admin import ensure_topics
from querywatch.detector.adapters.kafka.app import consume
from querywatch.detector.adapters.kafka.broker import EmbeddedBroker
from querywatch.detector.cli.receiver import DemoReceiver
from querywatch.detector.config import DetectionSettings, Settings
from querywatch.detector.engine.profiles import ProfileStore
from querywatch.detector.errors import QuerywatchError
from querywatch.models.profile import ReferenceProfile

log = logging.getLogger(__name__)

#: Seconds each service gets to finish after it was asked to stop.
STOP_TIMEOUT_S = 15.0
#: Seconds to wait for the API to accept connections at start.
API_START_TIMEOUT_S = 30.0


class ServiceFailed(QuerywatchError):
    """A part of the all-in-one service could not start or died."""


class Demo(Protocol):
    """Demo traffic: a reference profile of its model, and a producer of its events."""

    def profile(self, detection: DetectionSettings) -> ReferenceProfile: ...
    def run(self, settings: Settings, stop: threading.Event) -> None: ...


@dataclass
class Service:
    """A named thread and how to ask it to stop."""

    name: str
    thread: threading.Thread
    request_stop: Callable[[], None]


@dataclass
class Started:
    """What a user needs to know once everything runs."""

    api_url: str
    docs_url: str
    dashboard_url: str
    metrics_url: str
    bootstrap_servers: str
    database_url: str
    admin_key: str
    embedded_broker: bool
    #: The demo's webhook receiver, when it runs.
    demo_webhook_url: str | None = None


class AllInOne:
    """Start (``start``), wait for a stop request or a failed service (``wait``), stop (``stop``).

    ``stopping`` is set by a signal handler or by any service that fails; ``failed`` names
    the services that died, so the command can exit non-zero.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        demo: Demo | None = None,
    ) -> None:
        self.settings = settings
        self.demo = demo
        self.stopping = threading.Event()
        self.failed: list[str] = []
        self._broker: EmbeddedBroker | None = None
        self._db: DatabaseEngine | None = None
        self._services: list[Service] = []
        self._receiver: DemoReceiver | None = None

    def start(self) -> Started:
        """Bring everything up; on any failure, stop what was started and re-raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Started:
        if self.settings.kafka.bootstrap_servers is None:
            self._broker = EmbeddedBroker().start()
            # A fresh broker starts every topic at offset 0, so offsets checkpointed by an
            # earlier run mean nothing here: a new consumer group starts from scratch.
            group_id = f"{self.settings.kafka.group_id}-embedded-{secrets.token_hex(4)}"
            kafka = self.settings.kafka.model_copy(
                update={"bootstrap_servers": self._broker.bootstrap_servers, "group_id": group_id}
            )
            self.settings = self.settings.model_copy(update={"kafka": kafka})
            log.info(
                "embedded broker started",
                extra={"bootstrap_servers": self._broker.bootstrap_servers, "group_id": group_id},
            )
        ensure_topics(self.settings.kafka)
        if self.demo is not None:
            self._receiver = DemoReceiver().start()
            # The SSRF guard refuses loopback; the demo exempts its own receiver, in this process only.
            allowed = (*self.settings.webhooks.allow_hosts, f"{self._receiver.host}/32")
            webhooks = self.settings.webhooks.model_copy(update={"allow_hosts": allowed})
            self.settings = self.settings.model_copy(update={"webhooks": webhooks})
        migrate.upgrade(self.settings)
        self._db = make_engine(self.settings.database)
        sessions = make_sessionmaker(self._db)
        with transaction(sessions) as session:
            key = create_api_key(session=session, role="admin", name="querywatch-up")
            audit.record(session=session, actor="up", action="apikey.create", target=f"apikey:{key.id}")
            if self._receiver is not None:
                # Each run's receiver listens on a new port: an earlier run's endpoint (a kept or
                # configured database) stayed enabled, failing against a port nobody listens on.
                for endpoint_id, gone in delete_endpoints_on_other_ports(
                    session=session, url=self._receiver.url
                ):
                    audit.record(
                        session=session,
                        actor="up",
                        action="webhook.delete",
                        target=f"webhook:{endpoint_id}",
                        detail={**gone, "why": "an earlier up --demo's receiver"},
                    )
                endpoint = create_endpoint(
                    session=session, url=self._receiver.url, allow_hosts=self.settings.webhooks.allow_hosts
                )
                audit.record(
                    session=session, actor="up", action="webhook.create", target=f"webhook:{endpoint.id}"
                )

        if self.demo is not None:
            self._seed_profile(self.demo, sessions)
        self._start_consumer()
        dispatcher = Dispatcher(self.settings, sessions)
        dispatcher_stop = threading.Event()
        self._spawn("dispatcher", lambda: dispatcher.run_forever(dispatcher_stop), dispatcher_stop.set)
        api_url = self._start_api()
        if self.demo is not None:
            demo, demo_stop = self.demo, threading.Event()
            settings = self.settings
            self._spawn("demo", lambda: demo.run(settings, demo_stop), demo_stop.set, stop_all_on_exit=False)
        return Started(
            api_url=api_url,
            docs_url=f"{api_url}/docs",
            dashboard_url=f"{api_url}/ui/",
            metrics_url=f"{api_url}/metrics",
            bootstrap_servers=self.settings.kafka.bootstrap_servers or "",
            database_url=safe_url(self._db.url),
            admin_key=key.secret,
            embedded_broker=self._broker is not None,
            demo_webhook_url=self._receiver.url if self._receiver is not None else None,
        )

    def _seed_profile(self, demo: Demo, sessions: SessionFactory) -> None:
        """Give the consumer the demo model's reference profile up front (no warm-up wait),
        in the store it reads: the profile directory if one is set, else the database."""
        detection = self.settings.detection
        store: ProfileStore
        if detection.profile_dir:
            store = DirectoryProfileStore(detection.profile_dir)
        else:
            store = DatabaseProfileStore(sessions)
        profile = demo.profile(detection)
        if store.get(profile.model_id) is None:
            store.put(profile)
            log.info("demo reference profile stored", extra={"model_id": profile.model_id})

    def _start_consumer(self) -> None:
        consumer_stop = threading.Event()
        settings = self.settings
        self._spawn(
            "consumer",
            lambda: consume(settings, stop=consumer_stop, campaigns=True),
            consumer_stop.set,
        )

    def _start_api(self) -> str:
        api = self.settings.api
        config = uvicorn.Config(
            create_app(self.settings), host=api.host, port=api.port, log_config=None, access_log=False
        )
        server = uvicorn.Server(config)

        def request_stop() -> None:
            server.should_exit = True

        self._spawn("api", server.run, request_stop)
        deadline = time.monotonic() + API_START_TIMEOUT_S
        while not server.started and not self.stopping.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.failed:
            raise ServiceFailed(f"{', '.join(self.failed)} failed at start (see the log above)")
        if not server.started:
            raise ServiceFailed(f"the API did not start on {api.host}:{api.port} (see the log above)")
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else api.port
        return f"http://{api.host}:{port}"

    def _spawn(
        self,
        name: str,
        target: Callable[[], object],
        request_stop: Callable[[], None],
        *,
        stop_all_on_exit: bool = True,
    ) -> None:
        """Run ``target`` in a thread; if it raises (or, unless told otherwise, returns) while
        querywatch is running, everything stops."""

        def guarded() -> None:
            try:
                target()
            except BaseException:  # uvicorn raises SystemExit when it cannot bind
                log.exception("%s failed; stopping querywatch", name)
                self.failed.append(name)
                self.stopping.set()
                return
            if stop_all_on_exit and not self.stopping.is_set():
                log.error("%s stopped unexpectedly; stopping querywatch", name)
                self.failed.append(name)
                self.stopping.set()

        thread = threading.Thread(target=guarded, name=f"querywatch-{name}", daemon=True)
        self._services.append(Service(name, thread, request_stop))
        thread.start()

    def wait(self) -> None:
        """Block until a stop is requested (signal) or a service failed."""
        while not self.stopping.wait(0.5):
            pass

    def stop(self) -> list[str]:
        """Stop every service (newest first), then the database pool and the broker.

        Returns the names of services that did not finish in time (empty when clean).
        """
        self.stopping.set()
        stuck = []
        for service in reversed(self._services):
            service.request_stop()
        for service in reversed(self._services):
            service.thread.join(STOP_TIMEOUT_S)
            if service.thread.is_alive():
                stuck.append(service.name)
                log.error("%s did not stop within %.0fs", service.name, STOP_TIMEOUT_S)
        self._services.clear()
        if self._db is not None:
            self._db.dispose()
            self._db = None
        if self._broker is not None:
            self._broker.stop()
            self._broker = None
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None
        return stuck
