"""Model reference profiles in the database, and a ``ProfileStore`` on top of them.

The engine's profiles (``ReferenceProfile.to_bytes()``) are versioned per model: saving
never overwrites, ``latest_profile`` returns the highest version. Version 1 is the fitted
profile, each refresh adds the next (``shared_profiles.row_version``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
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
    refreshed_at: float | None = None
    refresh_reason: str | None = None
    left_out: list[str] | None = None


def model_summaries(*, session: Session) -> list[ModelSummary]:
    """Every model known from a profile, a client or an alert, by model_id."""
    profiles: dict[str, list[ModelProfileRow]] = {}
    for row in session.scalars(
        select(ModelProfileRow).order_by(ModelProfileRow.model_id, ModelProfileRow.version)
    ):
        profiles.setdefault(row.model_id, []).append(row)
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
    summaries = []
    for model_id in sorted(set(profiles) | set(clients) | set(open_alerts)):
        versions = profiles.get(model_id, [])
        newest = versions[-1] if versions else None
        count, max_risk = clients.get(model_id, (0, None))
        sizes: dict[str, object] = {}
        if newest is not None:
            sizes = _reference_summary(newest.blob)
        summaries.append(
            ModelSummary(
                model_id=model_id,
                versions=[v.version for v in versions],
                dim=newest.dim if newest else None,
                profile_created_at=newest.created_at if newest else None,
                clients=count,
                max_risk=max_risk,
                open_alerts=open_alerts.get(model_id, 0),
                **sizes,  # type: ignore[arg-type]
            )
        )
    return summaries


def _reference_summary(blob: bytes) -> dict[str, object]:
    """Reference size, the size the model's dimension needs, and the thresholds derived from
    the reference (the tests' nulls before any configured override); empty if unreadable."""
    from querywatch.models.profile import ReferenceProfile
    from querywatch.models.registry import EVIDENCE_TESTS

    try:
        profile = ReferenceProfile.from_bytes(blob)
    except ValueError:
        return {}
    thresholds = {"ood_threshold": profile.ood_threshold, "margin_threshold": profile.margin_threshold}
    if len(profile.spread):  # a profile stored before spread scores has none
        thresholds["spread_threshold"] = profile.spread_threshold
    if profile.calibration is not None:
        thresholds["far_threshold"] = profile.calibration.far_threshold
    thresholds |= {f"null_{name}": value for name, value in EVIDENCE_TESTS.nulls(profile.calibration).items()}
    if profile.margin_threshold <= 0.0:
        # No margins (labels only) or saturated ones: no answer is on the boundary, so the
        # boundary test is silent, and a null beside it would say it was listening.
        thresholds.pop("null_boundary", None)
    return {
        "origin": profile.origin,
        "answers": profile.answers,
        "refreshed_at": profile.refreshed_at,
        "refresh_reason": profile.refresh_reason,
        "left_out": list(profile.left_out),
        "reference_size": profile.reference_size,
        "required_reference_size": profile.required_size(),
        "thresholds": thresholds,
    }
