"""Settings section: the life of an alert (when it updates and closes) and where it is sent."""

from __future__ import annotations

from pydantic import Field

from querywatch.detector.config.base import Section


class AlertSettings(Section):
    """The life of an alert: updates, closing against flapping, bounded context."""

    update_risk_step: float = Field(
        0.05,
        gt=0,
        le=1,
        description="An open alert is updated when its risk moved this much since the last event ...",
    )
    update_every_seconds: float = Field(
        60.0,
        ge=0,
        description="... or its severity changed, at most once per this many seconds (event time).",
    )
    close_after_seconds: float = Field(
        43200.0,
        ge=0,
        description="An alert closes only after risk stayed below `clear_risk` this long (event time) ...",
    )
    close_after_queries: int = Field(
        500, ge=1, description="... and for this many queries (minimum dwell: no flapping)."
    )
    max_sources: int = Field(
        8,
        ge=0,
        le=100,
        description="Source IPs and user agents an alert keeps (the most recent distinct ones).",
    )
