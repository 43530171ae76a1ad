"""raw_articles.published_at: when the producer published the article's first message (NULL: persisted,
never published; a re-run of the producer sends it)

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("raw_articles", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    # Rows from before this revision: assume published (the reconciler finds any that were not).
    op.execute("UPDATE raw_articles SET published_at = received_at")


def downgrade() -> None:
    op.drop_column("raw_articles", "published_at")
