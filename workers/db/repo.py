"""Persistence functions the pipeline steps call; every write is an upsert or insert-if-absent.

Each function takes an open `Session` (one transaction, from `workers.db.engine.transaction`)
so a step commits its reads and writes together.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Insert, case, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas import RawArticle, StageMessage, StoredArticle, StoredEntity, StoredMention, TaggedArticle
from workers.db.models import (
    ArticleRow,
    DeadLetterRow,
    DedupSignatureRow,
    DuplicateRow,
    EntityRow,
    MentionRow,
    RawArticleRow,
    SourceLineRow,
    StageResultRow,
)
from workers.errors import MissingInput

M = TypeVar("M", bound=BaseModel)


def _insert(session: Session, table: Any) -> Any:
    """A dialect-specific INSERT that supports ON CONFLICT (PostgreSQL and SQLite share the API)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def ensure_raw(session: Session, article_id: str, raw: RawArticle, trace_id: str) -> bool:
    """Store a raw article once under its id; True if it was new. Idempotent."""
    stmt: Insert = _insert(session, RawArticleRow).values(
        id=article_id,
        source=raw.source,
        url=raw.url,
        content_type=raw.content_type,
        payload=raw.model_dump_json(),
        trace_id=trace_id,
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=["id"]).returning(RawArticleRow.id)  # type: ignore[attr-defined]
    # RETURNING, not rowcount: drivers disagree on the rowcount of a conflicting insert.
    return session.execute(stmt).first() is not None


def load_raw(session: Session, article_id: str) -> RawArticle:
    """The raw article with this id; MissingInput if there is none."""
    payload = session.scalar(select(RawArticleRow.payload).where(RawArticleRow.id == article_id))
    if payload is None:
        raise MissingInput(f"no raw article {article_id}")
    return RawArticle.model_validate_json(payload)


def upsert_result(session: Session, article_id: str, stage: str, version: str, output: BaseModel) -> None:
    """Record a stage's output for an article; writing the same output again changes no row."""
    payload = output.model_dump_json()
    stmt = _insert(session, StageResultRow).values(
        article_id=article_id, stage=stage, version=version, output=payload
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["article_id", "stage"],
        set_={"version": stmt.excluded.version, "output": stmt.excluded.output, "updated_at": func.now()},
        where=(StageResultRow.output != stmt.excluded.output)
        | (StageResultRow.version != stmt.excluded.version),
    )
    session.execute(stmt)


def load_result(session: Session, article_id: str, stage: str, model: type[M]) -> M | None:
    """A stage's recorded output for an article, or None if that stage has not run."""
    payload = session.scalar(
        select(StageResultRow.output).where(
            StageResultRow.article_id == article_id, StageResultRow.stage == stage
        )
    )
    return None if payload is None else model.model_validate_json(payload)


def require_result(session: Session, article_id: str, stage: str, model: type[M]) -> M:
    """Like `load_result`, but MissingInput when the earlier stage has not run."""
    found = load_result(session, article_id, stage, model)
    if found is None:
        raise MissingInput(f"no {stage} result for article {article_id}")
    return found


def article_ids_after(
    session: Session, *, stage: str | None, stale_for: str | None, after: str, limit: int
) -> list[str]:
    """Article ids above `after` in id order (keyset pages): every raw article, or, with `stage` and
    `stale_for`, those whose `stage` record was made by a version other than `stale_for`."""
    if stage is None or stale_for is None:
        query = select(RawArticleRow.id).where(RawArticleRow.id > after).order_by(RawArticleRow.id)
    else:
        query = (
            select(StageResultRow.article_id)
            .where(
                StageResultRow.stage == stage,
                StageResultRow.version != stale_for,
                StageResultRow.article_id > after,
            )
            .order_by(StageResultRow.article_id)
        )
    return list(session.scalars(query.limit(limit)))


def learn_lines(session: Session, source: str, article_id: str, keys: Iterable[str]) -> None:
    """Count an article's boilerplate-candidate lines for its source; counting it twice changes nothing."""
    rows = [{"source": source, "line_key": key, "article_id": article_id} for key in sorted(set(keys))]
    if rows:
        stmt = _insert(session, SourceLineRow).values(rows)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["source", "line_key", "article_id"]))


