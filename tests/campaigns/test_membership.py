"""Campaign membership: a link opens a campaign, joins a member, merges two campaigns into
the older; removing a member splits or ends it; an analyst's dismissal ends it for good; the
cap counts what it leaves out. Driven through ``CampaignStage`` with links made by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from querywatch.detector.config import DetectionSettings
from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.config.campaigns import CampaignSettings
from querywatch.detector.engine.campaigns.campaign import Link
from querywatch.detector.engine.campaigns.held import HeldSummary
from querywatch.detector.engine.campaigns.stage import CampaignStage, ModelCampaigns
from querywatch.detector.engine.grouping import GroupingKeys
from querywatch.detector.engine.outcomes import ALERT_CLOSED, ALERT_OPENED, ALERT_UPDATED
from querywatch.detector.engine.profiles import MemoryProfileStore
from querywatch.detector.engine.summaries import ClientSummary, IndicatorCounts, cell_bitmap


def _stage(  # type: ignore[no-untyped-def]
    profile, max_members: int = 1000, alerts: AlertSettings | None = None
) -> tuple[CampaignStage, ModelCampaigns]:
    store = MemoryProfileStore()
    store.put(profile)
    stage = CampaignStage(DetectionSettings(), store, CampaignSettings(max_members=max_members), alerts)
    model = stage._model(_summary("seed", profile.version))
    assert model is not None and model.lineage is not None
    return stage, model


def _summary(client: str, version: str, queries: int = 400) -> ClientSummary:
    # Half its queries structured steps: the union's pooled steps test opens the campaign's alert.
    counts = IndicatorCounts(scored=queries, steps=queries // 2)
    cells = cell_bitmap(np.ones(8))
    return ClientSummary("m", client, version, 1.0, queries, 0.1, False, counts, cells, (1, 1), b"", 8, False)


def _link(stage: CampaignStage, model: ModelCampaigns, a: str, b: str, ts: float) -> list:  # type: ignore[type-arg]
    for c in (a, b):
        model.summaries.setdefault(c, HeldSummary.of(_summary(c, model.profile.version)))
    events: list = []  # type: ignore[type-arg]
    touched = stage._add_link(model, Link(a, b, "lineage", 50.0, 12, 40), ts, events)
    for campaign_id in touched:
        events += stage._assess(model, model.campaigns[campaign_id], ts)
    return events


def test_link_join_merge_split_and_dismiss(profile) -> None:  # type: ignore[no-untyped-def]
    stage, model = _stage(profile)
    _link(stage, model, "a", "b", 10.0)
    [first] = stage.campaigns("m")
    _link(stage, model, "b", "c", 11.0)
    assert first.members == ["a", "b", "c"]
    _link(stage, model, "x", "y", 12.0)
    assert len(stage.campaigns("m")) == 2
    events = _link(stage, model, "c", "x", 13.0)  # joins the two: the younger merges into the older
    [merged] = stage.campaigns("m")
    assert merged.campaign_id == first.campaign_id and merged.members == ["a", "b", "c", "x", "y"]
    assert any(
        e.type == ALERT_CLOSED and "merged into" in e.alert.reasons[0] and "merged" in e.why for e in events
    )
    # c held the bridge: without it, {a, b} keeps the id and {x, y} is a campaign of its own
    stage.remove_member("m", "c", 14.0)
    parts = {tuple(c.members): c.campaign_id for c in stage.campaigns("m")}
    assert parts[("a", "b")] == first.campaign_id and ("x", "y") in parts
    stage.remove_member("m", "b", 15.0)  # a alone: that campaign ends
    assert [c.members for c in stage.campaigns("m")] == [["x", "y"]]
    [last] = stage.campaigns("m")
    closed = stage.dismiss("m", last.campaign_id, 16.0)
    assert stage.campaigns("m") == [] and all(e.type == ALERT_CLOSED for e in closed)
    _link(stage, model, "x", "y", 17.0)  # the same first link does not reopen a dismissed campaign
    assert stage.campaigns("m") == []


def test_campaign_alert_is_of_kind_campaign_and_capped(profile) -> None:  # type: ignore[no-untyped-def]
    stage, model = _stage(profile, max_members=3)
    events = _link(stage, model, "a", "b", 10.0)
    _link(stage, model, "b", "c", 11.0)
    _link(stage, model, "c", "d", 12.0)
    [campaign] = stage.campaigns("m")
    assert campaign.members == ["a", "b", "c"] and campaign.capped == 1
    assert any("left out (cap 3)" in r for r in campaign.reasons)
    opened = [e for e in events if e.type == ALERT_OPENED]
    assert opened and opened[0].alert.kind == "campaign" and opened[0].alert.client_id == campaign.campaign_id


def test_grouping_keys_are_hashed_with_a_salt() -> None:
    plain = GroupingKeys.of(["203.0.113.7"], ["curl/8"], "acme")
    hashed = GroupingKeys.of(["203.0.113.9"], ["curl/8"], "acme", salt="s3cret")
    again = GroupingKeys.of(["203.0.113.200"], ["curl/8"], "acme", salt="s3cret")
    assert "acme" not in repr(hashed) and "203.0.113" not in repr(hashed)
    assert hashed.shared_with(again) == ["network", "user agent", "organisation"]
    assert plain.shared_with(hashed) == []


def test_an_open_campaign_alert_is_updated_when_the_ring_grows_at_the_same_risk(profile) -> None:  # type: ignore[no-untyped-def]
    """At risk 1.0 from its opening, a campaign's alert never updated: receivers kept the
    opening's two accounts while the ring grew to twelve."""
    stage, model = _stage(profile)
    opened = _link(stage, model, "a", "b", 10.0)
    assert [e.type for e in opened] == [ALERT_OPENED]
    assert [e.type for e in _link(stage, model, "b", "c", 11.0)] == []  # within update_every_seconds
    later = 11.0 + stage.lifecycle.settings.update_every_seconds
    [grown] = _link(stage, model, "c", "d", later)
    assert grown.type == ALERT_UPDATED and grown.alert.kind == "campaign"
    assert grown.alert.features["accounts"] == 4 and grown.alert.risk == opened[0].alert.risk


