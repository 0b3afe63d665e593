"""Settings section: the campaign stage (accounts linked as one theft) and its summaries."""

from __future__ import annotations

from pydantic import Field

from querywatch.detector.config.base import Section


class CampaignSettings(Section):
    """Client summaries and the campaign stage that links accounts into campaigns."""

    enabled: bool = Field(
        True, description="Emit client summaries and run the campaign stage (replay, `up`, aggregator)."
    )
    summary_every_seconds: float = Field(
        300.0,
        gt=0,
        description="A client emits a summary at each doubling of its queries and at its first event "
        "of each window of this many seconds (event time) while it is active.",
    )
    max_members: int = Field(
        1000,
        ge=2,
        description="Accounts a campaign holds at most; further linked accounts are counted, not added.",
    )
    key_salt: str | None = Field(
        None,
        description="When set, grouping keys (networks, user agents, organisation) are hashed with "
        "this secret in summaries and reasons, and so in campaign alerts' `source_ips` and `user_agents`.",
    )
    summaries_topic: str | None = Field(
        None,
        description="Topic where consumers publish client summaries for `querywatch aggregate`, keyed "
        "by `model_id NUL client_id`; one partition, compacted (default: the inference-log topic's "
        "name followed by `.summaries`).",
    )
    aggregator_group_id: str = Field(
        "querywatch-aggregator",
        description="Consumer group of `querywatch aggregate`: the active aggregator and its standbys.",
    )

    def summaries_topic_for(self, events_topic: str) -> str:
        """The summaries topic of consumers of ``events_topic``.

        >>> CampaignSettings().summaries_topic_for("inference-logs")
        'inference-logs.summaries'
        """
        return self.summaries_topic or f"{events_topic}.summaries"
