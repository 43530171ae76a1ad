"""Every table newsflow writes. Alembic migrations in `workers/db/migrations` create them.

Each stage keeps a durable record per article (`stage_results`), so any stage can be re-run,
retried or backfilled on its own, and every record carries the version that produced it.
"""

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(32)


class Base(DeclarativeBase):
    """Declarative base; its metadata is what Alembic compares against."""


class RawArticleRow(Base):
    """A raw article exactly as submitted, stored once under its deterministic id."""

    __tablename__ = "raw_articles"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(20))
    payload: Mapped[str] = mapped_column(Text, doc="RawArticle as JSON.")
    trace_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    published_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        nullable=True,
        doc="When the producer published its first message; NULL: persisted, never published.",
    )


class StageResultRow(Base):
    """The latest output of one stage for one article, with the version that produced it."""

    __tablename__ = "stage_results"

    article_id: Mapped[str] = mapped_column(
        ID, ForeignKey("raw_articles.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(20), primary_key=True)
    version: Mapped[str] = mapped_column(String(80), index=True)
    output: Mapped[str] = mapped_column(Text, doc="The stage's schema model as JSON.")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    __table_args__ = (Index("ix_stage_results_stage_version", "stage", "version"),)


class ArticleRow(Base):
    """A stored article: the pipeline's final product."""

    __tablename__ = "articles"

    id: Mapped[str] = mapped_column(ID, ForeignKey("raw_articles.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str | None] = mapped_column(Text)
    canonical_url: Mapped[str | None] = mapped_column(Text, index=True)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    word_count: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    language: Mapped[str | None] = mapped_column(String(35))
    untagged: Mapped[str | None] = mapped_column(
        Text, doc="Why the tag stage found no entities to look for (no model for 'de'); NULL when tagged."
    )
    dateline: Mapped[str | None] = mapped_column(Text)
    credits: Mapped[list[str]] = mapped_column(JSON)
    authors: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True, doc="The dedup verdict kind.")
    duplicate_of: Mapped[str | None] = mapped_column(ID, index=True)
    cluster_id: Mapped[str] = mapped_column(ID, index=True)
    versions: Mapped[dict[str, str]] = mapped_column(JSON)
    stored_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    store_xid: Mapped[int | None] = mapped_column(
        BigInteger,
        doc="PostgreSQL: the id (xid8) of the transaction that last stored the article; SQLite: 0 (migration 0012).",
    )
    store_seq: Mapped[int | None] = mapped_column(
        BigInteger, doc="Store order within a transaction, and across them on SQLite (one writer)."
    )

    __table_args__ = (Index("ix_articles_store_order", "store_xid", "store_seq", unique=True),)


class EntityRow(Base):
    """One canonical entity of one article, with its salience."""

    __tablename__ = "entities"

    article_id: Mapped[str] = mapped_column(
        ID, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True, doc="Rank by salience, 0 first.")
    name: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(20))
    count: Mapped[int] = mapped_column(Integer)
    first_position: Mapped[int] = mapped_column(Integer)
    in_title: Mapped[bool] = mapped_column(Boolean)
    salience: Mapped[float] = mapped_column(Float)
    country_code: Mapped[str | None] = mapped_column(String(2))

    __table_args__ = (Index("ix_entities_name_label", "name", "label"),)


class MentionRow(Base):
    """One mention of an entity: character offsets into the article text."""

    __tablename__ = "mentions"

    article_id: Mapped[str] = mapped_column(
        ID, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    start: Mapped[int] = mapped_column(Integer, primary_key=True)
    end: Mapped[int] = mapped_column(Integer)
    entity_position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class DuplicateRow(Base):
    """A duplicate or revision link: which article repeats which, how closely and why."""

    __tablename__ = "duplicates"

    article_id: Mapped[str] = mapped_column(
        ID, ForeignKey("raw_articles.id", ondelete="CASCADE"), primary_key=True
    )
    duplicate_of: Mapped[str] = mapped_column(ID, index=True)
    cluster_id: Mapped[str] = mapped_column(ID, index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    similarity: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(String(80))


class DedupKeyRow(Base):
    """An exact-match key (normalised-text hash, canonical URL) owned by the first article that claimed it."""

    __tablename__ = "dedup_keys"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    article_id: Mapped[str] = mapped_column(ID, index=True)


class DedupSignatureRow(Base):
    """An indexed article: its MinHash signature, cluster and verdict (for verification, idempotent re-runs
    and rebuilds)."""

    __tablename__ = "dedup_signatures"

    # A compact surrogate for the article in dedup_bands (32 rows per article): a BIGINT there instead of
    # the 32-character id roughly halves the largest table and its index.
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    article_id: Mapped[str] = mapped_column(ID, unique=True)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    shingles: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    cluster_id: Mapped[str] = mapped_column(ID, index=True, doc="Current canonical article of its cluster.")
    verdict: Mapped[str] = mapped_column(Text, doc="The DedupVerdict given to the article, as JSON.")
    evidence: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        doc="Sample of its body's shingle hashes (workers.stages.dedup.Evidence); NULL below the floor.",
    )


class DedupBandRow(Base):
    """One LSH band hash of an article; articles sharing a band are near-duplicate candidates."""

    __tablename__ = "dedup_bands"

    band: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, doc="The article's dedup_signatures.seq.")


class DedupLineRow(Base):
    """A prose line at the head or tail of an indexed article's body, per source: lines found in other
    articles of the same source (or in two of another source) are that source's chrome, and are left
    out of the body that near-duplicates are verified on."""

    __tablename__ = "dedup_lines"

    key: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, doc="xxh64 of the line's normalised words."
    )
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    article_id: Mapped[str] = mapped_column(ID, primary_key=True)


class SourceLineRow(Base):
    """A boilerplate candidate line seen in one article of one source; distinct articles are counted."""

    __tablename__ = "source_lines"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    line_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    article_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), doc="When this article's sighting was counted."
    )


