"""Every table querywatch stores, as SQLAlchemy 2 ORM classes.

One ``MetaData`` with a naming convention, so that Alembic names constraints the same way
on SQLite (batch mode rebuilds tables) and PostgreSQL. Times are timezone-aware UTC on
both databases: ``UtcDateTime`` adds the zone SQLite forgets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CLIENT_STATUSES = ("normal", "trusted", "blocked")
ALERT_STATES = ("open", "acknowledged", "resolved")
ALERT_KINDS = ("client", "campaign")
ALERT_EVENT_TYPES = ("alert.opened", "alert.updated", "alert.closed")
POLICY_MODES = ("enforce", "monitor")
ENDPOINT_KINDS = ("standard", "pagerduty", "slack")
DELIVERY_STATES = ("pending", "delivered", "failed", "dead")
#: ``engine.outcomes.NOTICE_TYPES``, spelt out: the schema loads without the engine (a test keeps them equal).
NOTICE_TYPES = ("monitor.digest", "silence.created")
API_ROLES = ("reader", "admin")

#: JSON on SQLite, JSONB on PostgreSQL.
JsonType = JSON().with_variant(JSONB(), "postgresql")
#: Autoincrementing surrogate keys: BIGINT on PostgreSQL, INTEGER (rowid) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: querywatch stores timezone-aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime:
    return datetime.now(UTC)


def extraction_of(features: dict[str, Any] | None) -> float | None:
    """The extraction estimate kept in a feature snapshot (``features.client.snapshot``);
    None where the model has no labelled reference or the snapshot was not taken.

    >>> extraction_of({"extraction": 0.42, "ood_share": 0.1}), extraction_of({})
    (0.42, None)
    """
    value = (features or {}).get("extraction")
    return float(value) if isinstance(value, int | float) else None


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonType, list[Any]: JsonType}


class ClientRow(Base):
    """The latest view of one client (API key / account) on one model: its risk and why.

    ``status`` is the analyst's and holds for the client on every model: it is written to
    all of a client's rows at once, and a client's new row copies it."""

    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint(_in("status", CLIENT_STATUSES), name="status"),
        Index("ix_clients_risk_client_id", "risk", "client_id"),
        Index("ix_clients_model_id_risk", "model_id", "risk"),
        Index("ix_clients_status_risk_client_id", "status", "risk", "client_id"),
    )

    client_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    risk: Mapped[float] = mapped_column(Float, default=0.0)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queries: Mapped[int] = mapped_column(BigInteger, default=0)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="normal", server_default="normal")
    status_changed_by: Mapped[str | None] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def extraction(self) -> float | None:
        """The extraction estimate as of the latest explained update (``features``)."""
        return extraction_of(self.features)


class PendingStatusRow(Base):
    """An analyst's status for a client not seen yet (a leaked key blocked before its first
    query): the client's first row takes it and this row goes. Kept apart from ``clients``,
    whose rows are each one model's view, so no row stands for a model that does not exist."""

    __tablename__ = "pending_statuses"
    __table_args__ = (CheckConstraint(_in("status", CLIENT_STATUSES), name="status"),)

    client_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    status_changed_by: Mapped[str] = mapped_column(String(256))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class RiskPointRow(Base):
    """One downsampled point of a client's risk over time (event time)."""

    __tablename__ = "risk_history"
    __table_args__ = (
        Index("ix_risk_history_client_id_ts", "client_id", "ts"),
        Index("ix_risk_history_client_id_model_id_id", "client_id", "model_id", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(256))
    model_id: Mapped[str] = mapped_column(String(256))
    ts: Mapped[datetime]
    queries: Mapped[int] = mapped_column(BigInteger)
    risk: Mapped[float] = mapped_column(Float)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)

    @property
    def extraction(self) -> float | None:
        """The extraction estimate at this point, kept with the point's ``features``."""
        return extraction_of(self.features)


