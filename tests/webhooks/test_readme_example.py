"""The receiver example of README.md works on a request querywatch signs."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from querywatch.detector.adapters.db.alert_schema import alert_fields, event_body
from querywatch.detector.adapters.db.tables import AlertEventRow, AlertRow
from querywatch.detector.adapters.delivery.payload import render
from querywatch.detector.adapters.delivery.signing import generate_secret, signed_headers
from querywatch.detector.engine.outcomes import ATLAS_TECHNIQUE

DOC = Path(__file__).resolve().parents[2] / "README.md"


def receiver_example(secret: str) -> dict[str, Any]:
    section = DOC.read_text().split("### Verify a signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1).replace('"whsec_..."', repr(secret)), namespace)
    return namespace


def _delivered_body() -> bytes:
    """A standard endpoint's body for an alert's first event, built as the dispatcher builds it."""
    opened = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    alert = AlertRow(
        alert_id="al_readme1",
        kind="client",
        client_id="acct-7",
        model_id="digits-v1",
        state="open",
        opened_at=opened,
        queries=120,
        risk=0.97,
        severity="high",
        technique=ATLAS_TECHNIQUE,
        reasons=["coverage grows like a grid sweep"],
        features={"coverage_ratio": 3.2},
        source_ips=["203.0.113.7"],
        user_agents=["okhttp/4.12.0"],
    )
    event = AlertEventRow(id=1, alert_id=alert.alert_id, sequence=1, type="alert.opened", event_at=opened)
    return render(kind="standard", event=event_body(event, alert_fields(alert)), public_url="http://qw:8000")


def test_the_documented_receiver_accepts_ours_once_and_rejects_forgeries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = generate_secret()
    handle = receiver_example(secret)["handle"]
    body = _delivered_body()  # the bytes the dispatcher sends: the example read a field they lack
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=time.time(), body=body)
    headers = {k.title(): v for k, v in headers.items()}  # header case must not matter

    assert handle(body, headers) == 200
    assert capsys.readouterr().out == "alert.opened high client acct-7 ['coverage grows like a grid sweep']\n"
    assert handle(body, headers) == 200  # the retry is acknowledged, not processed again
    assert capsys.readouterr().out == ""
    assert handle(body.replace(b"high", b"low!"), headers) == 400
    forged = signed_headers(secret=generate_secret(), webhook_id="msg_2", timestamp=time.time(), body=body)
    assert handle(body, forged) == 400
