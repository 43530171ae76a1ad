"""untagged reason: why a stored article has no entities (no model for its language, language unclear)

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Articles stored before this were all tagged (by the English model): NULL says so.
    op.add_column("articles", sa.Column("untagged", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("articles", "untagged")
