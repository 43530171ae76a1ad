"""dedup evidence: a sample of each indexed article's body shingles for exact verification; learned lines

Revision ID: 0005
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows indexed before this (dedup-1.0) have no evidence: they keep their exact keys, and a
    # `newsflow reprocess --from dedup --stale` gives them evidence again.
    op.add_column("dedup_signatures", sa.Column("evidence", sa.LargeBinary(), nullable=True))
    op.create_table(
        "dedup_lines",
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("article_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("key", "source", "article_id"),
    )


def downgrade() -> None:
    op.drop_table("dedup_lines")
    op.drop_column("dedup_signatures", "evidence")
