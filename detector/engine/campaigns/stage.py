"""The campaign stage: client summaries in, campaigns and their alert events out. No I/O.

One stage per aggregator (in process for a replay and ``querywatch up``; the aggregator
process reads the summaries topic). It keeps each (model, client)'s latest summary and,
per model, a lineage index of the summaries' code samples (``lineage``).

**What links two accounts.** Shared lineage: the same-cell pairs of their sampled queries
hold more structured steps than the reference's own rate allows, at a level corrected for
every pair of clients of the model (``log(pairs / alpha)``, alpha the detection
``false_alarm_rate``). An account with no single strong link joins a campaign when its hits
against all the campaign's members together pass ``log(clients × campaigns / alpha)``.
Grouping keys (network, user agent, organisation) are reported beside a link, never enough
for one: benign accounts of one organisation or proxy share them, and many specialised
accounts under one organisation cover complementary regions without any lineage.

**Membership.** A link between two free accounts opens a campaign; a link to a member adds
the other account (up to ``max_members``; beyond, the campaign counts it in ``capped``); a
link between members of two campaigns merges them into the older one (the younger's alert
closes, saying so). ``remove_member`` (an analyst's verdict, an evicted client) recomputes
the links among the remaining members: the part holding the oldest link keeps the id, other
linked parts become campaigns of their own, and lone accounts leave.

**Risk.** The calibrated tests run on the union (``campaign.union_evidence``): lineage
over all member pairs and the registry's rate tests on pooled counts, fused as the engine
fuses a client's tests; risk reaches ``alert_risk`` when the evidence crosses the link
level. A campaign's alert is of ``kind: campaign`` in the alert schema, with the same
lifecycle as a client's; its sources are the members' grouping keys (``_sources``), and its
risk is a floor on each member's (``policy.decide``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from querywatch.detector.config import DetectionSettings
from querywatch.detector.config.alerts import AlertSettings
from querywatch.detector.config.campaigns import CampaignSettings
from querywatch.detector.engine.alerting import AlertLifecycle, Observation, Sources
from querywatch.detector.engine.campaigns.campaign import (
    Campaign,
    Link,
    campaign_id_for,
    union_evidence,
)
from querywatch.detector.engine.campaigns.held import HeldSummary
from querywatch.detector.engine.campaigns.lineage import Found, LineageIndex, evidence, reference_null
from querywatch.detector.engine.outcomes import ALERT_CLOSED, AlertEvent
from querywatch.detector.engine.profiles import ProfileStore
from querywatch.detector.engine.summaries import ClientSummary
from querywatch.models.evidence import evidence_threshold, fuse
from querywatch.models.profile import ReferenceProfile
from querywatch.models.registry import EVIDENCE_TESTS

#: Below this many queries an account's sample is compared at every quarter of growth.
SMALL_ACCOUNT = 64


@dataclass
class ModelCampaigns:
    """The stage's state for one model (one profile version)."""

    profile: ReferenceProfile
    lineage: LineageIndex | None
    nulls: dict[str, float]
    expected_cells: NDArray[np.float64]
    summaries: dict[str, HeldSummary] = field(default_factory=dict)  # each client's latest
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    member_of: dict[str, str] = field(default_factory=dict)
    dismissed: set[str] = field(default_factory=set)  # campaign ids an analyst marked false positive
    compared_at: dict[str, int] = field(default_factory=dict)  # queries at a client's last comparison


