"""Persistence functions the pipeline steps call; every write is an upsert or insert-if-absent.

Each function takes an open `Session` (one transaction, from `workers.db.engine.transaction`)
so a step commits its reads and writes together.
"""

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    JSON,
    Insert,
    Table,
    Text,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas import RawArticle, StageMessage, StoredArticle, StoredEntity, StoredMention, TaggedArticle
from workers.core.errors import MissingInput
from workers.db.models import (
    ArticleRow,
    DeadLetterRow,
    DedupSignatureRow,
    DuplicateRow,
    EntityRow,
    MentionRow,
    NotArticleRow,
    RawArticleRow,
    SourceLineRow,
    StageResultRow,
)

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
    upsert_results(session, stage, [(article_id, version, output)])


def upsert_results(session: Session, stage: str, results: Sequence[tuple[str, str, BaseModel]]) -> None:
    """Record a stage's outputs, (article id, version, output) each, in one executemany; writing the same
    outputs again changes no row. Idempotent."""
    if not results:
        return
    rows = [
        {"article_id": article_id, "stage": stage, "version": version, "output": output.model_dump_json()}
        for article_id, version, output in results
    ]
    # When the stage finished, not when its transaction began (PostgreSQL's now()): `trace` shows it.
    finished = func.clock_timestamp() if session.get_bind().dialect.name == "postgresql" else func.now()
    stmt = _insert(session, StageResultRow).values(updated_at=finished)
    stmt = stmt.on_conflict_do_update(
        index_elements=["article_id", "stage"],
        set_={"version": stmt.excluded.version, "output": stmt.excluded.output, "updated_at": finished},
        where=(StageResultRow.output != stmt.excluded.output)
        | (StageResultRow.version != stmt.excluded.version),
    )
    # executemany: one compiled statement (cached), one parameter set per row, so no bind-parameter limit.
    session.execute(stmt, rows)


@dataclass
class Inputs:
    """What a batch step read in one query: raw payloads, stage outputs and current clusters, by article id."""

    raw: dict[str, str] = field(default_factory=dict)
    results: dict[tuple[str, str], str] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)  # ids that already have an `articles` row

    def result(self, article_id: str, stage: str, model: type[M]) -> M | None:
        """A stage's output for the article, validated, or None if that stage has not run."""
        payload = self.results.get((article_id, stage))
        return None if payload is None else model.model_validate_json(payload)

    def require(self, article_id: str, stage: str, model: type[M]) -> M:
        """Like `result`, but MissingInput when the stage has not run."""
        found = self.result(article_id, stage, model)
        if found is None:
            raise MissingInput(f"no {stage} result for article {article_id}")
        return found

    def require_raw(self, article_id: str) -> RawArticle:
        """The raw article; MissingInput if there is none."""
        payload = self.raw.get(article_id)
        if payload is None:
            raise MissingInput(f"no raw article {article_id}")
        return RawArticle.model_validate_json(payload)


IDS_PER_QUERY = 500
"""Article ids bound per input query (SQLite allows 32,766 variables, PostgreSQL 65,535)."""


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load_inputs(
    session: Session,
    article_ids: Sequence[str],
    *,
    raw: bool = False,
    stages: Sequence[str] = (),
    cluster: bool = False,
    stored: bool = False,
) -> Inputs:
    """Everything a batch step reads, in one UNION ALL query per 500 ids: raw payloads (`raw`), the given
    stages' outputs, the dedup index's current clusters (`cluster`) and which are stored (`stored`). Read-only."""
    found = Inputs()
    unique = sorted(set(article_ids))
    for ids in _chunks(unique, IDS_PER_QUERY):
        parts: list[Any] = []
        if raw:
            parts.append(
                select(RawArticleRow.id.label("a"), literal("raw").label("k"), RawArticleRow.payload.label("v"))
                .where(RawArticleRow.id.in_(ids))
            )  # fmt: skip
        if stages:
            parts.append(
                select(StageResultRow.article_id, StageResultRow.stage, StageResultRow.output).where(
                    StageResultRow.article_id.in_(ids), StageResultRow.stage.in_(stages)
                )
            )
        if cluster:
            parts.append(
                select(DedupSignatureRow.article_id, literal("cluster"), DedupSignatureRow.cluster_id).where(
                    DedupSignatureRow.article_id.in_(ids)
                )
            )
        if stored:
            parts.append(select(ArticleRow.id, literal("stored"), literal("")).where(ArticleRow.id.in_(ids)))
        if not parts:
            return found
        query: Any = parts[0] if len(parts) == 1 else union_all(*parts)
        rows: Iterable[Any] = session.execute(query)
        for article_id, kind, value in rows:
            if kind == "raw" and raw:
                found.raw[article_id] = value
            elif kind == "cluster" and cluster:
                found.clusters[article_id] = value
            elif kind == "stored" and stored:
                found.stored.add(article_id)
            else:
                found.results[(article_id, kind)] = value
    return found


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


