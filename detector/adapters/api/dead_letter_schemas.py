"""Bodies of the dead-letter endpoints: refused events, and the clients that sent them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from querywatch.detector.adapters.api.cursors import Page


class DeadLetterPublic(BaseModel):
    """One refused message, without its bytes (``querywatch dead-letters redrive`` sends
    them back; the dead-letter topic holds them too)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    source: str = Field(description="`topic/partition/offset` of the original message.")
    reason: str = Field(description="The reason code (README, *What happens on a hostile or broken event*).")
    detail: str | None = Field(description="What is wrong, and what to send instead.")
    client_id: str | None = Field(
        description="The client the message names (its `client_id`, else its Kafka key); null if none."
    )
    model_id: str | None


class DeadLetterPage(Page[DeadLetterPublic]):
    """Refused messages, newest first."""


class RefusedClientPublic(BaseModel):
    """A client's refused events among the dead letters kept (`inputs.dead_letter_retention_days`)."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "client_id": "acct-2210",
                    "events": 4200,
                    "reasons": {"wrong_dimension": 4200},
                    "models": ["credit-risk-v1"],
                    "first_at": "2026-11-29T10:15:02Z",
                    "last_at": "2026-11-29T11:02:47Z",
                }
            ]
        },
    )

    client_id: str
    events: int = Field(description="Refused events kept.")
    reasons: dict[str, int] = Field(description="Refused events by reason code.")
    models: list[str] = Field(description="The models they named.")
    first_at: datetime = Field(description="When the first kept one was refused.")
    last_at: datetime
