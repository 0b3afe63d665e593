"""Secrets and Standard Webhooks signatures (the stable message ids are the outbox's,
``db.outbox.webhook_id_for``).

Signing goes through the reference library (``standardwebhooks``) so that any receiver using
it, or any other Standard Webhooks implementation, verifies our requests.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook

from querywatch.detector.errors import QuerywatchError

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


class InvalidWebhookSecret(QuerywatchError):
    """A webhook secret that is not ``whsec_`` followed by base64 of at least 16 bytes."""


def generate_secret() -> str:
    """A fresh random signing secret in the ``whsec_<base64>`` form receivers expect.

    >>> s = generate_secret()
    >>> s.startswith("whsec_") and len(base64.b64decode(s[6:])) == 32
    True
    """
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def check_secret(secret: str) -> None:
    """Refuse a secret the reference library would misread (it silently ignores bad base64).

    >>> check_secret("whsec_" + "A" * 24)
    >>> check_secret("whsec_!!")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    querywatch.detector.adapters.delivery.signing.InvalidWebhookSecret: not base64
    """
    body = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        key = b""
    if not secret.startswith(SECRET_PREFIX) or len(key) < 16:
        raise InvalidWebhookSecret("a webhook secret is 'whsec_' followed by base64 of at least 16 bytes")


def signed_headers(
    *, secret: str, webhook_id: str, timestamp: float, body: bytes, also: Sequence[str] = ()
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``timestamp`` (epoch seconds).

    The signature is ``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body``; with ``also``
    (the previous secret during a rotation's overlap) one signature per secret, space
    separated, of which a receiver needs to verify any one.

    >>> h = signed_headers(secret="whsec_" + "A" * 24, webhook_id="msg_1", timestamp=1e9, body=b"{}")
    >>> sorted(h), h["webhook-timestamp"], h["webhook-signature"][:3]
    (['content-type', 'webhook-id', 'webhook-signature', 'webhook-timestamp'], '1000000000', 'v1,')
    """
    when = datetime.fromtimestamp(int(timestamp), tz=UTC)
    data = body.decode("utf-8")
    signatures = [Webhook(s).sign(msg_id=webhook_id, timestamp=when, data=data) for s in (secret, *also)]
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": " ".join(signatures),
    }
