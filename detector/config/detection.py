"""Settings section: how the engine builds profiles, scores clients and raises alerts."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from querywatch.detector.config.base import Section
from querywatch.models.registry import EVIDENCE_TESTS

#: How many times ``warmup_events`` a warm-up sample holds, at most, while it holds events of
#: fewer than 1 / WARMUP_WAIT of the clients it is sized for (``detector.engine.reference``).
WARMUP_WAIT = 4
_WARMUP_EVENTS, _WARMUP_PER_CLIENT = 20000, 40


class DetectionSettings(Section):
    """How the engine builds profiles, scores clients and raises alerts."""

    profile_dir: str | None = Field(
        None,
        description="Directory of trusted reference profiles (one per model, `querywatch profile --out`). "
        "Consumers store each in the database when they first need it and never write the directory; "
        "`replay --profile` keeps its revisions in memory.",
    )
    warmup_events: int = Field(
        _WARMUP_EVENTS,
        ge=100,
        description="Events of a model collected before an automatic profile is built; more, up to "
        f"{WARMUP_WAIT} times as many, while they come from fewer than 1/{WARMUP_WAIT} of the clients "
        f"they are sized for (`warmup_events / warmup_per_client / {WARMUP_WAIT}`: "
        f"{_WARMUP_EVENTS // _WARMUP_PER_CLIENT // WARMUP_WAIT} by default), so that a few heavy "
        "clients do not make the profile.",
    )
    warmup_per_client: int = Field(
        _WARMUP_PER_CLIENT,
        ge=1,
        description="At most this many warm-up events of one client enter the profile.",
    )
    refresh_every: int = Field(
        20000,
        ge=0,
        description="Events of a model between two drift checks of its profile (a drifted profile is "
        "refreshed, within bounds, as a new version); 0: never.",
    )
    refresh_sample: int = Field(
        5000, ge=100, description="At most this many recent events of quiet clients feed a drift check."
    )
    refresh_trusted: bool = Field(
        False, description="Refresh profiles from a trusted reference file too (else only warm-up profiles)."
    )
    codebook_size: int = Field(64, ge=2, description="Input-space cells (k-means centroids) of a profile.")
    pca_components: int | None = Field(
        16, ge=1, description="PCA dimensions before the codebook; unset to skip PCA."
    )
    alert_risk: float = Field(0.8, gt=0, le=1, description="Risk at which an alert opens.")
    clear_risk: float = Field(
        0.5,
        ge=0,
        lt=1,
        validate_default=True,
        description="Risk below which an open alert closes (hysteresis).",
    )
    min_queries: int = Field(
        30, ge=1, description="No alert before a client has sent this many valid queries."
    )
    false_alarm_rate: float = Field(
        1e-4,
        gt=0,
        lt=0.5,
        description="alpha of the evidence tests: alerts need log e-value log(tests / alpha).",
    )
    tolerances: dict[str, float] = Field(
        default_factory=dict,
        description="Null rate (tolerance) of evidence tests, by name, as JSON; a test left out "
        "uses its default: " + "; ".join(f"`{t.name}`: {t.meaning}" for t in EVIDENCE_TESTS) + ".",
    )
    idle_evict_seconds: float = Field(
        7 * 86400,
        gt=0,
        description="Client state idle this long (event time) is evicted (when stream.evict_idle).",
    )
    dedup_capacity: int = Field(
        1_000_000,
        ge=1000,
        description="Request ids a replay remembers when stream.dedup_scope is `stream`.",
    )
    max_event_bytes: int = Field(1_000_000, ge=1024, description="Larger messages are rejected as oversized.")
    seed: int = Field(0, description="Seed of every random choice (profiles, population model).")

    @field_validator("clear_risk")
    @classmethod
    def _clears_below_alerting(cls, clear: float, info: ValidationInfo) -> float:
        alert = info.data.get("alert_risk")
        if alert is not None and clear >= alert:
            raise ValueError(
                f"{clear:g} is not below detection.alert_risk ({alert:g}): an alert would close as it opens"
            )
        return clear

    @field_validator("tolerances")
    @classmethod
    def _known_tests(cls, value: dict[str, float]) -> dict[str, float]:
        """An unknown test or a tolerance its test refuses is an error here, not at the first client."""
        return EVIDENCE_TESTS.check_tolerances(value)
