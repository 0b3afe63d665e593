"""Opaque keyset-pagination cursors: the sort key of a page's last row, base64url JSON.

Every list endpoint pages the same way: `limit` and `cursor` in, a ``Page``: `items` and
`next_cursor` out (null on the last page). A cursor that does not decode is the caller's
mistake (400), never a server error. The alerts change feed (`GET /v1/alerts?after=`) is not
a page but a position in the event log that a collector stores: its `after`/`next_after` is
the event id, by design.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel, Field

from querywatch.detector.adapters.db.alerts import AlertCursor
from querywatch.detector.adapters.db.campaigns import CampaignCursor
from querywatch.detector.adapters.db.clients import ClientCursor
from querywatch.detector.engine.events import clean_identifier

T = TypeVar("T")
ItemT = TypeVar("ItemT", bound=BaseModel)

#: The paging parameters every list endpoint takes.
PageLimit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
PageCursor = Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")]


def encode(values: list[Any]) -> str:
    """The cursor of a page ending at ``values``.

    >>> decode(encode([0.5, "c"]), 2)
    [0.5, 'c']
    """
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def _split(rows: Sequence[T], limit: int, key: Callable[[T], list[Any]]) -> tuple[Sequence[T], str | None]:
    """Split ``limit + 1`` fetched rows into the page and the cursor of the next one (None at the end).

    >>> _split([1, 2, 3], 2, lambda r: [r])
    ([1, 2], 'WzJd')
    """
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode(key(rows[limit - 1]))


class Page(BaseModel, Generic[ItemT]):
    """One page of a list endpoint. Each endpoint names its own subclass (``ClientPage``,
    ``AlertPage``, ...), so the OpenAPI document keeps a readable name for each."""

    items: list[ItemT]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")

    @classmethod
    def of(cls, rows: Sequence[Any], limit: int, key: Callable[[Any], list[Any]]) -> Self:
        """The page of ``limit + 1`` fetched rows (stored rows, read by attribute), whose
        cursor is ``key`` of its last row."""
        items, next_cursor = _split(rows, limit, key)
        return cls.model_validate({"items": items, "next_cursor": next_cursor}, from_attributes=True)


def decode(cursor: str, length: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != length:
        raise HTTPException(400, "cursor is not one this API returned")
    return values


def storable(value: object) -> bool:
    """Whether ``value`` is text an event's identifier may be (``clean_identifier``): the ids
    a cursor names were all such. A NUL or a lone surrogate half, possible in a cursor's
    JSON, reached the driver and failed there, as a 500."""
    return isinstance(value, str) and clean_identifier(value)


def utc_instant(when: datetime) -> datetime | None:
    """``when`` in UTC, or None where that leaves the calendar (9999-12-31T23:00-14:00 is in
    year 10000: the driver's conversion failed with a 500).

    >>> utc_instant(datetime.fromisoformat("9999-12-31T23:00:00-14:00")) is None
    True
    """
    try:
        return when.astimezone(UTC)
    except OverflowError:
        return None


def since_instant(since: datetime | None) -> datetime | None:
    """A ``since`` query parameter as a UTC instant (one without an offset is UTC); a 422
    where that leaves the calendar."""
    if since is None:
        return None
    instant = utc_instant(since if since.tzinfo else since.replace(tzinfo=UTC))
    if instant is None:
        raise HTTPException(422, "since: a time whose UTC instant is outside years 1-9999")
    return instant


def client_cursor(cursor: str | None) -> ClientCursor | None:
    if cursor is None:
        return None
    risk, client_id, model_id = decode(cursor, 3)
    if (
        not isinstance(risk, int | float)
        or isinstance(risk, bool)
        or not storable(client_id)
        or not storable(model_id)
    ):
        raise HTTPException(400, "cursor is not one this API returned")
    return ClientCursor(float(risk), client_id, model_id)


def alert_cursor(cursor: str | None) -> AlertCursor | None:
    return None if cursor is None else AlertCursor(*_opened_at_and_id(cursor))


def campaign_cursor(cursor: str | None) -> CampaignCursor | None:
    return None if cursor is None else CampaignCursor(*_opened_at_and_id(cursor))


def _opened_at_and_id(cursor: str) -> tuple[datetime, str]:
    """The (opening time, id) key that alert and campaign pages both end at."""
    opened_at, row_id = decode(cursor, 2)
    try:
        when = datetime.fromisoformat(opened_at) if isinstance(opened_at, str) else None
    except ValueError:
        when = None
    instant = None if when is None or when.tzinfo is None else utc_instant(when)
    if instant is None or not storable(row_id):
        raise HTTPException(400, "cursor is not one this API returned")
    return instant, row_id


def id_cursor(cursor: str | None) -> int | None:
    """The row id a page of newest-first rows (deliveries, dead letters) continues below; a
    plain number is the deliveries' cursor of earlier releases (the id itself), still accepted.

    >>> id_cursor(encode([41])), id_cursor("41"), id_cursor(None)
    (41, 41, None)
    """
    if cursor is None:
        return None
    if cursor.isdigit():
        value: Any = int(cursor)
    else:
        (value,) = decode(cursor, 1)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 2**62:
        raise HTTPException(400, "cursor is not one this API returned")
    return value
