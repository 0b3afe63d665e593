"""Request bodies are bounded before anything reads them (a key is checked after the body)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from querywatch.detector.adapters.api.limits import MAX_BODY_BYTES
from tests.api.server import ApiServer


def test_a_body_over_the_bound_is_refused_unread_with_or_without_a_length(
    http: httpx.Client, api_server: ApiServer
) -> None:
    """300 MB bodies sent without a key were read and parsed first: 1.1 GB more resident."""
    big = b"x" * (MAX_BODY_BYTES + 1)
    declared = http.post("/v1/silences", content=big, headers={"Content-Type": "application/json"})
    assert declared.status_code == 413
    assert declared.json()["detail"] == f"a request body is at most {MAX_BODY_BYTES} bytes"

    def chunks() -> Iterator[bytes]:  # no Content-Length: read until the bound, then refused
        for _ in range(64):
            yield b"x" * (MAX_BODY_BYTES // 32)

    streamed = http.post("/v1/silences", content=chunks(), headers=api_server.admin_headers)
    assert streamed.status_code in (400, 413)
    ordinary = http.post("/v1/silences", json={"client_id": "a"}, headers=api_server.admin_headers)
    assert ordinary.status_code == 422  # read and judged as before (no expiry)
