"""Settings section: delivery of alerts to signed webhooks."""

from __future__ import annotations

from pydantic import Field

from querywatch.detector.config.base import Section


class WebhookSettings(Section):
    """Delivery of alerts to signed webhooks."""

    retry_schedule: tuple[float, ...] = Field(
        (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0, 36000.0, 36000.0, 36000.0, 36000.0),
        description="Seconds before each retry (default: 12 attempts over about 2.8 days).",
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Deadline of one delivery attempt, DNS included.")
    allow_hosts: tuple[str, ...] = Field(
        (), description="Hosts or CIDRs allowed although private (development)."
    )
    poll_seconds: float = Field(1.0, gt=0, description="Pause of an idle dispatcher between outbox polls.")
    batch_size: int = Field(50, ge=1, description="Deliveries one dispatcher has in flight at most.")
    per_endpoint: int = Field(
        10, ge=1, description="Deliveries one dispatcher has in flight to one endpoint at most."
    )
    jitter: float = Field(0.1, ge=0, lt=1, description="Retry pauses are spread by this fraction, both ways.")
    lease_margin_seconds: float = Field(
        30.0, ge=0, description="A claimed delivery is due again after timeout + this if its dispatcher died."
    )
    proxy_url: str | None = Field(
        None, description="Egress proxy every delivery goes through (http://host:port); unset: direct."
    )
    max_retry_after_seconds: float = Field(86400.0, gt=0, description="Cap on a receiver's Retry-After.")