def sighting_id(raw: RawArticle) -> str:
    """The identity a raw article's lines are counted under in `source_lines`: a 32-hex-digit hash of its
    exact body, so that copies of one page (the same story under several URLs of its source) count as
    one article and their lines never become the source's chrome. Pure."""
    return hashlib.blake2b(raw.body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def learn_lines(session: Session, source: str, article_id: str, keys: Iterable[str]) -> None:
    """Count an article's boilerplate-candidate lines for its source; counting it twice changes nothing."""
    rows = [{"source": source, "line_key": key, "article_id": article_id} for key in sorted(set(keys))]
    if rows:
        stmt = _insert(session, SourceLineRow)
        session.execute(
            stmt.on_conflict_do_nothing(index_elements=["source", "line_key", "article_id"]), rows
        )


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


KEYS_PER_QUERY = 5000
"""Line keys bound per `source_lines` query (below SQLite's and PostgreSQL's variable limits)."""


def learn_chrome(
    session: Session, articles: Sequence[tuple[str, str, frozenset[str]]], min_articles: int
) -> list[frozenset[str]]:
    """Count each (source, article id, line keys) and return, per article, its keys seen in at least
    `min_articles` distinct articles of its source (itself and the batch's earlier articles included).
    The pipeline counts an article under its `sighting_id` (its body's hash), so copies of one page
    under several URLs are one article: a line seen only in copies of one story is not chrome.

    Bounded: a key already learned as chrome (`min_articles` others) is not counted again, so a source
    keeps at most about `min_articles` rows per key. One read per source per 5,000 keys, one executemany
    write. Counting the same article again adds no row. Idempotent.
    """
    by_source: dict[str, set[str]] = {}
    for source, _, keys in articles:
        by_source.setdefault(source, set()).update(keys)
    seen: dict[tuple[str, str], set[str]] = {}
    for source, wanted in by_source.items():
        for chunk in _chunks(sorted(wanted), KEYS_PER_QUERY):
            rows = session.execute(
                select(SourceLineRow.line_key, SourceLineRow.article_id).where(
                    SourceLineRow.source == source, SourceLineRow.line_key.in_(chunk)
                )
            )
            for key, article_id in rows:
                seen.setdefault((source, key), set()).add(article_id)
    chrome: list[frozenset[str]] = []
    new_rows: list[dict[str, str]] = []
    for source, article_id, keys in articles:
        learned: set[str] = set()
        for key in sorted(keys):
            holders = seen.setdefault((source, key), set())
            others = len(holders - {article_id})
            if others + 1 >= min_articles:
                learned.add(key)
            if others < min_articles and article_id not in holders:
                new_rows.append({"source": source, "line_key": key, "article_id": article_id})
            holders.add(article_id)
        chrome.append(frozenset(learned))
    if new_rows:
        stmt = _insert(session, SourceLineRow)
        session.execute(
            stmt.on_conflict_do_nothing(index_elements=["source", "line_key", "article_id"]), new_rows
        )
    return chrome


def prune_source_lines(session: Session, sources: Iterable[str], seen_before: datetime) -> int:
    """Forget the lines of `sources` seen in only one article, counted before `seen_before` (a line that
    has not recurred since is no chrome); returns the rows deleted. Keeps `source_lines` bounded."""
    other = SourceLineRow.__table__.alias("other")
    deleted = 0
    for source in sorted(set(sources)):
        recurring = (
            select(other.c.line_key)
            .where(
                other.c.source == SourceLineRow.source,
                other.c.line_key == SourceLineRow.line_key,
                other.c.article_id != SourceLineRow.article_id,
            )
            .exists()
        )
        result = session.execute(
            delete(SourceLineRow).where(
                SourceLineRow.source == source, SourceLineRow.seen_at < seen_before, ~recurring
            )
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted


ROWS_PER_WRITE = 1000
"""Entity and mention rows per executemany call: bounded memory for an article with 10,000+ entities."""


@dataclass(frozen=True)
class ArticleWrite:
    """One stored article to write, with what its rows need from the dedup verdict."""

    article: StoredArticle
    tagged: TaggedArticle | None
    canonical_url: str | None
    similarity: float | None
    reason: str


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
    upsert_articles(session, [ArticleWrite(article, tagged, canonical_url, similarity, reason)])


def _article_values(write: ArticleWrite) -> dict[str, Any]:
    article = write.article
    return {
        "id": article.id,
        "source": article.source,
        "url": article.url,
        "canonical_url": write.canonical_url,
        "title": article.title,
        "text": article.text,
        "word_count": len(article.text.split()),
        "published_at": article.published_at,
        "language": article.language,
        "untagged": write.tagged.untagged if write.tagged is not None else None,
        "dateline": article.dateline,
        "credits": list(article.credits),
        "authors": list(article.authors),
        "status": article.dedup,
        "duplicate_of": article.duplicate_of,
        "cluster_id": article.cluster_id,
        "versions": article.versions,
    }


def _entity_rows(write: ArticleWrite) -> list[dict[str, Any]]:
    if write.tagged is None:
        return []
    return [
        {
            "article_id": write.article.id,
            "position": i,
            "name": e.name,
            "label": e.label,
            "count": e.count,
            "first_position": e.first_position,
            "in_title": e.in_title,
            "salience": e.salience,
            "country_code": e.country_code,
        }
        for i, e in enumerate(write.tagged.entities)
    ]


def _mention_rows(write: ArticleWrite) -> list[dict[str, Any]]:
    if write.tagged is None:
        return []
    mentions = {
        m.start: {
            "article_id": write.article.id,
            "start": m.start,
            "end": m.end,
            "entity_position": i,
            "text": m.text,
        }
        for i, e in enumerate(write.tagged.entities)
        for m in e.mentions
    }
    return list(mentions.values())


def upsert_articles(
    session: Session, writes: Sequence[ArticleWrite], *, new: frozenset[str] | set[str] = frozenset()
) -> None:
    """Write stored articles with their entities, mentions and duplicate links, each table in one
    executemany (entities and mentions in chunks of 1,000 rows, so no article can exceed a database's
    bind-parameter limit); rewriting yields the same rows. Idempotent.

    `new`: ids known to have no stored rows yet, whose old rows need no delete (a concurrent first write
    of the same article inserts the same rows, which the inserts then skip)."""
    if not writes:
        return
    by_id = {w.article.id: w for w in writes}  # the same article twice in a batch: written once
    ids = sorted(by_id)
    values = [_article_values(by_id[i]) for i in ids]
    order = _store_order(session)
    stmt = _insert(session, ArticleRow).values(order)
    columns = [k for k in values[0] if k != "id"]
    # An article written again unchanged is not updated at all: it keeps its place in the store order
    # (the changes feed does not serve it again) and the row stays byte for byte (a re-run changes nothing).
    changed = or_(*(_differs(getattr(ArticleRow, k), stmt.excluded[k]) for k in columns))
    written = session.scalars(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={**{k: stmt.excluded[k] for k in columns}, **order}, where=changed
        ).returning(ArticleRow.id),
        values,
    ).all()
    if not order:
        _number_sqlite(session, sorted(written))
    for chunk in _chunks([i for i in ids if i not in new], IDS_PER_QUERY):
        session.execute(delete(MentionRow).where(MentionRow.article_id.in_(chunk)))
        session.execute(delete(EntityRow).where(EntityRow.article_id.in_(chunk)))
        session.execute(delete(DuplicateRow).where(DuplicateRow.article_id.in_(chunk)))
    entities = [row for i in ids for row in _entity_rows(by_id[i])]
    for rows in _chunks(entities, ROWS_PER_WRITE):
        session.execute(_insert(session, EntityRow).on_conflict_do_nothing(), list(rows))
    mentions = [row for i in ids for row in _mention_rows(by_id[i])]
    for rows in _chunks(mentions, ROWS_PER_WRITE):
        session.execute(_insert(session, MentionRow).on_conflict_do_nothing(), list(rows))
    duplicates = [
        {
            "article_id": w.article.id,
            "duplicate_of": w.article.duplicate_of,
            "cluster_id": w.article.cluster_id,
            "kind": w.article.dedup,
            "similarity": w.similarity,
            "reason": w.reason,
            "version": w.article.versions.get("dedup", ""),
        }
        for w in (by_id[i] for i in ids)
        if w.article.duplicate_of is not None
    ]
    if duplicates:
        session.execute(_insert(session, DuplicateRow).on_conflict_do_nothing(), duplicates)


STORE_SEQUENCE = "articles_store_seq"


def _store_order(session: Session) -> dict[str, Any]:
    """The store-order columns of an article write on PostgreSQL (the writing transaction's id and the next
    number of the store sequence; `workers.ops.changes` serves a row only once every transaction below it
    has ended, so one committing late is never skipped); empty on SQLite, numbered after the write."""
    if session.get_bind().dialect.name != "postgresql":
        return {}
    return {
        "store_xid": literal_column("pg_current_xact_id()::text::bigint"),
        # Literal SQL, no bound parameter: a multi-row INSERT ... RETURNING renders it once per row.
        "store_seq": literal_column(f"nextval('{STORE_SEQUENCE}')"),
    }


def _differs(current: Any, proposed: Any) -> Any:
    """SQL: the stored value and the proposed one differ (NULLs compared as values; JSON as its text, which
    PostgreSQL's `json` type has no equality for)."""
    if isinstance(current.type, JSON):
        current, proposed = cast(current, Text), cast(proposed, Text)
    return current.is_distinct_from(proposed)


def _number_sqlite(session: Session, ids: Sequence[str]) -> None:
    """SQLite has one writer: the write above holds its lock until commit, so numbering the just-written
    articles after the highest number gives the commit order."""
    if not ids:
        return
    top = session.scalar(select(func.max(ArticleRow.store_seq))) or 0
    table = ArticleRow.__table__  # Core, not the ORM's bulk update by primary key
    assert isinstance(table, Table)
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(store_xid=0, store_seq=bindparam("b_seq")),
        [{"b_id": article_id, "b_seq": top + n} for n, article_id in enumerate(ids, 1)],
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
    return fetch_articles(session, [article_id]).get(article_id)


def fetch_articles(session: Session, article_ids: Sequence[str]) -> dict[str, StoredArticle]:
    """The stored articles among `article_ids`, with their entities and mentions, by id (three queries per
    IDS_PER_QUERY ids); ids not stored are absent. Read-only."""
    found: dict[str, StoredArticle] = {}
    for chunk in _chunks(sorted(set(article_ids)), IDS_PER_QUERY):
        rows = session.scalars(select(ArticleRow).where(ArticleRow.id.in_(chunk))).all()
        entities: dict[str, list[EntityRow]] = {}
        for e in session.scalars(
            select(EntityRow).where(EntityRow.article_id.in_(chunk)).order_by(EntityRow.position)
        ):
            entities.setdefault(e.article_id, []).append(e)
        by_entity: dict[tuple[str, int], list[StoredMention]] = {}
        for m in session.scalars(
            select(MentionRow).where(MentionRow.article_id.in_(chunk)).order_by(MentionRow.start)
        ):
            by_entity.setdefault((m.article_id, m.entity_position), []).append(
                StoredMention(start=m.start, end=m.end, text=m.text)
            )
        for row in rows:
            found[row.id] = _stored(row, entities.get(row.id, []), by_entity)
    return found


def _stored(
    row: ArticleRow, entities: Sequence[EntityRow], by_entity: dict[tuple[str, int], list[StoredMention]]
) -> StoredArticle:
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
                mentions=tuple(by_entity.get((row.id, e.position), ())),
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
    from workers.core.errors import describe, traceback_head

    article_id = message.article_id if message else None
    now = datetime.now(UTC)
    values = {
        "traceback": traceback_head(error),
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
                "traceback": stmt.excluded.traceback,
            },
        )
    dead_id: int = session.execute(stmt.returning(DeadLetterRow.id)).scalar_one()
    return dead_id


