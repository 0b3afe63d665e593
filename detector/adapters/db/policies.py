"""The per-model policy store and silences: read them for ``engine.policy.decide``, change
them (every change is a new version, so it can be reverted), and list them.

Audit entries are written by the callers (API routes) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from querywatch.detector.adapters.db.tables import (
    AlertRow,
    ClientRow,
    ModelPolicyRow,
    ModelPolicyVersionRow,
    ModelProfileRow,
    SilenceRow,
    utcnow,
)
from querywatch.detector.engine.policy import MODES, ModelPolicy, ModelView, Silence
from querywatch.detector.errors import QuerywatchError

#: The fields of a model policy an admin sets (all but the model id).
POLICY_FIELDS = (
    "mode",
    "degrade_risk",
    "block_risk",
    "degraded_precision",
    "page_risk",
    "extraction_block",
    "extraction_degrade",
)


class PolicyNotFound(QuerywatchError):
    """No such policy version or silence."""


class InvalidPolicy(QuerywatchError, ValueError):
    """A policy change or a silence querywatch cannot apply (e.g. an unknown mode)."""


def as_policy(row: ModelPolicyRow | None, model_id: str) -> ModelPolicy:
    if row is None:
        return ModelPolicy(model_id)
    return ModelPolicy(model_id, **{name: getattr(row, name) for name in POLICY_FIELDS})


def policy_dict(policy: ModelPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def get_policy(*, session: Session, model_id: str) -> ModelPolicy:
    """The model's policy (the defaults if none was ever set)."""
    return as_policy(session.get(ModelPolicyRow, model_id), model_id)


def policies_for(*, session: Session, model_ids: Iterable[str]) -> dict[str, ModelPolicy]:
    ids = list(set(model_ids))
    if not ids:
        return {}
    rows = session.scalars(select(ModelPolicyRow).where(ModelPolicyRow.model_id.in_(ids)))
    return {row.model_id: as_policy(row, row.model_id) for row in rows}


