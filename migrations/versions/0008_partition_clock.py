"""A partition's event-time clock (its watermark and its recent clients' latest times),
stored with its offset: a consumer that takes the partition over (after a restart or a
rebalance) judges event times as its predecessor would, instead of starting again from the
median of its first batch.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partition_offsets") as batch:
        batch.add_column(
            sa.Column("clock", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("partition_offsets") as batch:
        batch.drop_column("clock")