class CampaignStage:
    """Links accounts into campaigns from their summaries (see the module docstring)."""

    def __init__(
        self,
        detection: DetectionSettings,
        profiles: ProfileStore,
        settings: CampaignSettings | None = None,
        alerts: AlertSettings | None = None,
    ) -> None:
        self.detection = detection
        self.settings = settings or CampaignSettings()
        self.profiles = profiles
        self.lifecycle = AlertLifecycle(detection, alerts or AlertSettings())
        self.allowance = 0.25 * evidence_threshold(detection.false_alarm_rate)
        self.models: dict[str, ModelCampaigns] = {}

    # ------------------------------------------------------------------ input
    def take(self, summary: ClientSummary) -> list[AlertEvent]:
        """Learn one summary; the campaign alert events it caused."""
        model = self._model(summary)
        if model is None:
            return []
        client = summary.client_id
        model.summaries[client] = HeldSummary.of(summary)
        events: list[AlertEvent] = []
        touched: set[str] = set()
        if model.lineage is not None and summary.codes and self._compare(model, summary):
            model.compared_at[client] = summary.queries
            found = model.lineage.update(client, summary.code_rows())
            for link in self._links(model, client, found):
                touched |= self._add_link(model, link, summary.ts, events)
        if client in model.member_of:
            touched.add(model.member_of[client])
        for campaign_id in sorted(touched):
            if campaign_id in model.campaigns:
                events += self._assess(model, model.campaigns[campaign_id], summary.ts)
        return events

    def campaigns(self, model_id: str | None = None) -> list[Campaign]:
        """Live campaigns (of one model, or all), oldest first."""
        models = [self.models[model_id]] if model_id in self.models else []
        if model_id is None:
            models = list(self.models.values())
        found = [c for m in models for c in m.campaigns.values()]
        return sorted(found, key=lambda c: (c.opened_ts, c.campaign_id))

    def campaign_of(self, model_id: str, client_id: str) -> Campaign | None:
        model = self.models.get(model_id)
        if model is None or client_id not in model.member_of:
            return None
        return model.campaigns.get(model.member_of[client_id])

    # ------------------------------------------------------------------ analysts, eviction
    def remove_member(self, model_id: str, client_id: str, ts: float) -> list[AlertEvent]:
        """Take an account out (and forget its summary): the campaign may split or end."""
        model = self.models.get(model_id)
        if model is None:
            return []
        model.summaries.pop(client_id, None)
        model.compared_at.pop(client_id, None)
        if model.lineage is not None:
            model.lineage.remove(client_id)
        campaign_id = model.member_of.pop(client_id, None)
        if campaign_id is None:
            return []
        return self._split(model, model.campaigns[campaign_id], ts)

    def dismiss(self, model_id: str, campaign_id: str, ts: float) -> list[AlertEvent]:
        """An analyst marked the campaign a false positive: it ends, its members are free,
        and the same first link never opens it again."""
        model = self.models.get(model_id)
        campaign = None if model is None else model.campaigns.get(campaign_id)
        if model is None or campaign is None:
            return []
        model.dismissed.add(campaign_id)
        return self._end(model, campaign, ts, "marked a false positive by an analyst")

    # ------------------------------------------------------------------ linking
    def _model(self, summary: ClientSummary) -> ModelCampaigns | None:
        model = self.models.get(summary.model_id)
        if model is not None and model.profile.version == summary.profile:
            return model
        return self.fresh_model(summary.model_id, summary.profile)

    def fresh_model(self, model_id: str, version: str) -> ModelCampaigns | None:
        """A new, empty state for ``model_id`` at profile ``version`` (replacing any it had);
        None if the profile store does not hold that version."""
        profile = self.profiles.get(model_id)
        if profile is None or profile.version != version:
            return None
        null = reference_null(profile)
        lineage = None if null is None else LineageIndex(profile, null)
        nulls = EVIDENCE_TESTS.nulls(profile.calibration, self.detection.tolerances)
        model = self.models[model_id] = ModelCampaigns(profile, lineage, nulls, profile.expected_cells())
        return model

    @staticmethod
    def _compare(model: ModelCampaigns, summary: ClientSummary) -> bool:
        """Compare a client's sample at each doubling and, while it has sent fewer than
        ``SMALL_ACCOUNT`` queries, when they grew by a quarter since the last comparison (a
        small account doubles rarely, and its sample is most of what it sent)."""
        last = model.compared_at.get(summary.client_id)
        if summary.doubling or last is None:
            return True
        return summary.queries < SMALL_ACCOUNT and 4 * summary.queries >= 5 * last

    def link_level(self, model: ModelCampaigns) -> float:
        """Evidence (nats) a pair needs: Bonferroni over every pair of the model's clients."""
        n = max(len(model.lineage or ()), 2)
        return math.log(n * (n - 1) / 2 / self.detection.false_alarm_rate)

    def _links(self, model: ModelCampaigns, client: str, found: Found) -> list[Link]:
        lineage = model.lineage
        assert lineage is not None
        level = self.link_level(model)
        links = []
        for other, hits in sorted(found.relations.items()):
            trials = lineage.trials(client, other)
            e = evidence(hits, trials, lineage.null)
            if e >= level:
                links.append(self._link(model, other, client, "lineage", e, hits, trials))
        if links or client in model.member_of:
            return links
        # No single strong link: the client against each campaign's members together.
        campaigns = max(len(model.campaigns), 1)
        level = math.log(max(len(lineage), 2) * campaigns / self.detection.false_alarm_rate)
        for campaign in model.campaigns.values():
            hits = found.with_clients(campaign.members)
            trials = lineage.trials_with(client, campaign.members)
            e = evidence(hits, trials, lineage.null)
            if e >= level:
                anchor = max(campaign.members, key=lambda m: found.relations.get(m, 0))
                links.append(self._link(model, anchor, client, "lineage with the campaign", e, hits, trials))
        return links

    def _link(
        self, model: ModelCampaigns, a: str, b: str, signal: str, e: float, hits: int, trials: int
    ) -> Link:
        sa, sb = model.summaries.get(a), model.summaries.get(b)
        shared = tuple(sa.keys.shared_with(sb.keys)) if sa is not None and sb is not None else ()
        return Link(a, b, signal, e, hits, trials, shared)

    def _add_link(self, model: ModelCampaigns, link: Link, ts: float, events: list[AlertEvent]) -> set[str]:
        ca, cb = model.member_of.get(link.a), model.member_of.get(link.b)
        if ca is not None and ca == cb:
            links = model.campaigns[ca].links
            pair = {link.a, link.b}
            links[:] = [x for x in links if {x.a, x.b} != pair or x.evidence > link.evidence]
            if not any({x.a, x.b} == pair for x in links):
                links.append(link)
            return {ca}
        if ca is None and cb is None:
            campaign_id = campaign_id_for(model.profile.model_id, *sorted((link.a, link.b)))
            if campaign_id in model.dismissed:
                return set()
            campaign = Campaign(campaign_id, model.profile.model_id, [link.a, link.b], ts, [link])
            model.campaigns[campaign_id] = campaign
            model.member_of[link.a] = model.member_of[link.b] = campaign_id
            return {campaign_id}
        if ca is not None and cb is not None:
            older, younger = sorted((model.campaigns[ca], model.campaigns[cb]), key=_age)
            events += self._end(model, younger, ts, f"merged into campaign {older.campaign_id}")
            for member in younger.members:
                self._join(model, older, member)
            older.links += [*younger.links, link]
            return {older.campaign_id}
        campaign = model.campaigns[ca if ca is not None else cb]  # type: ignore[index]
        newcomer = link.b if ca is not None else link.a
        if self._join(model, campaign, newcomer):
            campaign.links.append(link)
        return {campaign.campaign_id}

    def _join(self, model: ModelCampaigns, campaign: Campaign, client: str) -> bool:
        if len(campaign.members) >= self.settings.max_members:
            campaign.capped += 1
            return False
        campaign.members.append(client)
        model.member_of[client] = campaign.campaign_id
        return True

    def _split(self, model: ModelCampaigns, campaign: Campaign, ts: float) -> list[AlertEvent]:
        members = [m for m in campaign.members if model.member_of.get(m) == campaign.campaign_id]
        links = [link for link in campaign.links if link.a in members and link.b in members]
        parts = _components(members, links)
        events: list[AlertEvent] = []
        if not parts or len(parts[0]) < 2:
            return self._end(model, campaign, ts, "fewer than two linked accounts remain")
        campaign.members = [m for m in members if m in parts[0]]
        campaign.links = [link for link in links if link.a in parts[0]]
        for part in parts[1:]:
            for m in part:
                model.member_of.pop(m, None)
            if len(part) < 2:
                continue
            own = [link for link in links if link.a in part]
            first = own[0]
            new_id = campaign_id_for(model.profile.model_id, *sorted((first.a, first.b)))
            split = Campaign(new_id, campaign.model_id, [m for m in members if m in part], ts, own)
            model.campaigns[new_id] = split
            for m in split.members:
                model.member_of[m] = new_id
            events += self._assess(model, split, ts)
        return events + self._assess(model, campaign, ts)

    # ------------------------------------------------------------------ risk and alerts
    def _assess(self, model: ModelCampaigns, campaign: Campaign, ts: float) -> list[AlertEvent]:
        lineage = model.lineage
        if lineage is None:
            return []
        union = union_evidence(
            campaign.members,
            model.summaries,
            lineage,
            model.nulls,
            model.profile,
            self.allowance,
            model.expected_cells,
        )
        risk = fuse(union.total, self.link_level(model), self.detection.alert_risk)
        campaign.risk = risk
        campaign.peak_risk = max(campaign.peak_risk, risk)
        links = [link.reason() for link in campaign.links[:3]]
        more = len(campaign.links) - len(links)
        campaign.reasons = (
            *union.reasons,
            *links,
            *([f"… and {more} more links"] if more > 0 else []),
            *(
                [f"{campaign.capped} more linked accounts left out (cap {self.settings.max_members})"]
                if campaign.capped
                else []
            ),
        )
        campaign.features = union.features
        campaign.extraction = union.extraction
        queries = int(union.features["queries"])
        seen = Observation(
            campaign.campaign_id,
            campaign.model_id,
            ts,
            queries,
            risk,
            risk,
            campaign.reasons,
            union.features,
            union.extraction,
        )
        sent = None if campaign.alert is None else campaign.alert.alert.features
        regrouped = sent is not None and sent.get("accounts") != union.features.get("accounts")
        sources = self._sources(model, campaign)
        current, event = self.lifecycle.step(campaign.alert, seen, 1, sources, changed=regrouped)
        if current is not None:
            current.alert = replace(current.alert, kind="campaign")
        campaign.alert = current
        if event is None:
            return []
        if campaign.first_alert_ts is None:
            campaign.first_alert_ts = event.ts
        return [replace(event, alert=replace(event.alert, kind="campaign"))]

    def _sources(self, model: ModelCampaigns, campaign: Campaign) -> Sources:
        """The members' networks and user agents as the campaign alert's sources, kept as an
        account alert keeps its own (``alerts.max_sources``, the most recent distinct last),
        members taken in the order they were found: the same members give the same list. They
        are the summaries' grouping keys, so hashed when ``campaigns.key_salt`` is set."""
        sources = Sources(self.lifecycle.settings.max_sources)
        for member in campaign.members:
            held = model.summaries.get(member)
            if held is None:
                continue
            keys = held.keys
            for network in keys.networks:
                sources.see(network, None)
            for agent in keys.user_agents:
                sources.see(None, agent)
        return sources

    def _end(self, model: ModelCampaigns, campaign: Campaign, ts: float, why: str) -> list[AlertEvent]:
        model.campaigns.pop(campaign.campaign_id, None)
        for m in campaign.members:
            if model.member_of.get(m) == campaign.campaign_id:
                model.member_of.pop(m)
        current = campaign.alert
        if current is None:
            return []
        sources = self._sources(model, campaign)
        closed = replace(  # a stored open alert leaves out the estimate and the sources
            current.alert,
            closed_ts=ts,
            reasons=(f"campaign ended: {why}", *current.alert.reasons),
            extraction=campaign.extraction,
            source_ips=tuple(sources.ips) or current.alert.source_ips,
            user_agents=tuple(sources.user_agents) or current.alert.user_agents,
        )
        return [AlertEvent(ALERT_CLOSED, current.sequence + 1, ts, closed, f"campaign ended: {why}")]


def _age(campaign: Campaign) -> tuple[float, str]:
    return campaign.opened_ts, campaign.campaign_id


def _components(members: list[str], links: list[Link]) -> list[set[str]]:
    """Connected parts of the link graph, the part of the first link first, then by size."""
    parent = {m: m for m in members}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for link in links:
        parent[root(link.a)] = root(link.b)
    parts: dict[str, set[str]] = {}
    for m in members:
        parts.setdefault(root(m), set()).add(m)
    first = root(links[0].a) if links else None
    return sorted(parts.values(), key=lambda p: (first is None or first not in {root(x) for x in p}, -len(p)))
