"""Purge by age: delete the articles received before a date, with every row that belongs to them.

Per article: the raw page, its stage results, journal rows and reconciler mark; the stored article, its
entities, mentions and duplicate link; its rows in the dedup index (keys, signature, bands, learned lines)
and the clean stage's learned source lines; its closed dead letters and their notes. An article with an
open dead letter is kept: an operator still has to decide about it.

Work goes in chunks of article ids, one transaction each, so a purge can stop at any point and the same
call continues (what was deleted no longer matches). Purging ends near-duplicate detection against the
purged articles: a later copy of a purged story is judged unique.

The dedup index's tables are deleted here by article id; their module (`dedup_index`) is not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Delete, Exists, Select, delete, exists, func, select
from sqlalchemy.orm import Session

from workers.db.models import (
    ArticleRow,
    DeadLetterNoteRow,
    DeadLetterRow,
    DedupBandRow,
    DedupKeyRow,
    DedupLineRow,
    DedupSignatureRow,
    DuplicateRow,
    EntityRow,
    MentionRow,
    RawArticleRow,
    ReconcileRow,
    SourceLineRow,
    StageJournalRow,
    StageResultRow,
)

TABLES = (
    "dead_letter_notes",
    "dead_letters",
    "stage_journal",
    "reconcile_marks",
    "mentions",
    "entities",
    "duplicates",
    "articles",
    "dedup_bands",
    "dedup_signatures",
    "dedup_keys",
    "dedup_lines",
    "source_lines",
    "stage_results",
    "raw_articles",
)
"""The tables a purge deletes from, in the order it deletes (children before parents)."""


@dataclass
class PurgeReport:
    """What a purge deleted (or, dry, would delete): rows per table, articles, and those kept."""

    articles: int = 0
    kept_open_dead_letter: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    last_id: str = ""

    def add(self, counts: dict[str, int]) -> None:
        """Add one chunk's row counts."""
        for table, n in counts.items():
            self.rows[table] += n


def _open_dead_letter(article_id: Any) -> Exists:
    return exists().where(DeadLetterRow.article_id == article_id, DeadLetterRow.retried_at.is_(None))


def _selection(before: datetime, source: str | None) -> Select[Any]:
    query = select(RawArticleRow.id).where(RawArticleRow.received_at < before)
    if source is not None:
        query = query.where(RawArticleRow.source == source)
    return query


def chunk_ids(
    session: Session, *, before: datetime, source: str | None, after: str = "", limit: int = 500
) -> list[str]:
    """The next `limit` ids (in id order, after `after`) of articles received before `before` (of
    `source`) that have no open dead letter (read only)."""
    query = (
        _selection(before, source)
        .where(RawArticleRow.id > after, ~_open_dead_letter(RawArticleRow.id))
        .order_by(RawArticleRow.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def count_kept(session: Session, *, before: datetime, source: str | None) -> int:
    """Articles the selection matches that are kept because a dead letter of theirs is open (read only)."""
    query = _selection(before, source).where(_open_dead_letter(RawArticleRow.id))
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def _statements(ids: Sequence[str]) -> list[tuple[str, Delete]]:
    """(table, the delete of that table's rows of `ids`) for every table, children first."""
    closed = select(DeadLetterRow.id).where(
        DeadLetterRow.article_id.in_(ids), DeadLetterRow.retried_at.is_not(None)
    )
    seqs = select(DedupSignatureRow.seq).where(DedupSignatureRow.article_id.in_(ids))
    by_article: dict[str, Any] = {
        "stage_journal": StageJournalRow,
        "reconcile_marks": ReconcileRow,
        "mentions": MentionRow,
        "entities": EntityRow,
        "duplicates": DuplicateRow,
        "dedup_signatures": DedupSignatureRow,
        "dedup_keys": DedupKeyRow,
        "dedup_lines": DedupLineRow,
        "source_lines": SourceLineRow,
        "stage_results": StageResultRow,
    }
    statements: list[tuple[str, Delete]] = [
        ("dead_letter_notes", delete(DeadLetterNoteRow).where(DeadLetterNoteRow.dead_letter_id.in_(closed))),
        ("dead_letters", delete(DeadLetterRow).where(DeadLetterRow.id.in_(closed))),
        ("dedup_bands", delete(DedupBandRow).where(DedupBandRow.seq.in_(seqs))),
        ("articles", delete(ArticleRow).where(ArticleRow.id.in_(ids))),
        ("raw_articles", delete(RawArticleRow).where(RawArticleRow.id.in_(ids))),
    ]
    statements += [(table, delete(row).where(row.article_id.in_(ids))) for table, row in by_article.items()]
    return sorted(statements, key=lambda item: TABLES.index(item[0]))


def _count(session: Session, statement: Delete) -> int:
    where = statement.whereclause
    assert where is not None  # every purge statement names its rows
    query: Select[int] = select(func.count()).select_from(statement.table).where(where)
    return int(session.execute(query).scalar_one())


def purge_chunk(session: Session, ids: Sequence[str], *, dry_run: bool = False) -> dict[str, int]:
    """Delete (or, dry, count) every row of the articles `ids`; rows per table. Idempotent: a second call
    finds nothing. The caller commits (one transaction per chunk)."""
    counts: dict[str, int] = {}
    for table, statement in _statements(ids):
        if dry_run:
            counts[table] = _count(session, statement)
        else:
            counts[table] = int(session.execute(statement).rowcount or 0)  # type: ignore[attr-defined]
    return counts


def purge(
    transaction: Callable[[], object],
    *,
    before: datetime,
    source: str | None = None,
    chunk: int = 500,
    dry_run: bool = False,
    on_chunk: Callable[[PurgeReport], None] | None = None,
) -> PurgeReport:
    """Purge every article received before `before` (of `source`), chunk by chunk, one transaction each
    (`transaction()` is a context manager yielding a session). Resumable: run it again after an
    interruption and it continues. `dry_run` counts and deletes nothing."""
    report = PurgeReport()
    with transaction() as session:  # type: ignore[attr-defined]
        report.kept_open_dead_letter = count_kept(session, before=before, source=source)
    while True:
        with transaction() as session:  # type: ignore[attr-defined]
            ids = chunk_ids(session, before=before, source=source, after=report.last_id, limit=chunk)
            if not ids:
                return report
            report.add(purge_chunk(session, ids, dry_run=dry_run))
        report.articles += len(ids)
        report.last_id = ids[-1]
        if on_chunk is not None:
            on_chunk(report)
