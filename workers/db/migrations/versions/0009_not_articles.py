"""not_articles: pages the clean stage judged not to be articles (listing, product, forum, ...), their
terminal record

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "not_articles",
        sa.Column(
            "article_id",
            sa.String(32),
            sa.ForeignKey("raw_articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("model", sa.String(80), nullable=True),
        sa.Column("clean_version", sa.String(80), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_not_articles_source", "not_articles", ["source"])
    op.create_index("ix_not_articles_kind", "not_articles", ["kind"])


def downgrade() -> None:
    op.drop_index("ix_not_articles_kind", table_name="not_articles")
    op.drop_index("ix_not_articles_source", table_name="not_articles")
    op.drop_table("not_articles")
