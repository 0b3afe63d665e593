"""A digest of the last record a partition's checkpoint covers: a consumer that takes the
partition over reads that record again and compares, so that a log replaced since (a topic
recreated, a broker emptied) is found even when the new log already reaches past the stored
offset, where comparing offsets alone saw nothing and its first events were skipped.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("partition_offsets") as batch:
        batch.add_column(sa.Column("last_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partition_offsets") as batch:
        batch.drop_column("last_digest")
