"""Refused events in the API: listed with the client they name, and clients ranked by them."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from querywatch.detector.adapters.db.dead_letters import save_dead_letters
from querywatch.detector.adapters.db.session import transaction
from querywatch.detector.adapters.db.tables import DeadLetterRow, utcnow
from querywatch.detector.adapters.kafka.deadletters import DeadLetter
from tests.api.server import ApiServer


def _store(api_server: ApiServer, letters: list[tuple[str, str | None, str | None]]) -> None:
    """Dead letters of (reason, client, model), at offsets 0, 1, ... in that order."""
    with transaction(api_server.sessions) as session:
        save_dead_letters(
            session=session,
            letters=[
                DeadLetter("logs", 0, i, reason, f"detail {i}", b"{}", None, client, model)
                for i, (reason, client, model) in enumerate(letters)
            ],
        )


def test_clients_are_ranked_by_their_refused_events(http: httpx.Client, api_server: ApiServer) -> None:
    _store(
        api_server,
        [("wrong_dimension", "pad-thief", "credit")] * 5
        + [("non_finite", "pad-thief", "fraud"), ("not_json", None, None)]
        + [("bad_scores", "other", "credit")] * 2,
    )
    ranked = http.get("/v1/dead-letters/clients", headers=api_server.reader_headers).json()
    assert [(c["client_id"], c["events"], c["reasons"], c["models"]) for c in ranked] == [
        ("pad-thief", 6, {"non_finite": 1, "wrong_dimension": 5}, ["credit", "fraud"]),
        ("other", 2, {"bad_scores": 2}, ["credit"]),
    ]
    on_fraud = http.get(
        "/v1/dead-letters/clients", params={"model": "fraud"}, headers=api_server.reader_headers
    ).json()
    assert [(c["client_id"], c["events"]) for c in on_fraud] == [("pad-thief", 1)]
    with transaction(api_server.sessions) as session:  # the thief's letters are a day old
        session.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.client_id == "pad-thief")
            .values(received_at=utcnow() - timedelta(days=1))
        )
    since = (utcnow() - timedelta(hours=1)).isoformat()
    recent = http.get(
        "/v1/dead-letters/clients", params={"since": since}, headers=api_server.reader_headers
    ).json()
    assert [c["client_id"] for c in recent] == ["other"]
    # A client whose every event was refused is not "unknown" to an analyst looking it up.
    missing = http.get("/v1/clients/pad-thief", headers=api_server.reader_headers)
    assert missing.status_code == 404 and "6 were refused" in missing.json()["detail"]
    assert (
        "has been seen" in http.get("/v1/clients/nobody", headers=api_server.reader_headers).json()["detail"]
    )


def test_dead_letters_are_listed_newest_first_by_client_and_reason(
    http: httpx.Client, api_server: ApiServer
) -> None:
    _store(api_server, [("wrong_dimension", "a", "m"), ("not_json", None, None)] * 3)
    pages: list[dict[str, object]] = []
    cursor = None
    while True:
        page = http.get(
            "/v1/dead-letters",
            params={"limit": 4, **({"cursor": cursor} if cursor else {})},
            headers=api_server.reader_headers,
        ).json()
        pages.extend(page["items"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert [p["source"] for p in pages] == [f"logs/0/{i}" for i in reversed(range(6))]
    assert "raw" not in pages[0]
    mine = http.get("/v1/dead-letters", params={"client_id": "a"}, headers=api_server.reader_headers).json()
    assert [(p["reason"], p["client_id"], p["model_id"]) for p in mine["items"]] == [
        ("wrong_dimension", "a", "m")
    ] * 3
    by_reason = http.get(
        "/v1/dead-letters", params={"reason": "not_json"}, headers=api_server.reader_headers
    ).json()
    assert {p["client_id"] for p in by_reason["items"]} == {None}
    unknown = http.get("/v1/dead-letters", params={"reason": "nope"}, headers=api_server.reader_headers)
    assert unknown.status_code == 422
    assert http.get("/v1/dead-letters").status_code == 401
