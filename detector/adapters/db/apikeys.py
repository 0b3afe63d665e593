"""API keys: created once and shown once; only a sha256 of the secret is stored.

A key reads ``qw_<prefix>_<secret>``. The prefix finds the row; the secret's hash is then
compared in constant time. Keys are 32 random bytes, so a fast hash is the right one
(a slow password hash protects guessable secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.tables import API_ROLES, ApiKeyRow, utcnow

KEY_SCHEME = "qw"
#: ``last_used_at`` is written at most this often per key, to keep reads read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewApiKey:
    """A freshly created key: ``secret`` is the full key, shown to the user exactly once."""

    id: int
    name: str
    role: str
    secret: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name and role."""

    key_id: int
    name: str
    role: str
    last_used_at: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_secret(secret: str) -> str:
    """Hex sha256 of a key's secret part.

    >>> len(hash_secret("x"))
    64
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(*, session: Session, role: str, name: str) -> NewApiKey:
    """Store a new key with ``role`` ('reader' or 'admin') and return it with its secret."""
    if role not in API_ROLES:
        raise ValueError(f"role must be one of {', '.join(API_ROLES)}")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiKeyRow(name=name, prefix=prefix, hash=hash_secret(secret), role=role, created_at=utcnow())
    session.add(row)
    session.flush()
    return NewApiKey(id=row.id, name=name, role=role, secret=f"{KEY_SCHEME}_{prefix}_{secret}")


def authenticate(*, session: Session, presented: str) -> Principal | None:
    """The principal a presented key belongs to, or None (unknown, malformed or revoked).

    Read-only; ``touch_last_used`` records the use.
    """
    scheme, _, rest = presented.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or not prefix or not secret:
        return None
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).one_or_none()
    expected = row.hash if row is not None else hash_secret("")
    matches = hmac.compare_digest(expected, hash_secret(secret))
    if row is None or not matches or row.revoked_at is not None:
        return None
    return Principal(key_id=row.id, name=row.name, role=row.role, last_used_at=row.last_used_at)


def touch_last_used(*, session: Session, principal: Principal) -> bool:
    """Record that the key was used, at most once per ``LAST_USED_RESOLUTION``; True if written."""
    now = utcnow()
    if principal.last_used_at is not None and now - principal.last_used_at < LAST_USED_RESOLUTION:
        return False
    session.execute(update(ApiKeyRow).where(ApiKeyRow.id == principal.key_id).values(last_used_at=now))
    return True


def revoke_api_key(*, session: Session, key_id: int) -> bool:
    """Revoke a key; False if there is no such live key."""
    result = session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def list_api_keys(*, session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)))
