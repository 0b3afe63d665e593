"""Settings section: delivery of alerts to signed webhooks."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

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

    @field_validator("retry_schedule")
    @classmethod
    def _pauses_are_positive(cls, schedule: tuple[float, ...]) -> tuple[float, ...]:
        if any(pause <= 0 for pause in schedule):
            raise ValueError("every pause must be more than 0 seconds")
        return schedule

    @field_validator("proxy_url")
    @classmethod
    def _proxy_is_a_url(cls, url: str | None) -> str | None:
        """Checked here: a proxy httpx cannot use failed at the first delivery, as a bare error."""
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise ValueError("an egress proxy is a URL such as http://proxy.internal:3128")
        return url
