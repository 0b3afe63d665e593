"""Per-model runtime policy (mode, threshold overrides), its versions and calibration report,
and silences. Every change needs an admin key, is audited and can be undone (a policy by
reverting to an earlier version, a silence by removing it)."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from querywatch.detector.adapters.api.cursors import utc_instant
from querywatch.detector.adapters.api.deps import AdminKey, ReaderKey, SessionDep, SettingsDep, actor_name
from querywatch.detector.adapters.api.routes.responses import ADMIN, READ, problems
from querywatch.detector.adapters.db import audit
from querywatch.detector.adapters.db import policies as store
from querywatch.detector.adapters.db.decision_inputs import decision_thresholds
from querywatch.detector.adapters.db.notices import announce_silence
from querywatch.detector.adapters.db.tables import SilenceRow
from querywatch.detector.engine.policy import contradictions

log = logging.getLogger("querywatch.policy")
router = APIRouter(prefix="/v1", tags=["policy"])
ModelId = Annotated[str, Path(min_length=1, max_length=256, description="The served model's id.")]
#: A model id that no path can carry (a control character) matches no route: 404.
_READ_MODEL = {**READ, **problems(404)}
SilenceId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The silence's id.")]
_RISK = Field(None, ge=0, le=1)


class PolicyPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "digits-v1",
                    "mode": "enforce",
                    "degrade_risk": None,
                    "block_risk": None,
                    "degraded_precision": None,
                    "page_risk": 0.9,
                    "extraction_block": None,
                    "extraction_degrade": None,
                    "version": 3,
                    "seen": True,
                }
            ]
        }
    )

    model_id: str
    mode: Literal["enforce", "monitor"] = Field(
        description="monitor: detect and store, decide `allow`, never page (a daily `monitor.digest` "
        "to the channels instead); enforce: the thresholds apply."
    )
    degrade_risk: float | None = Field(description="Override of `api.degrade_risk`; null: the default.")
    block_risk: float | None = Field(description="Override of `api.block_risk`; null: the default.")
    degraded_precision: int | None
    page_risk: float | None = Field(description="Alerts page only at or above this risk; null: all page.")
    extraction_block: float | None = Field(description="Block once a copy's estimated fidelity reaches this.")
    extraction_degrade: float | None = Field(
        description="Degrade once a copy's estimated fidelity reaches this (whatever the risk); null: off. "
        "A harm cap, not a theft signal: heavy benign users reach about 0.9 with natural queries."
    )
    version: int = Field(description="0 until the policy is first changed.")
    seen: bool = Field(
        description="Whether querywatch knows the model (a profile stored, or a client of it scored): a "
        "policy set for a model never seen applies once it comes, and may be a typo of its id."
    )


class PolicyChange(BaseModel):
    """The fields to change; an omitted field keeps its value, null clears an override."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"mode": "monitor"}, {"block_risk": 0.95}]}
    )

    mode: Literal["enforce", "monitor"] | None = None
    degrade_risk: float | None = _RISK
    block_risk: float | None = _RISK
    degraded_precision: int | None = Field(None, ge=0, le=6)
    page_risk: float | None = _RISK
    extraction_block: float | None = _RISK
    extraction_degrade: float | None = _RISK
    note: str | None = Field(None, max_length=2000, description="Why; kept in the audit log.")


class PolicyVersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    policy: dict[str, Any]
    changed_by: str
    changed_at: datetime


class Revert(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"version": 2}]})

    version: int = Field(ge=1, le=2**31 - 1)


class CalibrationPublic(BaseModel):
    model_id: str
    alerts: int
    false_positives: int = Field(description="Alerts analysts marked false positive.")
    suggested_page_risk: float | None = Field(
        description="The lowest page risk that would have kept every false positive quiet; null without any."
    )
    true_alerts_below: int = Field(description="Other alerts that this page risk would have kept quiet too.")
    current_page_risk: float | None


class SilenceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_id": "acct-qa-loadtest",
                    "comment": "QA load test until Friday",
                    "expires_at": "2026-12-04T18:00:00Z",
                }
            ]
        },
    )

    client_id: str | None = Field(None, max_length=256)
    model_id: str | None = Field(None, max_length=256)
    campaign_id: str | None = Field(None, max_length=256)
    reason_contains: str | None = Field(
        None, min_length=1, max_length=256, description="Matches alerts one of whose reasons contains this."
    )
    comment: str = Field(min_length=1, max_length=2000, description="Why (shown with the silence).")
    expires_at: AwareDatetime = Field(description="When it stops (RFC 3339 with its offset, in the future).")

    @field_validator("expires_at")
    @classmethod
    def _in_utc(cls, when: datetime) -> datetime:
        """Kept and echoed in UTC, as every time the API shows (a time without an offset is a
        422: compared with the clock it failed as a 500)."""
        utc = utc_instant(when)
        if utc is None:
            raise ValueError("lies outside years 1-9999 in UTC")
        return utc


class SilencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    client_id: str | None
    model_id: str | None
    campaign_id: str | None
    reason_contains: str | None
    comment: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    removed_by: str | None
    removed_at: datetime | None


def _policy(session: SessionDep, model_id: str) -> PolicyPublic:
    policy = store.get_policy(session=session, model_id=model_id)
    row_version = store.policy_versions(session=session, model_id=model_id)
    return PolicyPublic(
        **store.policy_dict(policy),
        model_id=model_id,
        version=row_version[0].version if row_version else 0,
        seen=store.model_seen(session=session, model_id=model_id),
    )


@router.get("/models/{model_id:path}/policy", response_model=PolicyPublic, responses=_READ_MODEL)
def model_policy(session: SessionDep, _key: ReaderKey, model_id: ModelId) -> PolicyPublic:
    """The model's runtime policy (defaults: enforce, no overrides)."""
    return _policy(session, model_id)


@router.put(
    "/models/{model_id:path}/policy", response_model=PolicyPublic, responses={**ADMIN, **problems(404, 422)}
)
def change_model_policy(
    session: SessionDep, settings: SettingsDep, key: AdminKey, model_id: ModelId, change: PolicyChange
) -> PolicyPublic:
    """Change the model's policy (a new version; revert with `POST …/policy/revert`). A degrade
    level above its block level is refused: it would degrade no one. Audited."""
    changes = change.model_dump(exclude_unset=True, exclude={"note"})
    if changes.get("mode", "x") is None:
        raise HTTPException(422, "mode cannot be null: use enforce or monitor")
    current = store.get_policy(session=session, model_id=model_id)
    unused = contradictions(replace(current, **changes), decision_thresholds(settings.api))
    if unused:
        raise HTTPException(422, "; ".join(unused))
    before = store.policy_dict(current)
    row = store.set_policy(session=session, model_id=model_id, changes=changes, actor=actor_name(key))
    audit.record(
        session=session,
        actor=actor_name(key),
        action="policy.change",
        target=f"model:{model_id}",
        detail={"from": before, "to": changes, "version": row.version, "note": change.note},
    )
    session.commit()
    return _policy(session, model_id)


@router.get(
    "/models/{model_id:path}/policy/versions", response_model=list[PolicyVersionPublic], responses=_READ_MODEL
)
def model_policy_versions(
    session: SessionDep, _key: ReaderKey, model_id: ModelId
) -> list[PolicyVersionPublic]:
    """Every version of the model's policy, newest first."""
    return [
        PolicyVersionPublic.model_validate(v)
        for v in store.policy_versions(session=session, model_id=model_id)
    ]


@router.post(
    "/models/{model_id:path}/policy/revert", response_model=PolicyPublic, responses={**ADMIN, **problems(404)}
)
def revert_model_policy(session: SessionDep, key: AdminKey, model_id: ModelId, body: Revert) -> PolicyPublic:
    """Make an earlier version current again (recorded as a new version). Audited."""
    row = store.revert_policy(session=session, model_id=model_id, version=body.version, actor=actor_name(key))
    audit.record(
        session=session,
        actor=actor_name(key),
        action="policy.revert",
        target=f"model:{model_id}",
        detail={"to_version": body.version, "version": row.version},
    )
    session.commit()
    return _policy(session, model_id)


