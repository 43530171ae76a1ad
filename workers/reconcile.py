"""The reconciler: the database is the ledger, Redis only the transport (STYLE.md 16).

Every article's progress is readable from durable rows: its raw row, a `stage_results` row per
finished stage, its `articles` row once stored, an open `dead_letters` row if it failed. An article
that is not stored, has no open dead letter and has made no progress for longer than a deadline
lost its message somewhere (a Redis restarted empty, a publish that failed during an outage, a
producer that persisted but could not publish, a worker lost with a long visibility timeout).
The reconciler re-enqueues it from the first stage it lacks, through `producer.send`, and notes
that in `reconcile_marks` (which counts as progress, so an article is re-sent at most once per
deadline). Stages are idempotent, so re-sending an article whose message was only slow is
harmless: it changes no row.

One instance at a time: on PostgreSQL a session-level advisory lock guards each pass, so a
`newsflow reconcile --loop` in every deployment and an operator's manual run never overlap.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, text
from sqlalchemy.orm import Session

from schemas import StageMessage
from workers.db.engine import get_engine, transaction
from workers.db.models import ArticleRow, DeadLetterRow, RawArticleRow, ReconcileRow, StageResultRow
from workers.logging import get_logger
from workers.pipeline import STAGE_NAMES
from workers.settings import Settings

log = get_logger(__name__)

LOCK_KEY = 0x6E657773_666C6F77 & 0x7FFFFFFFFFFFFFFF
"""PostgreSQL advisory lock key of the reconciler ('newsflow' in hex)."""

PAGE = 500


@dataclass(frozen=True)
class Stuck:
    """An article to re-enqueue and the first stage it lacks."""

    article_id: str
    trace_id: str
    stage: str


@dataclass
class ReconcileReport:
    """What one pass found and did."""

    found: list[Stuck] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    locked_out: bool = False

    def by_stage(self) -> dict[str, int]:
        """How many stuck articles per first missing stage."""
        counts = dict.fromkeys(STAGE_NAMES, 0)
        for item in self.found:
            counts[item.stage] += 1
        return {k: v for k, v in counts.items() if v}


def stage_done(session: Session, article_id: str, stage: str) -> bool:
    """True if `stage`'s durable result for the article exists (for store: the stored article)."""
    if stage == STAGE_NAMES[-1]:
        query = select(exists().where(ArticleRow.id == article_id))
    else:
        query = select(exists().where(StageResultRow.article_id == article_id, StageResultRow.stage == stage))
    return bool(session.scalar(query))


def first_missing(done: set[str]) -> str:
    """The first stage (in pipeline order) without a result; store when the others are all done."""
    for stage in STAGE_NAMES[:-1]:
        if stage not in done:
            return stage
    return STAGE_NAMES[-1]


def _cutoff(session: Session, older_than: float) -> datetime:
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    # SQLite keeps naive UTC text (CURRENT_TIMESTAMP); PostgreSQL compares aware timestamps.
    return cutoff if session.get_bind().dialect.name == "postgresql" else cutoff.replace(tzinfo=None)


def find_stuck(session: Session, *, older_than: float, after: str = "", limit: int = PAGE) -> list[Stuck]:
    """Up to `limit` unfinished articles (id order, above `after`) with no open dead letter and no
    progress (received, a stage result, a reconcile) for `older_than` seconds; read-only."""
    cutoff = _cutoff(session, older_than)
    raw = RawArticleRow
    query = (
        select(raw.id, raw.trace_id)
        .where(
            raw.id > after,
            raw.received_at < cutoff,
            ~exists().where(ArticleRow.id == raw.id),
            ~exists().where(DeadLetterRow.article_id == raw.id, DeadLetterRow.retried_at.is_(None)),
            ~exists().where(StageResultRow.article_id == raw.id, StageResultRow.updated_at >= cutoff),
            ~exists().where(ReconcileRow.article_id == raw.id, ReconcileRow.enqueued_at >= cutoff),
        )
        .order_by(raw.id)
        .limit(limit)
    )
    rows = session.execute(query).all()
    if not rows:
        return []
    done: dict[str, set[str]] = {}
    for article_id, stage in session.execute(
        select(StageResultRow.article_id, StageResultRow.stage).where(
            StageResultRow.article_id.in_([r[0] for r in rows])
        )
    ):
        done.setdefault(article_id, set()).add(stage)
    return [Stuck(a, t, first_missing(done.get(a, set()))) for a, t in rows]