class AlertRow(Base):
    """An extraction alert (schema v1, ``engine.outcomes``) as of its latest event, and
    what people did about it. ``client_id`` is the subject's id (a campaign's for a campaign
    alert). The engine closing an alert also resolves it (``resolved_by`` = ``engine``)."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("state", ALERT_STATES), name="state"),
        CheckConstraint(_in("kind", ALERT_KINDS), name="kind"),
        Index("ix_alerts_opened_at_alert_id", "opened_at", "alert_id"),
        Index("ix_alerts_client_id", "client_id"),
        Index("ix_alerts_state_severity", "state", "severity"),
        Index("ix_alerts_last_event_id", "last_event_id"),
    )

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="client", server_default="client")
    client_id: Mapped[str] = mapped_column(String(256))
    model_id: Mapped[str] = mapped_column(String(256))
    opened_at: Mapped[datetime]
    queries: Mapped[int] = mapped_column(BigInteger)
    risk: Mapped[float] = mapped_column(Float)
    peak_risk: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    severity: Mapped[str] = mapped_column(String(16))
    technique: Mapped[str] = mapped_column(String(32))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    extraction: Mapped[float | None] = mapped_column(Float)
    source_ips: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    user_agents: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    sequence: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_event_id: Mapped[int | None] = mapped_column(BigInteger)
    event_at: Mapped[datetime | None] = mapped_column()  # event time of the latest event
    detected_at: Mapped[datetime | None] = mapped_column()  # when querywatch stored the opening
    decision: Mapped[str | None] = mapped_column(String(16))
    silenced_by: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    acknowledged_by: Mapped[str | None] = mapped_column(String(256))
    acknowledged_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(256))
    resolved_at: Mapped[datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(Text)
    false_positive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    closed_by_engine_at: Mapped[datetime | None]


class AlertEventRow(Base):
    """One event of an alert (opened / updated / closed), in the order stored: ``id`` is the
    cursor of ``GET /v1/alerts?after=`` and each event's body is what every channel sends."""

    __tablename__ = "alert_events"
    __table_args__ = (
        CheckConstraint(_in("type", ALERT_EVENT_TYPES), name="type"),
        UniqueConstraint("alert_id", "sequence", name="uq_alert_events_alert_id_sequence"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(32))
    event_at: Mapped[datetime]  # event time of the query that caused it
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    body: Mapped[dict[str, Any] | None] = mapped_column(JsonType)  # the v1 event; null: migrated


class ModelPolicyRow(Base):
    """A model's runtime policy (``engine.policy.ModelPolicy``); every change adds a version."""

    __tablename__ = "model_policies"
    __table_args__ = (CheckConstraint(_in("mode", POLICY_MODES), name="mode"),)

    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16), default="enforce", server_default="enforce")
    degrade_risk: Mapped[float | None] = mapped_column(Float)
    block_risk: Mapped[float | None] = mapped_column(Float)
    degraded_precision: Mapped[int | None] = mapped_column(Integer)
    page_risk: Mapped[float | None] = mapped_column(Float)
    extraction_block: Mapped[float | None] = mapped_column(Float)
    extraction_degrade: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[str] = mapped_column(String(256))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelPolicyVersionRow(Base):
    """Every version a model's policy had, so a change can be reverted."""

    __tablename__ = "model_policy_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_model_policy_versions_model_id_version"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer)
    policy: Mapped[dict[str, Any]] = mapped_column()
    changed_by: Mapped[str] = mapped_column(String(256))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SilenceRow(Base):
    """No paging for matching alerts until ``expires_at`` (matchers: null = any)."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    client_id: Mapped[str | None] = mapped_column(String(256))
    model_id: Mapped[str | None] = mapped_column(String(256))
    campaign_id: Mapped[str | None] = mapped_column(String(256))
    reason_contains: Mapped[str | None] = mapped_column(String(256))
    comment: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    removed_by: Mapped[str | None] = mapped_column(String(256))
    removed_at: Mapped[datetime | None]


class ModelProfileRow(Base):
    """A saved reference profile of a served model (``ReferenceProfile.to_bytes()``)."""

    __tablename__ = "model_profiles"

    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    blob: Mapped[bytes] = mapped_column(LargeBinary)


class WebhookEndpointRow(Base):
    """Where alerts are pushed (Standard Webhooks signing with ``secret``, and with
    ``previous_secret`` too until ``previous_secret_until`` after a rotation with an overlap)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(256))
    previous_secret: Mapped[str | None] = mapped_column(String(256))
    previous_secret_until: Mapped[datetime | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(16), default="standard", server_default="standard")
    event_types: Mapped[list[Any] | None] = mapped_column(JsonType)  # null: every event type
    routing_key: Mapped[str | None] = mapped_column(String(256))  # PagerDuty's integration key
    min_severity: Mapped[str] = mapped_column(String(16), default="low", server_default="low")
    model_id: Mapped[str | None] = mapped_column(String(256))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NoticeRow(Base):
    """A message for the alert channels that is not an alert event: a monitor-mode model's
    daily digest, a silence's announcement. ``key`` makes each one once (``digest:<model>:<day>``,
    ``silence:<id>``), however many dispatchers or requests race to make it."""

    __tablename__ = "notices"
    __table_args__ = (CheckConstraint(_in("type", NOTICE_TYPES), name="type"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(600), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str | None] = mapped_column(String(256))
    body: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDeliveryRow(Base):
    """One alert event, or one notice, to one endpoint: the outbox row the dispatcher works through."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("state", DELIVERY_STATES), name="state"),
        CheckConstraint("(event_id IS NULL) <> (notice_id IS NULL)", name="event_or_notice"),
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_id_endpoint_id"),
        UniqueConstraint("notice_id", "endpoint_id", name="uq_webhook_deliveries_notice_id_endpoint_id"),
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"))
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    """An API key: only its sha256 is kept; ``prefix`` finds the row without the secret."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_in("role", API_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditEntryRow(Base):
    """One admin action: who did what to which thing."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PartitionOffsetRow(Base):
    """The next Kafka offset to read per partition, committed with the client states."""

    __tablename__ = "partition_offsets"

    group_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    topic: Mapped[str] = mapped_column(String(256), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The partition's event-time clock (``engine.guard.StreamClock.state``); None before
    #: the consumer's first admitted event, and for the aggregator's group.
    clock: Mapped[dict[str, Any] | None] = mapped_column(JsonType, nullable=True)
    #: A digest of the record at ``next_offset - 1`` (``partitions.record_digest``): a new
    #: owner reads that record again and compares, to find a log replaced since.
    last_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ClientStateRow(Base):
    """A checkpoint of one client's engine state (``Detector.export_client``)."""

    __tablename__ = "client_states"
    __table_args__ = (Index("ix_client_states_group_id_topic_partition", "group_id", "topic", "partition"),)

    client_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(256))
    topic: Mapped[str] = mapped_column(String(256))
    partition: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AggregatorStateRow(Base):
    """A checkpoint of the campaign aggregator's stage for one model (``stagestate``); its
    offset is the ``partition_offsets`` row of the aggregator's group."""

    __tablename__ = "aggregator_states"

    group_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetterRow(Base):
    """An input that could not be processed, kept with its original bytes."""

    __tablename__ = "dead_letters"
    __table_args__ = (
        Index("ix_dead_letters_received_at", "received_at"),
        Index("ix_dead_letters_client_id_received_at", "client_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(1024))
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    client_id: Mapped[str | None] = mapped_column(String(256))
    """The client the message names (its ``client_id``, else its Kafka key), if it names one:
    a client whose events are refused is seen, not lost among dead letters."""
    model_id: Mapped[str | None] = mapped_column(String(256))


CAMPAIGN_STATES = ("active", "ended")


class CampaignRow(Base):
    """A campaign (``engine.campaigns``) as of its latest change: accounts linked as one
    theft on one model, why, and what an analyst said about it."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint(_in("state", CAMPAIGN_STATES), name="state"),
        Index("ix_campaigns_opened_at_campaign_id", "opened_at", "campaign_id"),
    )

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    opened_at: Mapped[datetime]  # event time of its first link
    first_alert_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    risk: Mapped[float] = mapped_column(Float)
    peak_risk: Mapped[float] = mapped_column(Float)
    extraction: Mapped[float | None] = mapped_column(Float)
    members: Mapped[list[Any]] = mapped_column(default=list)
    links: Mapped[list[Any]] = mapped_column(default=list)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    capped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    false_positive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    note: Mapped[str | None] = mapped_column(Text)
    marked_by: Mapped[str | None] = mapped_column(String(256))


class CampaignMemberRow(Base):
    """One account of a live campaign (for the decision's campaign floor: looked up by client)."""

    __tablename__ = "campaign_members"
    __table_args__ = (Index("ix_campaign_members_client_id", "client_id"),)

    campaign_id: Mapped[str] = mapped_column(
        ForeignKey("campaigns.campaign_id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(256))
