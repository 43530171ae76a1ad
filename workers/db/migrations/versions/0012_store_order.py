"""articles.store_xid/store_seq: the store order the changes feed (`GET /v1/changes`, `newsflow export`)
pages through: on PostgreSQL the writing transaction's id (xid8) and a sequence number, so a reader serves
only rows every in-flight writer is above (a lower number committing after a higher one is never skipped);
on SQLite (one writer) the sequence number alone.

Revision ID: 0012
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE SEQUENCE IF NOT EXISTS articles_store_seq AS BIGINT")
    op.add_column("articles", sa.Column("store_xid", sa.BigInteger(), nullable=True))
    op.add_column("articles", sa.Column("store_seq", sa.BigInteger(), nullable=True))
    # Articles stored before this revision: committed long ago (xid 0), in the order they were stored.
    op.execute(
        "UPDATE articles SET store_xid = 0, store_seq = ranked.n FROM "
        "(SELECT id, ROW_NUMBER() OVER (ORDER BY stored_at, id) AS n FROM articles) AS ranked "
        "WHERE articles.id = ranked.id"
    )
    if postgres:
        op.execute(
            "SELECT setval('articles_store_seq', COALESCE((SELECT MAX(store_seq) FROM articles), 0) + 1, false)"
        )
    op.create_index("ix_articles_store_order", "articles", ["store_xid", "store_seq"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_articles_store_order", table_name="articles")
    op.drop_column("articles", "store_seq")
    op.drop_column("articles", "store_xid")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS articles_store_seq")
