"""/v1/webhooks and the delivery routes over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from querywatch.detector.adapters.db.tables import AuditEntryRow, WebhookEndpointRow
from querywatch.detector.adapters.delivery.dispatcher import Dispatcher
from querywatch.detector.adapters.delivery.signing import generate_secret
from tests.api.server import ApiServer, running_api
from tests.webhooks.conftest import Db, add_alert
from tests.webhooks.receiver import Receiver


@pytest.fixture
def api(db: Db) -> Iterator[ApiServer]:
    with running_api(db.settings) as server:
        yield server


@pytest.fixture
def admin(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, headers=api.admin_headers, timeout=10) as client:
        yield client


def test_create_shows_the_secret_once_and_it_signs(
    api: ApiServer, admin: httpx.Client, db: Db, receiver: Receiver
) -> None:
    created = admin.post("/v1/webhooks", json={"url": receiver.url, "min_severity": "medium"})
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["enabled"] is True and endpoint["min_severity"] == "medium"

    listed = admin.get("/v1/webhooks").json()
    one = admin.get(f"/v1/webhooks/{endpoint['id']}").json()
    assert "secret" not in listed[0] and "secret" not in one
    assert one["url"] == receiver.url

    add_alert(db.sessions)
    Dispatcher(db.settings, db.sessions).run_once()
    request = receiver.received[0]
    Webhook(endpoint["secret"]).verify(request.body, request.headers)

    with db.sessions() as session:
        entry = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "webhook.create")).one()
        assert "whsec_" not in str(entry.detail) and entry.actor.startswith("test-admin")


def test_private_url_refused_without_allowlist(db: Db) -> None:
    settings = db.with_webhooks(allow_hosts=())
    with running_api(settings) as server, httpx.Client(base_url=server.base_url) as client:
        answer = client.post(
            "/v1/webhooks", json={"url": "http://169.254.169.254/latest"}, headers=server.admin_headers
        )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "link-local" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://x"},
        {"url": "http://127.0.0.1/", "min_severity": "huge"},
        {"url": "http://127.0.0.1/", "x": 1},
        {"url": "http://127.0.0.1/\x00"},  # PostgreSQL cannot store NUL: refuse, do not fail
        {"url": "http://127.0.0.1/", "model_id": "m\x00"},
        {"url": "http://127.0.0.1/", "routing_key": "R0UT1NGKEY"},  # a standard endpoint ignores it
    ],
)
def test_bad_bodies_are_422(admin: httpx.Client, body: dict[str, object]) -> None:
    answer = admin.post("/v1/webhooks", json=body)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


def test_rotate_disable_enable_delete(admin: httpx.Client, receiver: Receiver) -> None:
    endpoint = admin.post("/v1/webhooks", json={"url": receiver.url}).json()
    path = f"/v1/webhooks/{endpoint['id']}"

    rotated = admin.post(f"{path}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    mine = generate_secret()
    assert admin.post(f"{path}/rotate-secret", json={"secret": mine}).json()["secret"] == mine
    refused = admin.post(f"{path}/rotate-secret", json={"secret": "whsec_short"})
    assert refused.status_code == 422 and "base64" in refused.json()["detail"]
    overlapping = admin.post(f"{path}/rotate-secret", json={"overlap_seconds": 3600}).json()
    assert overlapping["previous_secret_until"] is not None
    assert admin.get(path).json()["previous_secret_until"] == overlapping["previous_secret_until"]
    assert admin.post(f"{path}/rotate-secret").json()["previous_secret_until"] is None  # a leak: at once
    assert admin.post(f"{path}/rotate-secret", json={"overlap_seconds": -1}).status_code == 422
    paused = admin.patch(path, json={"enabled": False}).json()
    assert (paused["enabled"], paused["disabled_reason"]) == (False, "disabled by an admin")
    resumed = admin.patch(path, json={"enabled": True}).json()
    assert (resumed["enabled"], resumed["disabled_reason"]) == (True, None)

    assert admin.delete(path).status_code == 204
    for method, suffix in [("GET", ""), ("DELETE", ""), ("PATCH", ""), ("POST", "/rotate-secret")]:
        answer = admin.request(method, path + suffix, json={"enabled": True} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, suffix)
        assert answer.headers["content-type"] == "application/problem+json"


def test_deliveries_listed_and_alert_redelivered(
    api: ApiServer, admin: httpx.Client, db: Db, receiver: Receiver
) -> None:
    endpoint = admin.post("/v1/webhooks", json={"url": receiver.url}).json()
    alert = add_alert(db.sessions)
    receiver.script(500)
    dispatcher = Dispatcher(db.settings, db.sessions)
    dispatcher.run_once()

    [failed] = admin.get(f"/v1/alerts/{alert.alert_id}/deliveries").json()
    assert (failed["state"], failed["attempts"], failed["last_status"]) == ("failed", 1, 500)
    assert failed["last_error"].startswith("HTTP 500")
    page = admin.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"state": "failed"}).json()
    assert [d["id"] for d in page["items"]] == [failed["id"]] and page["next_cursor"] is None

    redelivered = admin.post(f"/v1/alerts/{alert.alert_id}/redeliver")
    assert redelivered.status_code == 202
    # The old attempt's status and error went with it: "pending" beside "HTTP 500" read wrong.
    assert [(d["state"], d["attempts"], d["last_status"], d["last_error"]) for d in redelivered.json()] == [
        ("pending", 0, None, None)
    ]
    dispatcher.run_once()
    [done] = admin.get(f"/v1/alerts/{alert.alert_id}/deliveries").json()
    assert (done["state"], done["webhook_id"]) == ("delivered", failed["webhook_id"])
    assert admin.post("/v1/alerts/al_missing/redeliver").status_code == 404
    assert admin.get("/v1/alerts/al_missing/deliveries").status_code == 404
    assert admin.post("/v1/alerts/al%00/redeliver").status_code == 422
    assert admin.get("/v1/alerts/al%00/deliveries").status_code == 422


def test_reader_gets_403_and_no_key_401(api: ApiServer) -> None:
    with httpx.Client(base_url=api.base_url) as client:
        assert client.get("/v1/webhooks").status_code == 401
        assert client.get("/v1/webhooks", headers=api.reader_headers).status_code == 403
        assert client.post("/v1/alerts/al_x/redeliver", headers=api.reader_headers).status_code == 403


def test_deliveries_page_with_the_cursor_every_list_uses(api: ApiServer, admin: httpx.Client, db: Db) -> None:
    endpoint = admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}).json()
    for n in range(3):
        add_alert(db.sessions, n + 1)
    path = f"/v1/webhooks/{endpoint['id']}/deliveries"
    first = admin.get(path, params={"limit": 2}).json()
    assert len(first["items"]) == 2 and isinstance(first["next_cursor"], str)
    rest = admin.get(path, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    ids = [d["id"] for d in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    older = admin.get(path, params={"before": str(ids[1])}).json()  # an earlier release's cursor
    assert [d["id"] for d in older["items"]] == ids[2:]
    bad = admin.get(path, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"


def test_a_retried_rotation_keeps_the_overlap_it_started(
    api: ApiServer, admin: httpx.Client, db: Db, receiver: Receiver
) -> None:
    """The same rotation sent twice (an admin retrying a timed-out call) made the new secret
    its own "previous" one: the old secret stopped verifying at once."""
    endpoint = admin.post("/v1/webhooks", json={"url": receiver.url}).json()
    path = f"/v1/webhooks/{endpoint['id']}/rotate-secret"
    new = generate_secret()
    first = admin.post(path, json={"secret": new, "overlap_seconds": 600}).json()
    again = admin.post(path, json={"secret": new, "overlap_seconds": 600}).json()
    assert again["previous_secret_until"] == first["previous_secret_until"] is not None
    add_alert(db.sessions)
    Dispatcher(db.settings, db.sessions).run_once()
    request = receiver.received[0]
    for secret in (endpoint["secret"], new):  # both verify during the overlap
        Webhook(secret).verify(request.body, request.headers)


def test_the_same_endpoint_twice_is_refused_and_a_delete_says_what_it_dropped(
    admin: httpx.Client, db: Db, receiver: Receiver
) -> None:
    """Two registrations of one URL paged its receiver twice per alert under two webhook ids."""
    endpoint = admin.post("/v1/webhooks", json={"url": receiver.url}).json()
    twin = admin.post("/v1/webhooks", json={"url": receiver.url, "min_severity": "high"})
    assert twin.status_code == 409
    assert twin.json()["detail"].startswith(f"endpoint {endpoint['id']} already sends the same events")
    other_model = admin.post("/v1/webhooks", json={"url": receiver.url, "model_id": "credit-v1"})
    assert other_model.status_code == 201  # another model's events: no event twice

    add_alert(db.sessions)  # queued for the first endpoint, not sent yet
    assert admin.delete(f"/v1/webhooks/{endpoint['id']}").status_code == 204
    with db.sessions() as session:
        entry = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "webhook.delete")).one()
    assert entry.detail == {"kind": "standard", "host": "127.0.0.1", "undelivered": 1}


def test_a_slack_url_is_shown_as_its_host_only_in_answers_and_the_audit_log(
    admin: httpx.Client, db: Db, receiver: Receiver
) -> None:
    """A Slack incoming-webhook URL is the channel's credential: it was listed whole by
    GET /v1/webhooks and kept whole in the audit log, after the endpoint was deleted too."""
    url = f"{receiver.url}/services/T000/B000/s3cr3tT0k3n"
    created = admin.post("/v1/webhooks", json={"url": url, "kind": "slack"})
    assert created.status_code == 201, created.text
    shown = [created.json()["url"], *(e["url"] for e in admin.get("/v1/webhooks").json())]
    assert all("s3cr3t" not in u for u in shown)
    with db.sessions() as session:
        entry = session.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "webhook.create")).one()
    assert "s3cr3t" not in str(entry.detail)
    with db.sessions() as session:  # the dispatcher still posts to the whole URL
        assert session.scalars(select(WebhookEndpointRow.url)).one() == url
