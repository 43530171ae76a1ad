"""reliability: one open dead letter per (article, stage); the reconciler's marks

Revision ID: 0003
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Duplicate open rows written by the old select-then-insert: keep the newest open one per (article,
    # stage) and close the others, so the unique index can be built.
    op.execute(
        "UPDATE dead_letters SET retried_at = last_failed_at"
        " WHERE retried_at IS NULL AND article_id IS NOT NULL AND id NOT IN ("
        "  SELECT max(id) FROM dead_letters WHERE retried_at IS NULL AND article_id IS NOT NULL"
        "  GROUP BY article_id, stage)"
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            "uq_dead_letters_open",
            ["article_id", "stage"],
            unique=True,
            postgresql_where=sa.text("retried_at IS NULL"),
            sqlite_where=sa.text("retried_at IS NULL"),
        )
    op.create_table(
        "reconcile_marks",
        sa.Column("article_id", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["article_id"], ["raw_articles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("article_id"),
    )
    with op.batch_alter_table("reconcile_marks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reconcile_marks_enqueued_at"), ["enqueued_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reconcile_marks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reconcile_marks_enqueued_at"))
    op.drop_table("reconcile_marks")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("uq_dead_letters_open")
