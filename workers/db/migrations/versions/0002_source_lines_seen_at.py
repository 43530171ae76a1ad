"""source_lines.seen_at: when a sighting was counted, so lines seen once can be pruned

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("source_lines", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "seen_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("(CURRENT_TIMESTAMP)"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("source_lines", schema=None) as batch_op:
        batch_op.drop_column("seen_at")