def mark_sent(session: Session, item: Stuck) -> None:
    """Note that `item` was re-enqueued now (progress for the deadline); upsert, one row per article."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    now = datetime.now(UTC)
    stmt = dialect.insert(ReconcileRow).values(
        article_id=item.article_id, stage=item.stage, enqueued_at=now, times=1
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["article_id"],
        set_={"stage": item.stage, "enqueued_at": now, "times": ReconcileRow.times + 1},
    )
    session.execute(stmt)


@contextmanager
def exclusive(database_url: str) -> Iterator[bool]:
    """Hold the reconciler's advisory lock (PostgreSQL) for the block; yields False if another holds it.
    SQLite (embedded mode, one process) needs no lock."""
    engine = get_engine(database_url)
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar())
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                conn.commit()


def reconcile(
    settings: Settings,
    *,
    older_than: float | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    app: Any = None,
    on_item: Callable[[Stuck, bool], None] | None = None,
) -> ReconcileReport:
    """One pass: find stuck articles and (unless `dry_run`) re-enqueue each from its first missing stage.
    Idempotent: a spurious re-send changes no row; at most one pass runs at a time."""
    deadline = settings.reconcile_older_than if older_than is None else older_than
    report = ReconcileReport()
    with exclusive(settings.database_url) as got:
        if not got:
            report.locked_out = True
            log.info("reconcile_locked_out")
            return report
        sender = None if dry_run else _Sender(settings, app)
        after = ""
        while limit is None or len(report.found) < limit:
            with transaction(settings.database_url) as session:
                page = find_stuck(session, older_than=deadline, after=after, limit=PAGE)
            if not page:
                break
            after = page[-1].article_id
            for item in page[: None if limit is None else limit - len(report.found)]:
                report.found.append(item)
                ok = True
                if sender is not None:
                    ok = sender.send(item)
                    report.sent += ok
                    report.failed += not ok
                if on_item is not None:
                    on_item(item, ok)
    if report.found:
        log.warning(
            "reconcile_pass",
            found=len(report.found),
            sent=report.sent,
            failed=report.failed,
            dry_run=dry_run,
            **{f"from_{k}": v for k, v in report.by_stage().items()},
        )
    return report


class _Sender:
    """Publishes re-enqueued articles with backpressure and marks them sent."""

    def __init__(self, settings: Settings, app: Any) -> None:
        import redis

        if app is None:
            from workers.celery_app import app as celery_app

            app = celery_app
        self.settings, self.app, self.count = settings, app, 0
        self.client = redis.Redis.from_url(settings.broker_url.unicode_string(), socket_timeout=10)

    def send(self, item: Stuck) -> bool:
        from workers.producer import send, wait_below_high_water

        try:
            if self.count % 100 == 0:
                wait_below_high_water(self.client, self.settings.high_water_mark, stage=item.stage)
            send(self.app, StageMessage(article_id=item.article_id, trace_id=item.trace_id), item.stage)
        except Exception as exc:  # the broker is away: the next pass tries again
            from workers.errors import describe

            log.warning("reconcile_send_failed", article_id=item.article_id, error=describe(exc))
            return False
        self.count += 1
        with transaction(self.settings.database_url) as session:
            mark_sent(session, item)
        return True


def loop(
    settings: Settings,
    *,
    every: float,
    older_than: float | None = None,
    passes: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run a pass every `every` seconds until interrupted (or `passes` done); a failed pass is logged and
    the next one tries again, so the loop outlives database and broker outages."""
    done = 0
    while passes is None or done < passes:
        try:
            reconcile(settings, older_than=older_than)
        except Exception as exc:
            from workers.errors import describe

            log.warning("reconcile_pass_failed", error=describe(exc))
        done += 1
        if passes is None or done < passes:
            sleep(every)
