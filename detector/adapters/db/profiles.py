"""Model reference profiles in the database, and a ``ProfileStore`` on top of them.

The engine's profiles (``ReferenceProfile.to_bytes()``) are versioned per model: saving
never overwrites, ``latest_profile`` returns the highest version. Version 1 is the first
fit, each refresh adds the next, and a trusted file stored over a warm-up's history adds
the next as well (``shared_profiles``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.tables import AlertRow, ClientRow, ModelProfileRow, utcnow


def save_profile(*, session: Session, model_id: str, version: int, dim: int, blob: bytes) -> ModelProfileRow:
    """Add one version of a model's profile (an existing (model, version) is an IntegrityError)."""
    row = ModelProfileRow(model_id=model_id, version=version, dim=dim, blob=blob, created_at=utcnow())
    session.add(row)
    session.flush()
    return row


def latest_profile(*, session: Session, model_id: str) -> ModelProfileRow | None:
    query = (
        select(ModelProfileRow)
        .where(ModelProfileRow.model_id == model_id)
        .order_by(ModelProfileRow.version.desc())
        .limit(1)
    )
    return session.scalars(query).one_or_none()


def latest_version(*, session: Session, model_id: str) -> int | None:
    """The highest stored version of a model's profile (a cheap check for a refresh)."""
    newest: int | None = session.scalar(
        select(func.max(ModelProfileRow.version)).where(ModelProfileRow.model_id == model_id)
    )
    return newest


@dataclass(frozen=True)
class ModelSummary:
    """What the API shows about a served model."""

    model_id: str
    versions: list[int]
    dim: int | None
    profile_created_at: datetime | None
    clients: int
    max_risk: float | None
    open_alerts: int
    reference_size: int | None = None
    required_reference_size: int | None = None
    thresholds: dict[str, float] | None = None
    origin: str | None = None
    answers: str | None = None
    refreshed_at: datetime | None = None
    refresh_reason: str | None = None
    left_out: list[str] | None = None
    warning: str | None = None


def model_summaries(*, session: Session) -> list[ModelSummary]:
    """Every model known from a profile, a client or an alert, by model_id. Of the stored
    profiles only each model's newest is read, and only once (a model refreshed every day
    keeps a version a day, each a profile's size)."""
    versions: dict[str, list[tuple[int, int, datetime]]] = {}
    for model_id, version, dim, created_at in session.execute(
        select(
            ModelProfileRow.model_id, ModelProfileRow.version, ModelProfileRow.dim, ModelProfileRow.created_at
        ).order_by(ModelProfileRow.model_id, ModelProfileRow.version)
    ):
        versions.setdefault(model_id, []).append((version, dim, created_at))
    clients = {
        m: (int(n), float(r))
        for m, n, r in session.execute(
            select(ClientRow.model_id, func.count(), func.max(ClientRow.risk)).group_by(ClientRow.model_id)
        )
    }
    open_alerts = {
        m: int(n)
        for m, n in session.execute(
            select(AlertRow.model_id, func.count())
            .where(AlertRow.state != "resolved")
            .group_by(AlertRow.model_id)
        )
    }
    stored_summaries = _newest_summaries(session, {m: rows[-1] for m, rows in versions.items()})
    summaries = []
    for model_id in sorted(set(versions) | set(clients) | set(open_alerts)):
        stored = versions.get(model_id, [])
        count, max_risk = clients.get(model_id, (0, None))
        sizes = stored_summaries.get(model_id, {})
        summaries.append(
            ModelSummary(
                model_id=model_id,
                versions=[version for version, _, _ in stored],
                dim=stored[-1][1] if stored else None,
                profile_created_at=stored[-1][2] if stored else None,
                clients=count,
                max_risk=max_risk,
                open_alerts=open_alerts.get(model_id, 0),
                **sizes,  # type: ignore[arg-type]
            )
        )
    return summaries


#: Summaries of stored profiles already decoded, by (model_id, version, created_at): a stored
#: version is never overwritten (``save_profile``), and its creation time tells a database
#: made again apart. Decoding one takes milliseconds (2.5 ms for the 80 KB of a 64-input
#: model's), and reading its blob again is the call's largest I/O.
_SUMMARIES: dict[tuple[str, int, datetime], dict[str, object]] = {}
#: Profiles whose summaries are kept, at most; the oldest go first.
_SUMMARIES_KEPT = 256
_SUMMARIES_LOCK = threading.Lock()


def _newest_summaries(
    session: Session, newest: dict[str, tuple[int, int, datetime]]
) -> dict[str, dict[str, object]]:
    """``_decoded_summary`` of each model's newest profile (``newest``: model_id to its
    (version, dim, created_at)); only the blobs of profiles not decoded before are read."""
    keys = {model_id: (model_id, version, created) for model_id, (version, _, created) in newest.items()}
    found = {key: _SUMMARIES[key] for key in keys.values() if key in _SUMMARIES}
    missing = [key for key in keys.values() if key not in found]
    if missing:
        pairs = [(m, v) for m, v, _ in missing]
        wanted = tuple_(ModelProfileRow.model_id, ModelProfileRow.version).in_(pairs)
        rows = session.execute(
            select(ModelProfileRow.model_id, ModelProfileRow.version, ModelProfileRow.blob).where(wanted)
        )
        decoded = {(m, v): _decoded_summary(blob) for m, v, blob in rows}
        with _SUMMARIES_LOCK:  # the API's routes run on a thread pool
            for m, v, created in missing:
                if len(_SUMMARIES) >= _SUMMARIES_KEPT:
                    del _SUMMARIES[next(iter(_SUMMARIES))]
                found[(m, v, created)] = _SUMMARIES[(m, v, created)] = decoded.get((m, v), {})
    return {model_id: found[key] for model_id, key in keys.items()}


def _decoded_summary(blob: bytes) -> dict[str, object]:
    from querywatch.detector.engine.profiles import derived_thresholds, thin_warmup
    from querywatch.models.profile import ReferenceProfile

    try:
        profile = ReferenceProfile.from_bytes(blob)
    except ValueError:
        return {}
    return {
        "origin": profile.origin,
        "answers": profile.answers,
        # Event time, as every other time the API gives: an instant, not Unix seconds.
        "refreshed_at": None
        if profile.refreshed_at is None
        else datetime.fromtimestamp(profile.refreshed_at, UTC),
        "refresh_reason": profile.refresh_reason,
        "left_out": list(profile.left_out),
        "reference_size": profile.reference_size,
        "required_reference_size": profile.required_size(),
        "thresholds": derived_thresholds(profile),
        "warning": thin_warmup(profile),
    }
