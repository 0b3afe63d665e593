"""Settings section: how a consumer rides out a database or broker outage and a rewound log."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from querywatch.detector.config.base import Section


class OutageSettings(Section):
    """Retries while a dependency is away, and what to do when a partition's log went backwards."""

    retry_max_seconds: float = Field(
        15, gt=0, description="Longest pause between two retries of a failed checkpoint or load."
    )
    remind_every_seconds: float = Field(
        60, gt=0, description="While an outage lasts, one reminder line this often."
    )
    on_log_rewind: Literal["pause", "restart"] = Field(
        "pause",
        description="A partition whose log ends below its stored offset (topic recreated, broker "
        "emptied): `pause` it and say so every minute; `restart` reads it again from its new start.",
    )
