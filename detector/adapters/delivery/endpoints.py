"""Creating webhook endpoints and rotating their secrets: delivery's checks, then storage.

The URL passes the SSRF guard before it is stored (``UnsafeWebhookUrl``), and a secret is
generated unless one is given (e.g. to keep a receiver's existing configuration), which is
then checked (``InvalidWebhookSecret``). The rows themselves are ``db.webhooks``'.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlsplit

from querywatch.detector.adapters.db import webhooks as store
from querywatch.detector.adapters.db.session import Session
from querywatch.detector.adapters.db.tables import WebhookEndpointRow
from querywatch.detector.adapters.delivery.signing import check_secret, generate_secret
from querywatch.detector.adapters.delivery.ssrf import Resolver, pin_webhook_url, system_resolver


def create_endpoint(
    *,
    session: Session,
    url: str,
    allow_hosts: Iterable[str],
    min_severity: str = "low",
    model_id: str | None = None,
    secret: str | None = None,
    resolver: Resolver = system_resolver,
    kind: str = "standard",
    event_types: list[str] | None = None,
    routing_key: str | None = None,
) -> WebhookEndpointRow:
    """Add an endpoint after the SSRF check (see ``db.webhooks.add_endpoint`` for the rest)."""
    pin_webhook_url(url, allow_hosts=allow_hosts, resolver=resolver)
    return store.add_endpoint(
        session=session,
        url=url,
        secret=_checked(secret),
        min_severity=min_severity,
        model_id=model_id,
        kind=kind,
        event_types=event_types,
        routing_key=routing_key,
    )


def shown_url(kind: str, url: str) -> str:
    """An endpoint's URL as the API and the audit log show it. A Slack incoming-webhook URL is
    its credential (whoever has it can post to the channel), so only its host and the first
    part of its path show; every other kind's URL shows whole (its secret is separate).

    >>> shown_url("slack", "https://hooks.slack.com/services/T000/B000/XXXXXXXX")
    'https://hooks.slack.com/services/…'
    >>> shown_url("standard", "https://soc.example.com/hooks/qw")
    'https://soc.example.com/hooks/qw'
    """
    if kind != "slack":
        return url
    parts = urlsplit(url)
    first = parts.path.lstrip("/").split("/", 1)[0]
    return f"{parts.scheme}://{parts.netloc}/{first}/…" if first else f"{parts.scheme}://{parts.netloc}/…"


def rotate_secret(
    *,
    session: Session,
    endpoint_id: int,
    secret: str | None = None,
    overlap_seconds: float = 0.0,
    now: datetime | None = None,
) -> WebhookEndpointRow:
    """Give an endpoint a new secret (generated unless given; see ``db.webhooks.replace_secret``)."""
    return store.replace_secret(
        session=session,
        endpoint_id=endpoint_id,
        secret=_checked(secret),
        overlap_seconds=overlap_seconds,
        now=now,
    )


def _checked(secret: str | None) -> str:
    if secret is None:
        return generate_secret()
    check_secret(secret)
    return secret
