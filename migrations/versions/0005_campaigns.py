"""Campaigns: accounts linked as one theft, and their members (for the decision's floor).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), server_default="active", nullable=False),
        _time("opened_at"),
        _time("first_alert_at", nullable=True),
        _time("updated_at"),
        sa.Column("risk", sa.Float(), nullable=False),
        sa.Column("peak_risk", sa.Float(), nullable=False),
        sa.Column("extraction", sa.Float(), nullable=True),
        sa.Column("members", JSON, nullable=False),
        sa.Column("links", JSON, nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("capped", sa.Integer(), server_default="0", nullable=False),
        sa.Column("false_positive", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("marked_by", sa.String(256), nullable=True),
        sa.CheckConstraint("state IN ('active', 'ended')", name=op.f("ck_campaigns_state")),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaigns")),
    )
    op.create_index("ix_campaigns_opened_at_campaign_id", "campaigns", ["opened_at", "campaign_id"])
    op.create_table(
        "campaign_members",
        sa.Column("campaign_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("model_id", sa.String(256), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name=op.f("fk_campaign_members_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "client_id", name=op.f("pk_campaign_members")),
    )
    op.create_index("ix_campaign_members_client_id", "campaign_members", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_campaign_members_client_id", table_name="campaign_members")
    op.drop_table("campaign_members")
    op.drop_index("ix_campaigns_opened_at_campaign_id", table_name="campaigns")
    op.drop_table("campaigns")