class DeadLetterRow(Base):
    """A message a stage could not process: kept with its reason until `newsflow retry` replays it."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[str | None] = mapped_column(ID, index=True)
    stage: Mapped[str] = mapped_column(String(20), index=True)
    error_class: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(50), index=True)
    message: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text, doc="The task message as JSON, for replay.")
    trace_id: Mapped[str | None] = mapped_column(String(64))
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    traceback: Mapped[str | None] = mapped_column(
        Text, doc="The last lines of this dead letter's own failure (migration 0007)."
    )

    # At most one open dead letter per (article, stage): `record_dead_letter` upserts on it (migration 0003).
    __table_args__ = (
        Index(
            "uq_dead_letters_open",
            "article_id",
            "stage",
            unique=True,
            postgresql_where=text("retried_at IS NULL"),
            sqlite_where=text("retried_at IS NULL"),
        ),
    )


class ReconcileRow(Base):
    """When the reconciler last re-enqueued an article, and from which stage: it counts as progress, so an
    article is re-sent at most once per deadline (the reconciler's own ledger, see `workers.ops.reconcile`)."""

    __tablename__ = "reconcile_marks"

    article_id: Mapped[str] = mapped_column(
        ID, ForeignKey("raw_articles.id", ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(20))
    enqueued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    times: Mapped[int] = mapped_column(Integer, default=1)


# --- ops: the journal `newsflow trace` reads, backfill checkpoints, dead-letter notes (migration 0004)

JOURNAL_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


class StageJournalRow(Base):
    """One line of an article's history: a stage attempt as it ended (ok, retry, dead letter, failed), or
    an operator action on it (retry, reprocess, discard). One insert per attempt; never updated."""

    __tablename__ = "stage_journal"

    id: Mapped[int] = mapped_column(JOURNAL_ID, primary_key=True, autoincrement=True)
    article_id: Mapped[str | None] = mapped_column(ID, index=True)
    stage: Mapped[str] = mapped_column(String(20))
    event: Mapped[str] = mapped_column(
        String(20), doc="ok, retry, dead_letter, failed, or an operator action."
    )
    attempt: Mapped[int | None] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(80))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error_class: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text, doc="The last lines of the traceback, if any.")
    detail: Mapped[dict[str, object] | None] = mapped_column(JSON)


class BackfillCheckpointRow(Base):
    """How far `newsflow backfill` got in one input file: the offset to resume from and the counts so far."""

    __tablename__ = "backfill_checkpoints"

    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, doc="Where the next unread record starts.")
    records: Mapped[int] = mapped_column(Integer, doc="Records read so far.")
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class DeadLetterNoteRow(Base):
    """What an operator did with a dead letter (discarded with a note, retried); the dead letter stays."""

    __tablename__ = "dead_letter_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dead_letter_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class NotArticleRow(Base):
    """A page the clean stage judged not to be an article (migration 0009): its terminal record. The
    page is never stored as an article, never dead-lettered, and no later stage runs for it."""

    __tablename__ = "not_articles"

    article_id: Mapped[str] = mapped_column(
        ID, ForeignKey("raw_articles.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True, doc="service, product, collection, forum, ...")
    confidence: Mapped[float | None] = mapped_column(Float)
    model: Mapped[str | None] = mapped_column(String(80), doc="The page-kind model's version.")
    clean_version: Mapped[str] = mapped_column(String(80))
    decided_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
