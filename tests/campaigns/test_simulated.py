"""On the project's simulator: a theft dealt over accounts of under 30 queries each is found
as one campaign (none of them is alerted alone), and an organisation of specialised honest
accounts under one ``meta.org`` is not linked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from querywatch.detector.config import Settings
from querywatch.detector.engine.campaigns.stage import CampaignStage
from querywatch.detector.engine.detector import Detector
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.engine.summaries import SummaryRule
from querywatch.detector.pipeline.replay import replay
from querywatch.detector.simulate import generate_trace, write_jsonl


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    events, truth = generate_trace(
        3, benign=40, attackers=0, campaign_accounts=12, org_accounts=10, scale=0.5
    )
    path = tmp_path_factory.mktemp("campaign") / "trace.jsonl"
    write_jsonl(events, path)
    settings = Settings(detection={"warmup_events": 3000})
    store = MemoryProfileStore()
    engine = Detector(settings.detection, store, settings.alerts)
    engine.summary_rule = SummaryRule(settings.campaigns.summary_every_seconds)
    stage = CampaignStage(settings.detection, store, settings.campaigns, settings.alerts)
    report = replay(path, engine, campaigns=stage).to_json()
    return report, truth


def test_a_campaign_of_small_accounts_is_found(replayed: tuple[dict, dict]) -> None:
    report, truth = replayed
    thieves = {c for c, t in truth.items() if t["family"] == "campaign"}
    rows = {r["client_id"]: r for r in report["clients"]}
    assert all(rows[c]["queries"] < 30 and rows[c]["first_alert_query"] is None for c in thieves)
    found = [set(c["clients"]) for c in report["campaigns"]]
    linked = set().union(*found) if found else set()
    assert len(linked & thieves) >= 0.9 * len(thieves), report["campaigns"]
    campaign_alerts = [a for a in report["alerts"] if a["kind"] == "campaign"]
    assert campaign_alerts and all(a["risk"] >= 0.8 for a in campaign_alerts)
    assert all(c["reasons"] and c["first_alert_ts"] for c in report["campaigns"])


def test_no_benign_account_is_linked(replayed: tuple[dict, dict]) -> None:
    report, truth = replayed
    linked = {m for c in report["campaigns"] for m in c["clients"]}
    assert not {m for m in linked if truth[m]["role"] == "benign"}, json.dumps(report["campaigns"])[:2000]


def test_summaries_stay_under_two_kilobytes(tmp_path: Path) -> None:
    events, _ = generate_trace(1, benign=6, attackers=1, scale=0.2)
    path = tmp_path / "t.jsonl"
    write_jsonl(events, path)
    settings = Settings(detection={"warmup_events": 500})
    engine = Detector(settings.detection, MemoryProfileStore(), settings.alerts)
    engine.summary_rule = SummaryRule(60.0)
    sizes = []
    original = engine.process_batch

    def spy(batch):  # type: ignore[no-untyped-def]
        result = original(batch)
        sizes.extend(len(s.to_bytes()) for s in result.summaries)
        return result

    engine.process_batch = spy  # type: ignore[method-assign]
    replay(path, engine)
    assert sizes and max(sizes) <= 2048
