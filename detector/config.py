"""One frozen Settings object, read from ``QUERYWATCH_*`` environment variables.

Nested sections use a double underscore: ``QUERYWATCH_KAFKA__BOOTSTRAP_SERVERS``,
``QUERYWATCH_DATABASE__URL``. Build it once in ``main()`` (or the app's lifespan) and pass
it down; nothing reads the environment at import time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DetectionSettings(_Section):
    """How the engine builds profiles, scores clients and raises alerts."""

    profile_dir: str | None = Field(
        None, description="Directory of saved reference profiles (one per model)."
    )
    warmup_events: int = Field(
        20000, ge=100, description="Events of a model collected before an automatic profile is built."
    )
    warmup_per_client: int = Field(
        40, ge=1, description="At most this many warm-up events of one client enter the profile."
    )
    codebook_size: int = Field(64, ge=2, description="Input-space cells (k-means centroids) of a profile.")
    pca_components: int | None = Field(
        16, ge=1, description="PCA dimensions before the codebook; unset to skip PCA."
    )
    alert_risk: float = Field(0.8, gt=0, le=1, description="Risk at which an alert opens.")
    clear_risk: float = Field(
        0.5, ge=0, lt=1, description="Risk below which an open alert closes (hysteresis)."
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
    ood_tolerance: float = Field(
        0.2, gt=0, lt=1, description="Share of out-of-profile queries a benign client may send (null rate)."
    )
    step_tolerance: float = Field(
        0.05, gt=0, lt=1, description="Share of fixed-step near-duplicates a benign client may send."
    )
    boundary_tolerance: float = Field(
        0.25, gt=0, lt=1, description="Share of answers on the decision boundary a benign client may get."
    )
    idle_evict_seconds: float = Field(
        7 * 86400, gt=0, description="Client state idle this long (event time) is evicted."
    )
    dedup_capacity: int = Field(
        1_000_000, ge=1000, description="request_ids remembered to drop redeliveries."
    )
    max_event_bytes: int = Field(1_000_000, ge=1024, description="Larger messages are rejected as oversized.")
    seed: int = Field(0, description="Seed of every random choice (profiles, population model).")


class DatabaseSettings(_Section):
    """Where alerts, client risk, checkpoints and the webhook outbox are stored."""

    url: str = Field(
        "sqlite:///querywatch.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production.",
    )
    echo: bool = Field(False, description="Log every SQL statement.")


class KafkaSettings(_Section):
    """The inference-log topic, the consumer group and how to reach the brokers."""

    bootstrap_servers: str | None = Field(
        None, description="Comma-separated brokers; unset in `up` starts an embedded broker."
    )
    topic: str = Field("inference-logs", description="Topic of inference-log events, keyed by client_id.")
    dead_letter_topic: str = Field(
        "querywatch-dead-letters", description="Invalid messages go here with their reason."
    )
    alerts_topic: str = Field("querywatch-alerts", description="Alerts and risk changes, keyed by client_id.")
    group_id: str = Field("querywatch", description="Consumer group of all querywatch consumers.")
    client_id: str = Field("querywatch", description="Kafka client id prefix.")
    security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 ...")
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: str | None = Field(None, description="SASL password (prefer a secret store).")
    ssl_cafile: str | None = Field(None, description="CA bundle that signs the brokers' certificates.")
    ssl_certfile: str | None = Field(None, description="Client certificate for mutual TLS.")
    ssl_keyfile: str | None = Field(None, description="Private key of the client certificate.")
    max_poll_records: int = Field(
        500, ge=1, description="Most messages one poll returns (one scoring batch)."
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="Longest pause between polls before the group evicts the consumer."
    )
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="Heartbeat silence after which the group reassigns partitions."
    )
    checkpoint_every_events: int = Field(
        5000, ge=1, description="Checkpoint a partition after this many events ..."
    )
    checkpoint_every_seconds: float = Field(
        5.0, gt=0, description="... or this many seconds, whichever first."
    )
    partitions: int = Field(6, ge=1, description="Partitions of topics querywatch creates itself.")
    start_from: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a partition querywatch has never checkpointed starts: `earliest` (all "
        "retained history) or `latest` (only events that arrive from then on).",
    )


class ApiSettings(_Section):
    """The HTTP API and the mitigation policy of the decision endpoint."""

    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port the API listens on (0: any free port).")
    public_url: str = Field("http://127.0.0.1:8000", description="Base URL used in links (webhook bodies).")
    degrade_risk: float = Field(0.5, ge=0, le=1, description="Decision 'degrade' at or above this risk.")
    block_risk: float = Field(0.9, ge=0, le=1, description="Decision 'block' at or above this risk.")
    degraded_precision: int = Field(1, ge=0, le=6, description="Decimals of scores a degraded client gets.")
    key_cache_seconds: float = Field(
        5.0, ge=0, description="Seconds an authenticated API key is remembered (revocation delay)."
    )


class WebhookSettings(_Section):
    """Delivery of alerts to signed webhooks."""

    retry_schedule: tuple[float, ...] = Field(
        (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0), description="Seconds before each retry."
    )
    timeout_seconds: float = Field(10.0, gt=0, description="Deadline of one delivery attempt, DNS included.")
    allow_hosts: tuple[str, ...] = Field(
        (), description="Hosts or CIDRs allowed although private (development)."
    )
    poll_seconds: float = Field(1.0, gt=0, description="Pause of an idle dispatcher between outbox polls.")
    batch_size: int = Field(50, ge=1, description="Deliveries one dispatcher claims at a time.")
    jitter: float = Field(0.1, ge=0, lt=1, description="Retry pauses are spread by this fraction, both ways.")
    lease_margin_seconds: float = Field(
        30.0, ge=0, description="A claimed delivery is due again after timeout + this if its dispatcher died."
    )
    max_retry_after_seconds: float = Field(86400.0, gt=0, description="Cap on a receiver's Retry-After.")


class Settings(BaseSettings):
    """Everything querywatch can be told, with its environment variable and default."""

    model_config = SettingsConfigDict(
        env_prefix="QUERYWATCH_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    detection: DetectionSettings = DetectionSettings()
    database: DatabaseSettings = DatabaseSettings()
    kafka: KafkaSettings = KafkaSettings()
    api: ApiSettings = ApiSettings()
    webhooks: WebhookSettings = WebhookSettings()
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`consume` and `dispatch` serve Prometheus metrics at /metrics on this port "
        "(no key needed; the API serves its own). Unset: none.",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address the metrics port of `consume` and `dispatch` binds."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR.")
    log_json: bool = Field(True, description="Structured JSON logs on stderr.")