def set_policy(*, session: Session, model_id: str, changes: dict[str, Any], actor: str) -> ModelPolicyRow:
    """Apply ``changes`` (a subset of ``POLICY_FIELDS``; None clears an override) as a new version."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidPolicy(f"unknown policy fields: {', '.join(sorted(unknown))}")
    if "mode" in changes and changes["mode"] not in MODES:
        raise InvalidPolicy(f"mode must be one of {', '.join(MODES)}")
    row = session.get(ModelPolicyRow, model_id)
    if row is None:
        row = ModelPolicyRow(model_id=model_id, mode="enforce", version=0, updated_by=actor)
        session.add(row)
    for name, value in changes.items():
        setattr(row, name, value)
    if row.mode is None:
        row.mode = "enforce"
    row.version = (row.version or 0) + 1
    row.updated_by = actor
    row.updated_at = utcnow()
    session.add(
        ModelPolicyVersionRow(
            model_id=model_id,
            version=row.version,
            policy=policy_dict(as_policy(row, model_id)),
            changed_by=actor,
            changed_at=row.updated_at,
        )
    )
    session.flush()
    return row


def model_seen(*, session: Session, model_id: str) -> bool:
    """Whether querywatch knows the model: a profile stored, or a client of it scored."""
    for column in (ModelProfileRow.model_id, ClientRow.model_id):
        if session.scalar(select(column).where(column == model_id).limit(1)) is not None:
            return True
    return False


def policy_versions(*, session: Session, model_id: str) -> list[ModelPolicyVersionRow]:
    query = select(ModelPolicyVersionRow).where(ModelPolicyVersionRow.model_id == model_id)
    return list(session.scalars(query.order_by(ModelPolicyVersionRow.version.desc())))


def revert_policy(*, session: Session, model_id: str, version: int, actor: str) -> ModelPolicyRow:
    """Make an earlier version current again (as a new version: history is never rewritten)."""
    old = session.scalar(
        select(ModelPolicyVersionRow).where(
            ModelPolicyVersionRow.model_id == model_id, ModelPolicyVersionRow.version == version
        )
    )
    if old is None:
        raise PolicyNotFound(f"model {model_id!r} has no policy version {version}")
    # A version stored before a field existed had that field off (None): it is cleared.
    changes = {name: old.policy.get(name) for name in POLICY_FIELDS}
    return set_policy(session=session, model_id=model_id, changes=changes, actor=actor)


def active_silences(*, session: Session, now: datetime) -> list[SilenceRow]:
    query = select(SilenceRow).where(SilenceRow.removed_at.is_(None), SilenceRow.expires_at > now)
    return list(session.scalars(query.order_by(SilenceRow.id)))


def as_silence(row: SilenceRow) -> Silence:
    return Silence(
        row.id,
        row.expires_at.timestamp(),
        row.client_id,
        row.model_id,
        row.campaign_id,
        row.reason_contains,
    )


def add_silence(
    *,
    session: Session,
    actor: str,
    comment: str,
    expires_at: datetime,
    client_id: str | None = None,
    model_id: str | None = None,
    campaign_id: str | None = None,
    reason_contains: str | None = None,
) -> SilenceRow:
    if expires_at <= utcnow():
        raise InvalidPolicy("a silence must expire in the future")
    row = SilenceRow(
        client_id=client_id,
        model_id=model_id,
        campaign_id=campaign_id,
        reason_contains=reason_contains,
        comment=comment,
        created_by=actor,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return row


def remove_silence(*, session: Session, silence_id: int, actor: str) -> SilenceRow:
    row = session.get(SilenceRow, silence_id)
    if row is None:
        raise PolicyNotFound(f"no silence {silence_id}")
    if row.removed_at is None:
        row.removed_at = utcnow()
        row.removed_by = actor
    return row


def list_silences(*, session: Session, include_inactive: bool = False) -> list[SilenceRow]:
    if not include_inactive:
        return active_silences(session=session, now=utcnow())
    return list(session.scalars(select(SilenceRow).order_by(SilenceRow.id.desc()).limit(500)))


def client_views(
    rows: Iterable[ClientRow],
    campaigns: Mapping[tuple[str, str], tuple[float, tuple[str, ...]]] | None = None,
) -> list[ModelView]:
    """The policy's view of a client's rows (one per model): risk, reasons and extraction
    estimate as stored, with the risk and ids of the live campaigns each (client, model)
    belongs to (``campaigns.campaign_floors``)."""
    found = campaigns or {}
    views = []
    for r in rows:
        floor, ids = found.get((r.client_id, r.model_id), (0.0, ()))
        views.append(ModelView(r.client_id, r.model_id, r.risk, tuple(r.reasons), r.extraction, ids, floor))
    return views


@dataclass(frozen=True)
class Calibration:
    """A model's alerts against analysts' false-positive feedback, and the page risk that
    would have kept every false positive from paging (never applied by itself)."""

    model_id: str
    alerts: int
    false_positives: int
    suggested_page_risk: float | None
    true_alerts_below: int  # alerts not marked false that the suggestion would also have kept quiet
    current_page_risk: float | None


def calibration(*, session: Session, model_id: str) -> Calibration:
    rows = session.execute(
        select(AlertRow.peak_risk, AlertRow.risk, AlertRow.false_positive).where(
            AlertRow.model_id == model_id, AlertRow.kind == "client"
        )
    ).all()
    peaks = [(max(peak, risk), fp) for peak, risk, fp in rows]
    false = [p for p, fp in peaks if fp]
    suggestion = None if not false else min(1.0, round(max(false) + 0.005, 3))
    lost = 0 if suggestion is None else sum(1 for p, fp in peaks if not fp and p < suggestion)
    return Calibration(
        model_id,
        len(peaks),
        len(false),
        suggestion,
        lost,
        get_policy(session=session, model_id=model_id).page_risk,
    )
