"""Alert schema v1 and per-model policy: alert events, (client, model) rows, policies, silences.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

* ``alert_events``: one row per alert.opened / updated / closed, with a per-alert sequence;
  existing alerts get their ``alert.opened`` event (body null: rendered from the alert row).
* ``alerts``: kind, peak risk, extraction, sources, sequence, latest event, detection time,
  decision, silence. Alerts the engine already closed are resolved by ``engine``.
* ``webhook_deliveries`` point at an event (unique per event and endpoint), so updates and
  closes are delivered too; ``webhook_endpoints`` get a kind, event-type filter and routing key.
* ``clients`` are keyed by (client_id, model_id).
* ``model_policies`` (+ versions, for reverting) and ``silences``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
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
        "alert_events",
        _id(),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        _time("event_at"),
        _time("detected_at"),
        sa.Column("body", JSON, nullable=True),
        sa.CheckConstraint(
            "type IN ('alert.opened', 'alert.updated', 'alert.closed')", name=op.f("ck_alert_events_type")
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert_id"],
            name=op.f("fk_alert_events_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
        sa.UniqueConstraint("alert_id", "sequence", name="uq_alert_events_alert_id_sequence"),
    )
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), server_default="client", nullable=False))
        batch.add_column(sa.Column("peak_risk", sa.Float(), server_default="0", nullable=False))
        batch.add_column(sa.Column("extraction", sa.Float(), nullable=True))
        batch.add_column(sa.Column("source_ips", JSON, server_default="[]", nullable=False))
        batch.add_column(sa.Column("user_agents", JSON, server_default="[]", nullable=False))
        batch.add_column(sa.Column("sequence", sa.Integer(), server_default="1", nullable=False))
        batch.add_column(sa.Column("last_event_id", sa.BigInteger(), nullable=True))
        batch.add_column(_time("event_at", nullable=True))
        batch.add_column(_time("detected_at", nullable=True))
        batch.add_column(sa.Column("decision", sa.String(16), nullable=True))
        batch.add_column(sa.Column("silenced_by", sa.BigInteger(), nullable=True))
        batch.create_check_constraint("kind", "kind IN ('client', 'campaign')")
    op.execute("UPDATE alerts SET peak_risk = risk, event_at = opened_at")
    op.execute(
        "UPDATE alerts SET state = 'resolved', resolved_by = 'engine', resolved_at = closed_by_engine_at "
        "WHERE closed_by_engine_at IS NOT NULL AND state <> 'resolved'"
    )
    op.execute(
        "INSERT INTO alert_events (alert_id, sequence, type, event_at, detected_at) "
        "SELECT alert_id, 1, 'alert.opened', opened_at, opened_at FROM alerts"
    )
    op.execute(
        "UPDATE alerts SET last_event_id = "
        "(SELECT e.id FROM alert_events e WHERE e.alert_id = alerts.alert_id AND e.sequence = 1)"
    )
    op.create_index("ix_alerts_last_event_id", "alerts", ["last_event_id"])

    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), server_default="standard", nullable=False))
        batch.add_column(sa.Column("event_types", JSON, nullable=True))
        batch.add_column(sa.Column("routing_key", sa.String(256), nullable=True))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("event_id", ID, nullable=True))
    op.execute(
        "UPDATE webhook_deliveries SET event_id = (SELECT e.id FROM alert_events e "
        "WHERE e.alert_id = webhook_deliveries.alert_id AND e.sequence = 1)"
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("event_id", existing_type=ID, nullable=False)
        batch.drop_constraint("uq_webhook_deliveries_alert_id_endpoint_id", type_="unique")
        batch.create_unique_constraint(
            "uq_webhook_deliveries_event_id_endpoint_id", ["event_id", "endpoint_id"]
        )
        batch.create_foreign_key(
            op.f("fk_webhook_deliveries_event_id_alert_events"),
            "alert_events",
            ["event_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("clients") as batch:
        batch.drop_constraint("pk_clients", type_="primary")
        batch.create_primary_key("pk_clients", ["client_id", "model_id"])
    op.create_index("ix_risk_history_client_id_model_id_id", "risk_history", ["client_id", "model_id", "id"])

    op.create_table(
        "model_policies",
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("mode", sa.String(16), server_default="enforce", nullable=False),
        sa.Column("degrade_risk", sa.Float(), nullable=True),
        sa.Column("block_risk", sa.Float(), nullable=True),
        sa.Column("degraded_precision", sa.Integer(), nullable=True),
        sa.Column("page_risk", sa.Float(), nullable=True),
        sa.Column("extraction_block", sa.Float(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        _time("updated_at"),
        sa.CheckConstraint("mode IN ('enforce', 'monitor')", name=op.f("ck_model_policies_mode")),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_model_policies")),
    )
    op.create_table(
        "model_policy_versions",
        _id(),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("changed_by", sa.String(256), nullable=False),
        _time("changed_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_policy_versions")),
        sa.UniqueConstraint("model_id", "version", name="uq_model_policy_versions_model_id_version"),
    )
    op.create_table(
        "silences",
        _id(),
        sa.Column("client_id", sa.String(256), nullable=True),
        sa.Column("model_id", sa.String(256), nullable=True),
        sa.Column("campaign_id", sa.String(256), nullable=True),
        sa.Column("reason_contains", sa.String(256), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        sa.Column("removed_by", sa.String(256), nullable=True),
        _time("removed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    op.create_index("ix_silences_expires_at", "silences", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_silences_expires_at", table_name="silences")
    op.drop_table("silences")
    op.drop_table("model_policy_versions")
    op.drop_table("model_policies")
    op.drop_index("ix_risk_history_client_id_model_id_id", table_name="risk_history")
    # One row per client again: keep each client's riskiest model.
    op.execute(
        "DELETE FROM clients WHERE EXISTS (SELECT 1 FROM clients c WHERE c.client_id = clients.client_id "
        "AND (c.risk > clients.risk OR (c.risk = clients.risk AND c.model_id < clients.model_id)))"
    )
    with op.batch_alter_table("clients") as batch:
        batch.drop_constraint("pk_clients", type_="primary")
        batch.create_primary_key("pk_clients", ["client_id"])
    # Deliveries of updates and closes did not exist before: keep one per alert and endpoint.
    op.execute(
        "DELETE FROM webhook_deliveries "
        "WHERE event_id NOT IN (SELECT id FROM alert_events WHERE sequence = 1)"
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint(op.f("fk_webhook_deliveries_event_id_alert_events"), type_="foreignkey")
        batch.drop_constraint("uq_webhook_deliveries_event_id_endpoint_id", type_="unique")
        batch.create_unique_constraint(
            "uq_webhook_deliveries_alert_id_endpoint_id", ["alert_id", "endpoint_id"]
        )
        batch.drop_column("event_id")
    with op.batch_alter_table("webhook_endpoints") as batch:
        batch.drop_column("routing_key")
        batch.drop_column("event_types")
        batch.drop_column("kind")
    op.drop_index("ix_alerts_last_event_id", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint(op.f("ck_alerts_kind"), type_="check")
        for column in (
            "silenced_by",
            "decision",
            "detected_at",
            "event_at",
            "last_event_id",
            "sequence",
            "user_agents",
            "source_ips",
            "extraction",
            "peak_risk",
            "kind",
        ):
            batch.drop_column(column)
    op.drop_table("alert_events")
