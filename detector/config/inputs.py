"""Settings section: what the consumer and replay accept from producers they do not control."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from querywatch.detector.config.base import Section


class InputSettings(Section):
    """Limits on hostile or broken events, and how long their dead letters are kept."""

    max_input_dim: int = Field(
        4096,
        ge=2,
        description="Longest `input` a model may have: longer inputs are projected or rejected "
        "(inputs.oversized_inputs), so profile fits and per-event work stay bounded.",
    )
    oversized_inputs: Literal["project", "reject"] = Field(
        "project",
        description="`project`: fold a longer input onto max_input_dim numbers by a fixed random "
        "projection; `reject`: dead-letter it as too_many_inputs.",
    )
    future_margin_seconds: float = Field(
        86400,
        gt=0,
        description="An event this far past its partition's watermark (latest event time) is a "
        "future_timestamp, unless three clients are past it (the stream moved on).",
    )
    future_events: Literal["reject", "clamp"] = Field(
        "reject",
        description="`reject`: dead-letter an event too far ahead; `clamp`: score it at the clock plus "
        "the margin.",
    )
    scores: Literal["probabilities", "logits"] = Field(
        "probabilities",
        description="What `prediction.scores` hold: `probabilities` (none negative, summing to one; "
        "others are refused as bad_scores) or `logits` (raw class scores, read through a softmax).",
    )
    dead_letter_retention_days: float = Field(
        30, gt=0, description="`querywatch dead-letters purge` deletes dead letters older than this."
    )
