"""The client and model a dead letter names: refused events are counted against the client
that sent them (``GET /v1/clients/{id}/rejected``), where before they named only their
topic, partition and offset, and a client whose every event was refused stayed unseen.
Letters stored before this revision keep no client.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("client_id", sa.String(256), nullable=True))
        batch.add_column(sa.Column("model_id", sa.String(256), nullable=True))
        batch.create_index("ix_dead_letters_client_id_received_at", ["client_id", "received_at"])


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ix_dead_letters_client_id_received_at")
        batch.drop_column("model_id")
        batch.drop_column("client_id")
