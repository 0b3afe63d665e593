"""Notices (monitor digests, silence announcements) delivered through the webhook outbox, and
pending statuses of clients not seen yet.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

* ``notices``: a message that is not an alert event, made once per ``key``.
* ``webhook_deliveries`` carry an alert event or a notice (exactly one): ``alert_id`` and
  ``event_id`` become nullable, ``notice_id`` is added.
* ``pending_statuses``: an analyst's status for a client not seen yet. The ``clients`` rows
  that used to hold it under an empty model id move there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(600), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=True),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("type IN ('monitor.digest', 'silence.created')", name=op.f("ck_notices_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_notices_key")),
    )
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("alert_id", existing_type=sa.String(64), nullable=True)
        batch.alter_column("event_id", existing_type=ID, nullable=True)
        batch.add_column(sa.Column("notice_id", ID, nullable=True))
        batch.create_foreign_key(
            op.f("fk_webhook_deliveries_notice_id_notices"),
            "notices",
            ["notice_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            "uq_webhook_deliveries_notice_id_endpoint_id", ["notice_id", "endpoint_id"]
        )
        batch.create_check_constraint("event_or_notice", "(event_id IS NULL) <> (notice_id IS NULL)")
    op.create_table(
        "pending_statuses",
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_changed_by", sa.String(256), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('normal', 'trusted', 'blocked')", name=op.f("ck_pending_statuses_status")
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_pending_statuses")),
    )
    op.execute(
        "INSERT INTO pending_statuses (client_id, status, status_changed_by, changed_at) "
        "SELECT client_id, status, COALESCE(status_changed_by, 'unknown'), updated_at "
        "FROM clients WHERE model_id = ''"
    )
    op.execute("DELETE FROM clients WHERE model_id = ''")


def downgrade() -> None:
    op.execute(
        "INSERT INTO clients (client_id, model_id, risk, reasons, features, queries, first_seen, "
        "last_seen, status, status_changed_by, updated_at) "
        "SELECT client_id, '', 0, '[]', '{}', 0, changed_at, changed_at, status, status_changed_by, "
        "changed_at FROM pending_statuses"
    )
    op.drop_table("pending_statuses")
    op.execute("DELETE FROM webhook_deliveries WHERE notice_id IS NOT NULL")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint(op.f("ck_webhook_deliveries_event_or_notice"), type_="check")
        batch.drop_constraint("uq_webhook_deliveries_notice_id_endpoint_id", type_="unique")
        batch.drop_constraint(op.f("fk_webhook_deliveries_notice_id_notices"), type_="foreignkey")
        batch.drop_column("notice_id")
        batch.alter_column("event_id", existing_type=ID, nullable=False)
        batch.alter_column("alert_id", existing_type=sa.String(64), nullable=False)
    op.drop_table("notices")