def stage_finished(session: Session, article_id: str, stage: str, version: str | None) -> bool:
    """True if another attempt already finished `stage` for the article: its result is recorded at `version`
    (the running code's), or, for the last stage, the article is stored. Read-only."""
    if stage == "store":
        return session.get(ArticleRow, article_id) is not None
    query = select(StageResultRow.version).where(
        StageResultRow.article_id == article_id, StageResultRow.stage == stage
    )
    recorded = session.scalar(query)
    return recorded is not None and (version is None or recorded == version)


SUPERSEDED_REASONS = ("timeout", "worker_lost", "retries_exhausted")
"""Dead-letter reasons about an attempt, not its input: a later success of the article supersedes them."""


def close_superseded_dead_letters(session: Session, article_ids: Sequence[str]) -> list[tuple[int, str, str]]:
    """Close the open dead letters of just-stored articles whose reason was about an attempt (a stale
    attempt that failed while another finished the article); returns (id, article id, stage) of each.
    An article is never both stored and dead-lettered. Idempotent (closed rows are not matched again)."""
    if not article_ids:
        return []
    rows = session.execute(
        update(DeadLetterRow)
        .where(
            DeadLetterRow.article_id.in_(sorted(set(article_ids))),
            DeadLetterRow.retried_at.is_(None),
            DeadLetterRow.reason.in_(SUPERSEDED_REASONS),
        )
        .values(retried_at=datetime.now(UTC))
        .returning(DeadLetterRow.id, DeadLetterRow.article_id, DeadLetterRow.stage)
    ).all()
    return [(int(i), str(a), str(st)) for i, a, st in rows]


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
        "not_articles": not_article_counts(session),
    }