def test_a_campaign_alert_carries_its_members_networks_and_user_agents(profile) -> None:  # type: ignore[no-untyped-def]
    """Its sources were empty, though each member's summary held its grouping keys: now the
    members' keys in the order the members were found, bounded as an account alert's sources
    (``alerts.max_sources``: the most recent distinct last), and current after the ring grew."""
    stage, model = _stage(profile, alerts=AlertSettings(max_sources=3))
    keys = {
        "a": GroupingKeys(("198.51.100.0/24",), ("curl/8",)),
        "b": GroupingKeys(("203.0.113.0/24", "198.51.100.0/24"), ("curl/8",)),
        "c": GroupingKeys(("192.0.2.0/24",), ("Go-http-client/1.1",)),
        "d": GroupingKeys(("2001:db8::/48",)),
    }
    for client, k in keys.items():
        model.summaries[client] = HeldSummary.of(replace(_summary(client, model.profile.version), keys=k))
    [opened] = _link(stage, model, "a", "b", 10.0)
    assert opened.alert.source_ips == ("203.0.113.0/24", "198.51.100.0/24")
    assert opened.alert.user_agents == ("curl/8",)
    _link(stage, model, "b", "c", 11.0)
    [grown] = _link(stage, model, "c", "d", 11.0 + stage.lifecycle.settings.update_every_seconds)
    assert grown.type == ALERT_UPDATED
    assert grown.alert.source_ips == ("198.51.100.0/24", "192.0.2.0/24", "2001:db8::/48")
    assert grown.alert.user_agents == ("curl/8", "Go-http-client/1.1")


def test_a_campaign_formed_again_under_its_id_opens_an_alert_of_a_new_id(profile) -> None:  # type: ignore[no-untyped-def]
    """The same first pair links again after the campaign ended: the same campaign id, and an
    alert counted from 1 again; with an id from the count alone, the store took its opening
    for the ended alert's, already stored, and dropped it."""
    stage, model = _stage(profile)
    [first] = [e for e in _link(stage, model, "a", "b", 10.0) if e.type == ALERT_OPENED]
    [campaign] = stage.campaigns("m")
    ended = stage.remove_member("m", "b", 11.0)
    assert stage.campaigns("m") == [] and [e.type for e in ended] == [ALERT_CLOSED]
    [again] = [e for e in _link(stage, model, "a", "b", 20.0) if e.type == ALERT_OPENED]
    assert stage.campaigns("m")[0].campaign_id == campaign.campaign_id
    assert again.alert.alert_id != first.alert.alert_id
