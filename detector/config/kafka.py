"""Settings section: kafka: the inference-log topic, the consumer group and how to reach the brokers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from querywatch.detector.config.base import Section


class KafkaSettings(Section):
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
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Longest a broker may hold a fetch for more data. Kafka's own default, 500, left "
        "consumers waiting on a broker that holds a fetch while some of its partitions have nothing new.",
    )
    checkpoint_every_events: int = Field(
        5000, ge=1, description="Checkpoint a partition after this many events ..."
    )
    checkpoint_every_seconds: float = Field(
        5.0, gt=0, description="... or this many seconds, whichever first."
    )
    checkpoint_when_idle: bool = Field(
        True,
        description="Also checkpoint every partition with progress when a poll finds nothing new: "
        "a consumer that caught up stores its last events at once, not at the next periodic checkpoint.",
    )
    partitions: int = Field(6, ge=1, description="Partitions of topics querywatch creates itself.")
    start_from: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Where a partition querywatch has never checkpointed starts: `earliest` (all "
        "retained history) or `latest` (only events that arrive from then on).",
    )
