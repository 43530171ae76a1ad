"""Reading stored articles out: one article as `show --json` prints it, and the changes feed (stored
articles in store order, with a cursor to resume from) that `GET /v1/changes` and `newsflow export` serve.

The store order: every write that changes an article (`repo.upsert_articles`) gives it a new position,
so an article reprocessed into something different comes again later in the feed (written again
unchanged, it keeps its place). A plain sequence number is not enough
on PostgreSQL: a transaction can take number 10, another 11 and commit first; a reader that served 11
and moved its cursor past it would never see 10. So each row also carries the id (xid8) of the
transaction that wrote it, the feed is ordered by (transaction id, number), and a page holds only rows
whose transaction id is below the oldest transaction still running (`pg_current_snapshot()`'s xmin):
every transaction below it has ended, and any later writer gets a higher id, so nothing can ever appear
behind the cursor. A long open transaction (any writer, not only the store) delays the feed, never
loses a row. SQLite has one writer, which holds its lock from the numbering to the commit: the number
alone is the commit order.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import literal_column, select, tuple_
from sqlalchemy.orm import Session

from workers.db import repo
from workers.db.models import ArticleRow, RawArticleRow

MAX_LIMIT = 1000
"""Most articles one page of the feed holds."""

_CURSOR = re.compile(r"(\d{1,19})-(\d{1,19})")
_BIGINT_MAX = 2**63 - 1


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in the store order: after the article written by transaction `xid` as number `seq`."""

    xid: int = 0
    seq: int = 0

    def __str__(self) -> str:
        return f"{self.xid}-{self.seq}"

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        """A cursor from its text (`XID-SEQ`, as the feed hands it out); empty or None: the start.
        ValueError for anything else."""
        if not text:
            return cls()
        match = _CURSOR.fullmatch(text.strip())
        if match is None or max(int(match.group(1)), int(match.group(2))) > _BIGINT_MAX:
            raise ValueError("not a cursor (XID-SEQ, as a page of the feed hands it out)")
        return cls(int(match.group(1)), int(match.group(2)))


def _visible_below(session: Session) -> Any:
    """The bound every served row's transaction id is below: PostgreSQL's oldest running transaction."""
    if session.get_bind().dialect.name == "postgresql":
        return literal_column("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    return None


def changes(session: Session, after: Cursor, limit: int = 100) -> tuple[list[dict[str, Any]], Cursor]:
    """Up to `limit` stored articles after `after` in store order, each as its JSON object with its
    `cursor`, and the cursor to ask from next (`after` when there is nothing new). Read-only; resuming from
    any cursor it returned never skips an article stored concurrently."""
    limit = max(1, min(limit, MAX_LIMIT))
    order = tuple_(ArticleRow.store_xid, ArticleRow.store_seq)
    query = select(ArticleRow.id, ArticleRow.store_xid, ArticleRow.store_seq).where(
        ArticleRow.store_seq.is_not(None), order > tuple_(after.xid, after.seq)
    )
    bound = _visible_below(session)
    if bound is not None:
        query = query.where(ArticleRow.store_xid < bound)
    rows = session.execute(query.order_by(ArticleRow.store_xid, ArticleRow.store_seq).limit(limit)).all()
    if not rows:
        return [], after
    articles = repo.fetch_articles(session, [r.id for r in rows])
    page = []
    for r in rows:
        article = articles.get(r.id)
        if article is not None:  # purged between the two reads
            page.append(
                {"cursor": str(Cursor(r.store_xid, r.store_seq)), **json.loads(article.model_dump_json())}
            )
    last = rows[-1]
    return page, Cursor(last.store_xid, last.store_seq)


def tagging_note(tagged: Any) -> str | None:
    """One line on how the article was tagged: "untagged: no model for 'de'", "fr", "en, text past ..."."""
    if tagged is None:
        return None
    if tagged.untagged:
        return f"untagged: {tagged.untagged}"
    if tagged.skipped:
        return f"skipped: {tagged.skipped}"
    cut = f", untagged past character {tagged.untagged_from:,}" if tagged.untagged_from is not None else ""
    return f"{tagged.language or '?'} by {tagged.model}{cut}"


def article_document(session: Session, article_id: str, *, removed: bool = False) -> dict[str, Any] | None:
    """One article as `newsflow show --json` prints it: the stored article (cluster, entities, versions),
    its dedup verdict and how it was tagged (and, with `removed`, what cleaning removed); `stored: false`
    while it is still in the pipeline; None when no such raw article was submitted. Read-only."""
    from schemas import CleanedArticle, DedupVerdict, TaggedArticle

    if session.get(RawArticleRow, article_id) is None:
        return None
    article = repo.fetch_article(session, article_id)
    verdict = repo.load_result(session, article_id, "dedup", DedupVerdict)
    tagged = repo.load_result(session, article_id, "tag", TaggedArticle)
    data: dict[str, Any] = (
        json.loads(article.model_dump_json()) if article else {"id": article_id, "stored": False}
    )
    if verdict is not None:
        data["verdict"] = json.loads(verdict.model_dump_json())
    if tagged is not None:
        data["tagging"] = {
            "language": tagged.language,
            "untagged": tagged.untagged,
            "note": tagging_note(tagged),
        }
    if removed:
        cleaned = repo.load_result(session, article_id, "clean", CleanedArticle)
        if cleaned is not None:
            data["removed"] = [r.model_dump() for r in cleaned.removed]
    return data