@router.get("/models/{model_id:path}/calibration", response_model=CalibrationPublic, responses=_READ_MODEL)
def model_calibration(session: SessionDep, _key: ReaderKey, model_id: ModelId) -> CalibrationPublic:
    """Alerts, false positives and the page risk that would have avoided them."""
    return CalibrationPublic(**asdict(store.calibration(session=session, model_id=model_id)))


@router.post(
    "/models/{model_id:path}/calibration/apply",
    response_model=PolicyPublic,
    responses={**ADMIN, **problems(404, 409)},
)
def apply_calibration(session: SessionDep, key: AdminKey, model_id: ModelId) -> PolicyPublic:
    """Set the model's page risk to the calibration's suggestion (never done automatically). Audited."""
    report = store.calibration(session=session, model_id=model_id)
    if report.suggested_page_risk is None:
        raise HTTPException(409, "no false positives recorded for this model: nothing to suggest")
    row = store.set_policy(
        session=session,
        model_id=model_id,
        changes={"page_risk": report.suggested_page_risk},
        actor=actor_name(key),
    )
    audit.record(
        session=session,
        actor=actor_name(key),
        action="policy.calibration.apply",
        target=f"model:{model_id}",
        detail={**asdict(report), "version": row.version},
    )
    session.commit()
    return _policy(session, model_id)


@router.get("/silences", response_model=list[SilencePublic], responses=READ)
def list_silences(
    session: SessionDep,
    _key: ReaderKey,
    include_inactive: Annotated[bool, Query(description="Also expired and removed ones.")] = False,
) -> list[SilencePublic]:
    """Active silences (or all, newest first)."""
    rows = store.list_silences(session=session, include_inactive=include_inactive)
    return [SilencePublic.model_validate(r) for r in rows]


@router.post("/silences", status_code=201, response_model=SilencePublic, responses={**ADMIN, **problems(422)})
def create_silence(session: SessionDep, key: AdminKey, body: SilenceCreate) -> SilencePublic:
    """Stop matching alerts from paging until `expires_at` (decisions are unchanged). Audited,
    and announced in the log and to the webhook endpoints (a `silence.created` notice; not to
    PagerDuty)."""
    if not any((body.client_id, body.model_id, body.campaign_id, body.reason_contains)):
        raise HTTPException(422, "a silence needs at least one matcher (client, model, campaign or reason)")
    row = store.add_silence(
        session=session,
        actor=actor_name(key),
        comment=body.comment,
        expires_at=body.expires_at,
        client_id=body.client_id,
        model_id=body.model_id,
        campaign_id=body.campaign_id,
        reason_contains=body.reason_contains,
    )
    public = SilencePublic.model_validate(row)
    audit.record(
        session=session,
        actor=actor_name(key),
        action="silence.create",
        target=f"silence:{row.id}",
        detail=public.model_dump(mode="json"),
    )
    announce_silence(session=session, silence=row)
    session.commit()
    _announce("created", row)
    return public


@router.delete("/silences/{silence_id}", status_code=204, responses={**ADMIN, **problems(404)})
def remove_silence(session: SessionDep, key: AdminKey, silence_id: SilenceId) -> Response:
    """End a silence now. Audited."""
    row = store.remove_silence(session=session, silence_id=silence_id, actor=actor_name(key))
    audit.record(
        session=session, actor=actor_name(key), action="silence.remove", target=f"silence:{silence_id}"
    )
    session.commit()
    _announce("removed", row)
    return Response(status_code=204)


def _announce(what: str, row: SilenceRow) -> None:
    matchers = {
        k: v
        for k, v in (
            ("client_id", row.client_id),
            ("model_id", row.model_id),
            ("campaign_id", row.campaign_id),
            ("reason_contains", row.reason_contains),
        )
        if v
    }
    log.warning(
        "silence %s %s by %s until %s: %s",
        row.id,
        what,
        row.removed_by if what == "removed" else row.created_by,
        row.expires_at.isoformat(),
        row.comment,
        extra={"event": {"action": f"silence-{what}"}, "silence": {"id": row.id, **matchers}},
    )
