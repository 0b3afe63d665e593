"""The campaign stage's state of one model, as bytes: what the aggregator checkpoints.

``querywatch aggregate`` stores each model's state with the offset of the summaries topic it
covers, in one transaction; a standby that takes over loads it and resumes at that offset,
so its later decisions are the ones the stage would have made without the handover.

What is stored is what the stage cannot recompute cheaply: every client's latest summary
(without its codes and class histogram), the lineage index (``LineageIndex.export``: its
rows of sampled codes in table order, each client's per-cell counts, the hit counts, each
pair once), the
campaigns (members, links, risk, reasons, evidence, open alert), who is a member of which,
the campaigns an analyst dismissed and the query count of each client's last comparison.
The profile, its null rates and expected coverage come back from the profile store; a
state written for another profile version is not loaded (the stage would have started that
model afresh on the first summary of the new version).
MessagePack, then zlib: code samples are mostly small integers.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgpack

from querywatch.detector.engine.alerting import OpenAlert
from querywatch.detector.engine.campaigns.campaign import Campaign, Link
from querywatch.detector.engine.campaigns.held import HeldSummary
from querywatch.detector.engine.campaigns.stage import CampaignStage, ModelCampaigns
from querywatch.detector.engine.summaries import ClientSummary

STATE_VERSION = 1


class StageStateError(ValueError):
    """Bytes that are not a stage state of this version."""


def export_model(model: ModelCampaigns) -> bytes:
    """One model's stage state as bytes (see the module docstring)."""
    plain = {
        "v": STATE_VERSION,
        "model_id": model.profile.model_id,
        "profile": model.profile.version,
        "summaries": [
            held.summary(model.profile.model_id, client, model.profile.version).to_bytes()
            for client, held in model.summaries.items()
        ],
        "lineage": None if model.lineage is None else model.lineage.export(),
        "campaigns": [_campaign(c) for c in model.campaigns.values()],
        "member_of": model.member_of,
        "dismissed": sorted(model.dismissed),
        "compared_at": model.compared_at,
    }
    return zlib.compress(msgpack.packb(plain, use_bin_type=True), 6)


def import_model(stage: CampaignStage, data: bytes) -> ModelCampaigns | None:
    """Load one model's state into ``stage`` (replacing what it held of that model); None
    when the stage's profile store no longer holds the profile version it was written for.
    Raises ``StageStateError`` for bytes that are not a state of this version."""
    try:
        plain = msgpack.unpackb(zlib.decompress(data), raw=False, strict_map_key=False)
        if not isinstance(plain, dict) or plain.get("v") != STATE_VERSION:
            raise StageStateError("not a version-1 campaign stage state")
        model = stage.fresh_model(str(plain["model_id"]), str(plain["profile"]))
        if model is None:
            return None
        for blob in plain["summaries"]:
            summary = ClientSummary.from_bytes(blob)
            model.summaries[summary.client_id] = HeldSummary.of(summary)
        if model.lineage is not None and plain["lineage"] is not None:
            model.lineage.load(plain["lineage"])
        for c in plain["campaigns"]:
            campaign = _campaign_from(c)
            model.campaigns[campaign.campaign_id] = campaign
        model.member_of = {str(k): str(v) for k, v in plain["member_of"].items()}
        model.dismissed = set(plain["dismissed"])
        model.compared_at = {str(k): int(v) for k, v in plain["compared_at"].items()}
        return model
    except (KeyError, TypeError, ValueError, zlib.error, msgpack.UnpackException) as exc:
        raise StageStateError(f"unreadable campaign stage state: {exc}") from None


def _campaign(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.campaign_id,
        "model_id": c.model_id,
        "members": c.members,
        "opened_ts": c.opened_ts,
        "links": [[x.a, x.b, x.signal, x.evidence, x.hits, x.trials, list(x.shared_keys)] for x in c.links],
        "risk": c.risk,
        "peak_risk": c.peak_risk,
        "reasons": list(c.reasons),
        "features": c.features,
        "extraction": c.extraction,
        "first_alert_ts": c.first_alert_ts,
        "alert": None if c.alert is None else c.alert.to_state(),
        "capped": c.capped,
    }


def _campaign_from(c: dict[str, Any]) -> Campaign:
    links = [
        Link(a, b, signal, float(e), int(h), int(t), tuple(keys))
        for a, b, signal, e, h, t, keys in c["links"]
    ]
    return Campaign(
        campaign_id=str(c["id"]),
        model_id=str(c["model_id"]),
        members=[str(m) for m in c["members"]],
        opened_ts=float(c["opened_ts"]),
        links=links,
        risk=float(c["risk"]),
        peak_risk=float(c["peak_risk"]),
        reasons=tuple(c["reasons"]),
        features={str(k): float(v) for k, v in c["features"].items()},
        extraction=c["extraction"],
        first_alert_ts=c["first_alert_ts"],
        alert=None if c["alert"] is None else OpenAlert.from_state(c["alert"]),
        capped=int(c["capped"]),
    )