def chrome_keys(session: Session, source: str, keys: Iterable[str], min_articles: int) -> frozenset[str]:
    """Those of `keys` seen in at least `min_articles` distinct articles of `source`."""
    wanted = sorted(set(keys))
    if not wanted:
        return frozenset()
    found = session.scalars(
        select(SourceLineRow.line_key)
        .where(SourceLineRow.source == source, SourceLineRow.line_key.in_(wanted))
        .group_by(SourceLineRow.line_key)
        .having(func.count() >= min_articles)
    )
    return frozenset(found)


def upsert_article(
    session: Session,
    article: StoredArticle,
    tagged: TaggedArticle | None,
    *,
    canonical_url: str | None,
    similarity: float | None,
    reason: str,
) -> None:
    """Write the stored article, its entities, mentions and duplicate link; rewriting yields the same rows."""
    values: dict[str, Any] = {
        "id": article.id,
        "source": article.source,
        "url": article.url,
        "canonical_url": canonical_url,
        "title": article.title,
        "text": article.text,
        "word_count": len(article.text.split()),
        "published_at": article.published_at,
        "language": article.language,
        "dateline": article.dateline,
        "credits": list(article.credits),
        "authors": list(article.authors),
        "status": article.dedup,
        "duplicate_of": article.duplicate_of,
        "cluster_id": article.cluster_id,
        "versions": article.versions,
    }
    stmt = _insert(session, ArticleRow).values(values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}
        )
    )
    session.execute(delete(MentionRow).where(MentionRow.article_id == article.id))
    session.execute(delete(EntityRow).where(EntityRow.article_id == article.id))
    if tagged is not None and tagged.entities:
        session.execute(
            _insert(session, EntityRow).values(
                [
                    {
                        "article_id": article.id,
                        "position": i,
                        "name": e.name,
                        "label": e.label,
                        "count": e.count,
                        "first_position": e.first_position,
                        "in_title": e.in_title,
                        "salience": e.salience,
                        "country_code": e.country_code,
                    }
                    for i, e in enumerate(tagged.entities)
                ]
            )
        )
        mentions = {
            m.start: {
                "article_id": article.id,
                "start": m.start,
                "end": m.end,
                "entity_position": i,
                "text": m.text,
            }
            for i, e in enumerate(tagged.entities)
            for m in e.mentions
        }
        session.execute(_insert(session, MentionRow).values(list(mentions.values())))
    session.execute(delete(DuplicateRow).where(DuplicateRow.article_id == article.id))
    if article.duplicate_of is not None:
        session.execute(
            _insert(session, DuplicateRow).values(
                article_id=article.id,
                duplicate_of=article.duplicate_of,
                cluster_id=article.cluster_id,
                kind=article.dedup,
                similarity=similarity,
                reason=reason,
                version=article.versions.get("dedup", ""),
            )
        )


def current_cluster(session: Session, article_id: str) -> str | None:
    """The article's cluster as the dedup index knows it now (a later, earlier-published copy may have
    taken the cluster over since the verdict was recorded)."""
    return session.scalar(
        select(DedupSignatureRow.cluster_id).where(DedupSignatureRow.article_id == article_id)
    )


def repoint_cluster(session: Session, old: str, new: str) -> None:
    """Move stored articles and duplicate links from cluster `old` to `new`; idempotent."""
    session.execute(update(ArticleRow).where(ArticleRow.cluster_id == old).values(cluster_id=new))
    session.execute(update(DuplicateRow).where(DuplicateRow.cluster_id == old).values(cluster_id=new))


