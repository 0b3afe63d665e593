"""OCSF Detection Findings validated offline by the OCSF models of ``py-ocsf-models``."""

from __future__ import annotations

from typing import Any

import pytest

from querywatch.detector.adapters.delivery.ocsf import OCSF_VERSION, detection_finding

models = pytest.importorskip("py_ocsf_models.events.findings.detection_finding")

EVENT: dict[str, Any] = {
    "schema_version": 1,
    "type": "alert.opened",
    "sequence": 1,
    "event_id": 7,
    "event_time": "2026-11-29T10:48:13Z",
    "detection_time": "2026-11-29T10:48:13.402000Z",
    "alert_id": "al_3f9c2a7d1e5b4c6a8f0e2d1c",
    "kind": "client",
    "subject_id": "acct-1042",
    "client_id": "acct-1042",
    "model_id": "digits-v1",
    "opened_at": "2026-11-29T10:48:13Z",
    "risk": 0.97,
    "severity": "high",
    "decision": "block",
    "extraction": None,
    "silenced_by": None,
    "reasons": ["input-space coverage 6.1x the benign population"],
    "technique": "AML.T0024.002",
    "technique_name": "Extract AI Model",
}


@pytest.mark.parametrize(
    ("change", "activity", "status"),
    [({}, 1, 1), ({"type": "alert.updated", "silenced_by": 3}, 2, 3), ({"type": "alert.closed"}, 3, 4)],
)
def test_every_alert_event_is_a_valid_detection_finding(
    change: dict[str, Any], activity: int, status: int
) -> None:
    finding = detection_finding({**EVENT, **change})
    parsed = models.DetectionFinding.model_validate(finding)
    assert (int(parsed.class_uid), int(parsed.activity_id), int(parsed.status_id)) == (
        2004,
        activity,
        status,
    )
    assert int(parsed.type_uid) == 200400 + activity and int(parsed.severity_id) == 4
    assert parsed.finding_info.uid == EVENT["alert_id"] and parsed.risk_score == 97
    assert parsed.finding_info.attacks[0].technique.uid == "AML.T0024.002"
    assert parsed.resources[0].uid == "digits-v1" and parsed.metadata.version == OCSF_VERSION
