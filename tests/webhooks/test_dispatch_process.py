"""``querywatch dispatch`` as a real process: killed mid-delivery, restarted, nothing lost."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from querywatch.detector.adapters.db.tables import WebhookDeliveryRow
from querywatch.detector.cli import main
from querywatch.detector.errors import EXIT_RUNTIME
from tests.ports import free_port
from tests.webhooks.conftest import Db, add_alert, add_endpoint
from tests.webhooks.receiver import Receiver, Reply


def dispatch_env(db: Db) -> dict[str, str]:
    return {
        **os.environ,
        "QUERYWATCH_DATABASE__URL": db.settings.database.url,
        "QUERYWATCH_WEBHOOKS__ALLOW_HOSTS": '["127.0.0.1"]',
        "QUERYWATCH_WEBHOOKS__TIMEOUT_SECONDS": "2",
        "QUERYWATCH_WEBHOOKS__LEASE_MARGIN_SECONDS": "0.5",
        "QUERYWATCH_WEBHOOKS__POLL_SECONDS": "0.1",
        "QUERYWATCH_WEBHOOKS__RETRY_SCHEDULE": "[0.2, 0.2]",
        "QUERYWATCH_LOG_JSON": "false",
    }


@contextmanager
def dispatch_process(db: Db, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "querywatch.detector.cli", "dispatch", *args],
        env=dispatch_env(db),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stderr is not None
        process.stderr.close()


def wait_until_delivered(db: Db, deadline_s: float = 30.0) -> WebhookDeliveryRow:
    give_up = time.monotonic() + deadline_s
    while True:
        with db.sessions() as session:
            row = session.scalars(select(WebhookDeliveryRow)).one()
        if row.state == "delivered" or time.monotonic() > give_up:
            return row
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_mid_delivery_then_restarted_delivers_once(db: Db, receiver: Receiver) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions)
    receiver.script(Reply(hang=True))

    with dispatch_process(db) as first:
        receiver.wait_for_requests(1, timeout=30)
        first.send_signal(signal.SIGKILL)  # dies while the receiver holds the request
        first.wait(timeout=10)
    receiver.release()
    with db.sessions() as session:
        claimed = session.scalars(select(WebhookDeliveryRow)).one()
    assert (claimed.state, claimed.attempts, claimed.delivered_at) == ("pending", 1, None)

    with dispatch_process(db) as second:
        row = wait_until_delivered(db)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=10) == 0

    assert (row.state, row.attempts, row.last_status) == ("delivered", 2, 200)
    assert [r.headers["webhook-id"] for r in receiver.received] == [row.webhook_id] * 2
    assert receiver.statuses == [None, 200]


def test_the_dispatcher_serves_its_own_metrics(db: Db, receiver: Receiver) -> None:
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions)
    port = free_port()
    with dispatch_process(db, "--metrics-port", str(port)) as process:
        assert wait_until_delivered(db).state == "delivered"
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert 'querywatch_webhook_deliveries_total{outcome="delivered"} 1.0' in body
    with pytest.raises(httpx.ConnectError):  # the port closes with the process
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


@pytest.fixture(autouse=True)
def _drop_cli_log_handler() -> Iterator[None]:
    """The command installs a root log handler on the captured stderr; remove it after."""
    yield
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "querywatch"]:
        root.removeHandler(handler)


def _one_alert_for(
    receiver: Receiver, db: Db, monkeypatch: pytest.MonkeyPatch, *, allow_loopback: bool
) -> None:
    """An endpoint at ``receiver``, one alert for it, and the dispatcher's settings in the
    environment (with ``allow_loopback``, the receiver's address let past the SSRF guard)."""
    add_endpoint(db.sessions, receiver.url)
    add_alert(db.sessions)
    for name, value in dispatch_env(db).items():
        if name.startswith("QUERYWATCH_") and (allow_loopback or name != "QUERYWATCH_WEBHOOKS__ALLOW_HOSTS"):
            monkeypatch.setenv(name, value)


def test_dispatch_once_from_the_command_line(
    db: Db, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _one_alert_for(receiver, db, monkeypatch, allow_loopback=True)

    assert main(["dispatch", "--once"]) == 0

    assert len(receiver.received) == 1
    assert "webhook dispatch: 1 attempted: 1 delivered" in capsys.readouterr().err


def test_dispatch_once_fails_when_nothing_it_attempted_arrived(
    db: Db, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """It said "N deliveries attempted" and exited 0 when every one was refused."""
    _one_alert_for(receiver, db, monkeypatch, allow_loopback=False)

    assert main(["dispatch", "--once"]) == EXIT_RUNTIME

    assert receiver.received == []
    said = capsys.readouterr().err
    assert "1 attempted, none delivered: 1 refused" in said and "QUERYWATCH_WEBHOOKS__ALLOW_HOSTS" in said


def test_dispatch_refuses_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUERYWATCH_DATABASE__URL", f"sqlite:///{tmp_path / 'empty.db'}")

    assert main(["dispatch", "--once"]) == EXIT_RUNTIME

    assert "querywatch db upgrade" in capsys.readouterr().err
