"""Initial schema: clients, risk history, alerts, profiles, webhooks, API keys, audit, checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Column types are spelled out here (not imported from querywatch.detector.adapters.db.tables) so that this
migration keeps meaning the same thing when the models change later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("queries", sa.BigInteger(), nullable=False),
        _time("first_seen"),
        _time("last_seen"),
        sa.Column("status", sa.String(16), server_default="normal", nullable=False),
        sa.Column("status_changed_by", sa.String(256), nullable=True),
        _time("updated_at"),
        sa.CheckConstraint("status IN ('normal', 'trusted', 'blocked')", name=op.f("ck_clients_status")),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_clients")),
    )
    op.create_index("ix_clients_risk_client_id", "clients", ["risk", "client_id"])
    op.create_index("ix_clients_model_id_risk", "clients", ["model_id", "risk"])
    op.create_index("ix_clients_status_risk_client_id", "clients", ["status", "risk", "client_id"])

    op.create_table(
        "risk_history",
        _id(),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        _time("ts"),
        sa.Column("queries", sa.BigInteger(), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_history")),
    )
    op.create_index("ix_risk_history_client_id_ts", "risk_history", ["client_id", "ts"])

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        _time("opened_at"),
        sa.Column("queries", sa.BigInteger(), nullable=False),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("technique", sa.String(32), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("state", sa.String(16), server_default="open", nullable=False),
        sa.Column("acknowledged_by", sa.String(256), nullable=True),
        _time("acknowledged_at", nullable=True),
        sa.Column("resolved_by", sa.String(256), nullable=True),
        _time("resolved_at", nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("false_positive", sa.Boolean(), server_default=sa.false(), nullable=False),
        _time("closed_by_engine_at", nullable=True),
        sa.CheckConstraint("state IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_state")),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_opened_at_alert_id", "alerts", ["opened_at", "alert_id"])
    op.create_index("ix_alerts_client_id", "alerts", ["client_id"])
    op.create_index("ix_alerts_state_severity", "alerts", ["state", "severity"])

    op.create_table(
        "model_profiles",
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        _time("created_at"),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_model_profiles")),
    )

    op.create_table(
        "webhook_endpoints",
        _id(),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(256), nullable=False),
        sa.Column("min_severity", sa.String(16), server_default="low", nullable=False),
        sa.Column("model_id", sa.String(256), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        _id(),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("endpoint_id", ID, nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        _time("next_attempt_at", nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _time("delivered_at", nullable=True),
        _time("created_at"),
        sa.CheckConstraint(
            "state IN ('pending', 'delivered', 'failed', 'dead')", name=op.f("ck_webhook_deliveries_state")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert_id"],
            name=op.f("fk_webhook_deliveries_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("alert_id", "endpoint_id", name="uq_webhook_deliveries_alert_id_endpoint_id"),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_webhook_deliveries_webhook_id")),
    )
    op.create_index(
        "ix_webhook_deliveries_state_next_attempt_at", "webhook_deliveries", ["state", "next_attempt_at"]
    )
    op.create_index("ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"])

    op.create_table(
        "api_keys",
        _id(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
        _time("last_used_at", nullable=True),
        sa.CheckConstraint("role IN ('reader', 'admin')", name=op.f("ck_api_keys_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )

    op.create_table(
        "audit_log",
        _id(),
        _time("at"),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])

    op.create_table(
        "partition_offsets",
        sa.Column("group_id", sa.String(256), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("group_id", "topic", "partition", name=op.f("pk_partition_offsets")),
    )
    op.create_table(
        "client_states",
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("group_id", sa.String(256), nullable=False),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_client_states")),
    )
    op.create_index(
        "ix_client_states_group_id_topic_partition", "client_states", ["group_id", "topic", "partition"]
    )

    op.create_table(
        "dead_letters",
        _id(),
        _time("received_at"),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])


def downgrade() -> None:
    for table in (
        "dead_letters",
        "client_states",
        "partition_offsets",
        "audit_log",
        "api_keys",
        "webhook_deliveries",
        "webhook_endpoints",
        "model_profiles",
        "alerts",
        "risk_history",
        "clients",
    ):
        op.drop_table(table)
