"""Settings section: the HTTP API and the mitigation policy of the decision endpoint."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from querywatch.detector.config.base import Section


class ApiSettings(Section):
    """The HTTP API and the mitigation policy of the decision endpoint."""

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port the API listens on (0: any free port).")
    public_url: str = Field("http://127.0.0.1:8000", description="Base URL used in links (webhook bodies).")
    degrade_risk: float = Field(0.5, ge=0, le=1, description="Decision 'degrade' at or above this risk.")
    block_risk: float = Field(
        0.9, ge=0, le=1, validate_default=True, description="Decision 'block' at or above this risk."
    )
    degraded_precision: int = Field(1, ge=0, le=6, description="Decimals of scores a degraded client gets.")

    key_cache_seconds: float = Field(
        5.0, ge=0, description="Seconds an authenticated API key is remembered (revocation delay)."
    )
    decision_cache_seconds: float = Field(
        1.0,
        ge=0,
        description="Seconds the decision endpoints keep what they read (client rows, policies, "
        "silences). A change through this process's API applies at once; other replicas and the "
        "consumer's risk updates are seen within this delay. 0: read on every request.",
    )

    @field_validator("block_risk")
    @classmethod
    def _blocks_at_or_above_degrading(cls, block: float, info: ValidationInfo) -> float:
        degrade = info.data.get("degrade_risk")
        if degrade is not None and block < degrade:
            raise ValueError(f"{block:g} is below api.degrade_risk ({degrade:g}): it would degrade no one")
        return block