def fetch_article(session: Session, article_id: str) -> StoredArticle | None:
    """The stored article with its entities and mentions, as `show --json` prints it."""
    row = session.get(ArticleRow, article_id)
    if row is None:
        return None
    entities = session.scalars(
        select(EntityRow).where(EntityRow.article_id == article_id).order_by(EntityRow.position)
    ).all()
    mentions = session.scalars(
        select(MentionRow).where(MentionRow.article_id == article_id).order_by(MentionRow.start)
    ).all()
    by_entity: dict[int, list[StoredMention]] = {}
    for m in mentions:
        by_entity.setdefault(m.entity_position, []).append(
            StoredMention(start=m.start, end=m.end, text=m.text)
        )
    return StoredArticle(
        id=row.id,
        url=row.url,
        source=row.source,
        title=row.title,
        published_at=_utc(row.published_at),
        language=row.language,
        text=row.text,
        dateline=row.dateline,
        credits=tuple(row.credits),
        authors=tuple(row.authors),
        duplicate_of=row.duplicate_of,
        dedup=row.status,  # type: ignore[arg-type]
        cluster_id=row.cluster_id,
        entities=tuple(
            StoredEntity(
                name=e.name,
                label=e.label,  # type: ignore[arg-type]  # a str column holding an EntityLabel
                count=e.count,
                mentions=tuple(by_entity.get(e.position, ())),
            )
            for e in entities
        ),
        versions=dict(row.versions),
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def record_dead_letter(
    session: Session,
    *,
    stage: str,
    message: StageMessage | None,
    payload: str,
    error: BaseException,
    reason: str,
    attempts: int,
) -> int:
    """Keep a message a stage could not process; returns its id. Idempotent and race-free: one atomic
    upsert on the unique index of open dead letters per (article, stage), so the same open failure
    recorded twice, even concurrently, updates one row."""
    from workers.errors import describe

    article_id = message.article_id if message else None
    now = datetime.now(UTC)
    values = {
        "article_id": article_id,
        "stage": stage,
        "error_class": type(error).__name__,
        "reason": reason,
        "message": describe(error, limit=2000),
        "attempts": attempts,
        "payload": payload,
        "trace_id": message.trace_id if message else None,
        "first_failed_at": now,
        "last_failed_at": now,
    }
    stmt = _insert(session, DeadLetterRow).values(values)
    if article_id is not None:
        stmt = stmt.on_conflict_do_update(
            index_elements=["article_id", "stage"],
            index_where=DeadLetterRow.retried_at.is_(None),
            set_={
                "error_class": stmt.excluded.error_class,
                "reason": stmt.excluded.reason,
                "message": stmt.excluded.message,
                "attempts": case(
                    (DeadLetterRow.attempts > stmt.excluded.attempts, DeadLetterRow.attempts),
                    else_=stmt.excluded.attempts,
                ),
                "last_failed_at": stmt.excluded.last_failed_at,
            },
        )
    dead_id: int = session.execute(stmt.returning(DeadLetterRow.id)).scalar_one()
    return dead_id


def open_dead_letters(
    session: Session,
    *,
    stage: str | None = None,
    reason: str | None = None,
    ids: Sequence[int] = (),
    limit: int = 1000,
) -> list[DeadLetterRow]:
    """Dead letters not yet retried, oldest first, filtered by stage, reason or id."""
    query = select(DeadLetterRow).where(DeadLetterRow.retried_at.is_(None))
    if stage:
        query = query.where(DeadLetterRow.stage == stage)
    if reason:
        query = query.where(DeadLetterRow.reason == reason)
    if ids:
        query = query.where(DeadLetterRow.id.in_(ids))
    return list(session.scalars(query.order_by(DeadLetterRow.id).limit(limit)))


def mark_retried(session: Session, dead_letter_ids: Sequence[int]) -> None:
    """Close dead letters that have been replayed (a new failure opens a new one)."""
    if dead_letter_ids:
        session.execute(
            update(DeadLetterRow)
            .where(DeadLetterRow.id.in_(dead_letter_ids))
            .values(retried_at=datetime.now(UTC))
        )


def counts(session: Session) -> dict[str, Any]:
    """Figures for `newsflow status`: articles by verdict, open dead letters by stage and reason."""
    by_status = dict(
        session.execute(select(ArticleRow.status, func.count()).group_by(ArticleRow.status)).all()
    )
    dead = session.execute(
        select(DeadLetterRow.stage, DeadLetterRow.reason, func.count())
        .where(DeadLetterRow.retried_at.is_(None))
        .group_by(DeadLetterRow.stage, DeadLetterRow.reason)
    ).all()
    return {
        "raw_articles": session.scalar(select(func.count()).select_from(RawArticleRow)) or 0,
        "articles": sum(by_status.values()),
        "articles_by_verdict": by_status,
        "dead_letters": sum(n for _, _, n in dead),
        "dead_letters_by_stage": [{"stage": s, "reason": r, "count": n} for s, r, n in dead],
    }
