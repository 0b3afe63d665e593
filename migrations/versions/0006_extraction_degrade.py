"""A model's opt-in extraction degrade level: degrade a client whose extraction estimate
reaches it (``engine.policy``), beside the block level ``extraction_block``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_policies") as batch:
        batch.add_column(sa.Column("extraction_degrade", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_policies") as batch:
        batch.drop_column("extraction_degrade")
