"""The receiver example of README.md works on a request querywatch signs."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from querywatch.detector.adapters.delivery.signing import generate_secret, signed_headers

DOC = Path(__file__).resolve().parents[2] / "README.md"


def receiver_example(secret: str) -> dict[str, Any]:
    section = DOC.read_text().split("### Verify a signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(code.group(1).replace('"whsec_..."', repr(secret)), namespace)
    return namespace


def test_the_documented_receiver_accepts_ours_once_and_rejects_forgeries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = generate_secret()
    handle = receiver_example(secret)["handle"]
    body = (
        b'{"data":{"client":{"client_id":"acct-7"},"reasons":["r"],"severity":"high"},"type":"alert.opened"}'
    )
    headers = signed_headers(secret=secret, webhook_id="msg_1", timestamp=time.time(), body=body)
    headers = {k.title(): v for k, v in headers.items()}  # header case must not matter

    assert handle(body, headers) == 200
    assert capsys.readouterr().out == "high acct-7 ['r']\n"
    assert handle(body, headers) == 200  # the retry is acknowledged, not processed again
    assert capsys.readouterr().out == ""
    assert handle(body.replace(b"high", b"low!"), headers) == 400
    forged = signed_headers(secret=generate_secret(), webhook_id="msg_2", timestamp=time.time(), body=body)
    assert handle(body, forged) == 400