def sources_of(session: Session, article_ids: Sequence[str]) -> dict[str, str]:
    """The raw articles' sources by id (one query; ids without a raw article are absent)."""
    if not article_ids:
        return {}
    rows = session.execute(
        select(RawArticleRow.id, RawArticleRow.source).where(RawArticleRow.id.in_(sorted(set(article_ids))))
    )
    return {row.id: row.source for row in rows}


def ensure_raw_batch(session: Session, rows: Sequence[tuple[str, RawArticle, str]]) -> set[str]:
    """Insert the raw articles `(id, raw, trace_id)` that are absent, in one statement; returns the ids
    that were new. Idempotent: an id already stored (or twice in the batch) is inserted once."""
    unique = {aid: (aid, raw, trace) for aid, raw, trace in rows}
    if not unique:
        return set()
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = [
        {
            "id": aid,
            "source": raw.source,
            "url": raw.url,
            "content_type": raw.content_type,
            "payload": raw.model_dump_json(),
            "trace_id": trace,
        }
        for aid, raw, trace in unique.values()
    ]
    # One statement compiled once (and cached): SQLAlchemy sends the rows as multi-row VALUES pages.
    stmt = dialect.insert(RawArticleRow).on_conflict_do_nothing(index_elements=["id"])
    return set(session.scalars(stmt.returning(RawArticleRow.id), values))


def mark_published(session: Session, ids: Iterable[str]) -> None:
    """Record that the articles' first message went out (kept if already set). Idempotent."""
    wanted = list(ids)
    if wanted:
        session.execute(
            update(RawArticleRow)
            .where(RawArticleRow.id.in_(wanted), RawArticleRow.published_at.is_(None))
            .values(published_at=func.now())
        )


def never_published(session: Session, ids: Iterable[str]) -> set[str]:
    """Of the given stored ids, those persisted but never published: no publish recorded, no stage result,
    no dead letter (an article the reconciler sent has a result or is in the queue with a recent mark)."""
    wanted = list(set(ids))
    if not wanted:
        return set()
    stmt = select(RawArticleRow.id).where(
        RawArticleRow.id.in_(wanted),
        RawArticleRow.published_at.is_(None),
        ~exists().where(StageResultRow.article_id == RawArticleRow.id),
        ~exists().where(DeadLetterRow.article_id == RawArticleRow.id),
    )
    return set(session.scalars(stmt))


def record_page_kinds(
    session: Session,
    ended: Sequence[tuple[str, str, str, float | None, str | None, str]],
    kept: Sequence[str],
) -> None:
    """Record the clean stage's page-kind ends: upsert a `not_articles` row for each (article id, source,
    kind, confidence, model, clean version) and remove a stored article of that id (a page re-judged after a
    model change is no longer an article); delete the rows of the `kept` ids (judged, or kept, as articles
    now). Writing the same judgements again changes no row. Idempotent."""
    if kept:
        session.execute(delete(NotArticleRow).where(NotArticleRow.article_id.in_(sorted(set(kept)))))
    if not ended:
        return
    rows = [
        {"article_id": a, "source": src, "kind": k, "confidence": c, "model": m, "clean_version": v}
        for a, src, k, c, m, v in ended
    ]
    stmt = _insert(session, NotArticleRow)
    stmt = stmt.on_conflict_do_update(
        index_elements=["article_id"],
        set_={
            name: getattr(stmt.excluded, name)
            for name in ("source", "kind", "confidence", "model", "clean_version")
        }
        | {"decided_at": func.now()},
        where=(NotArticleRow.kind != stmt.excluded.kind)
        | (NotArticleRow.model.is_distinct_from(stmt.excluded.model))
        | (NotArticleRow.confidence.is_distinct_from(stmt.excluded.confidence))
        | (NotArticleRow.clean_version != stmt.excluded.clean_version),
    )
    session.execute(stmt, rows)
    session.execute(delete(ArticleRow).where(ArticleRow.id.in_(sorted({r["article_id"] for r in rows}))))


def not_article_counts(session: Session) -> dict[str, int]:
    """Pages that ended `not_article`, by kind (for `newsflow status` and the metrics)."""
    return {
        str(kind): int(n)
        for kind, n in session.execute(
            select(NotArticleRow.kind, func.count()).group_by(NotArticleRow.kind).order_by(NotArticleRow.kind)
        )
    }
