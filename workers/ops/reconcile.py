"""The reconciler: the database is the ledger, Redis only the transport (STYLE.md 16).

Every article's progress is readable from durable rows: its raw row, a `stage_results` row per
finished stage, its `articles` row once stored, an open `dead_letters` row if it failed. An article
that is not stored, has no open dead letter and has made no progress for longer than a deadline
lost its message somewhere (a Redis restarted empty, a publish that failed during an outage, a
producer that persisted but could not publish, a worker lost with a long visibility timeout).
The reconciler re-enqueues it from the first stage it lacks, through `producer.send`, and notes
that in `reconcile_marks` (which counts as progress, so an article is re-sent at most once per
deadline) and in the stage journal (`newsflow trace` shows each re-send). Stages are idempotent, so
re-sending an article whose message was only slow is harmless: it changes no row.

Finished, for the reconciler, means stored, ended `not_article` (a `not_articles` row), or dead-lettered: an open dead letter, or one an operator
discarded (`dead-letters discard` is final; only `retry`/`reprocess` bring such an article back).

No re-send while a message for the article may still be queued or in flight. Each pass reads, per stage,
the oldest message still queued and the messages in flight, and the last progress of their articles
(database time): a stage's queue is first in, first out, so an article whose last progress is not older
than that may still have its message behind them, and is skipped. Besides, each pass measures each
stage's drain time (that stage's messages queued and in flight over the rate that stage's workers finish
tasks, from the journal) and skips an article whose last progress (arrival, a stage result, the last
re-send) is younger than the drain time of the stage it waits for, however short the deadline; the pass
says how many it skipped. A backlog in one slow stage is judged by that stage's rate, not by all four
stages' together (which made it look four times shorter and re-sent what was merely queued).

One instance at a time: on PostgreSQL a session-level advisory lock guards each pass, so a
`newsflow reconcile --loop` in every deployment and an operator's manual run never overlap.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, func, select, text
from sqlalchemy.orm import Session

from schemas import StageMessage
from workers.core.logging import get_logger
from workers.core.settings import Settings
from workers.db.engine import get_engine, transaction
from workers.db.models import (
    ArticleRow,
    DeadLetterNoteRow,
    DeadLetterRow,
    NotArticleRow,
    RawArticleRow,
    ReconcileRow,
    StageJournalRow,
    StageResultRow,
)
from workers.runtime.pipeline import STAGE_NAMES

log = get_logger(__name__)

LOCK_KEY = 0x6E657773_666C6F77 & 0x7FFFFFFFFFFFFFFF
"""PostgreSQL advisory lock key of the reconciler ('newsflow' in hex)."""

PAGE = 500


DISCARDED = "discarded"
"""The dead-letter note action of `dead-letters discard` (the article is finished for the reconciler)."""
RESENT = "reconciled"
"""The journal event of a re-send by the reconciler (`newsflow trace` lists it with the replays)."""
RATE_WINDOW_S = 300
"""The journal window the workers' task rate is measured over (the last rows of it, at most RATE_ROWS)."""
RATE_ROWS = 5000
HORIZON_SLACK_S = 30
"""Seconds between an article's recorded progress and its message's publish that the horizon allows for."""


@dataclass(frozen=True)
class Stuck:
    """An article to re-enqueue, the first stage it lacks, and its last progress (None if unknown)."""

    article_id: str
    trace_id: str
    stage: str
    last_progress: datetime | None = None


@dataclass
class ReconcileReport:
    """What one pass found and did; `skipped` were stuck by the deadline but may still have a message
    queued or in flight (their last progress is younger than the measured drain time `drain_s`)."""

    found: list[Stuck] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    drain_s: float = 0.0
    """The longest stage's drain time."""
    drain_by_stage: dict[str, float] = field(default_factory=dict)
    """Each stage's drain time: an article is judged by its first missing stage's."""
    horizon_by_stage: dict[str, datetime | None] = field(default_factory=dict)
    """Per stage, the last progress of the articles of its oldest message still queued or in flight."""
    in_flight: dict[str, set[str]] = field(default_factory=dict)
    """Per stage, the articles of its messages delivered to a worker and not yet acknowledged."""
    locked_out: bool = False

    def may_be_queued(self, item: Stuck, now: datetime) -> bool:
        """True when `item`'s message may still be queued or in flight for its stage: its last progress is
        younger than the stage's drain time, or not older than the stage's oldest queued or in-flight
        message's articles (less HORIZON_SLACK_S: a message is published just after the progress it follows)."""
        last = item.last_progress
        if last is None:
            return False
        if (now - last).total_seconds() < self.drain_by_stage.get(item.stage, 0.0):
            return True
        if item.article_id in self.in_flight.get(item.stage, ()):
            # Its own message is in flight: nothing is queued ahead of it, and held by a frozen worker
            # (issue 19.1) only a re-send finishes it. The drain time above still applies.
            return False
        horizon = self.horizon_by_stage.get(item.stage)
        return horizon is not None and last >= horizon - timedelta(seconds=HORIZON_SLACK_S)

    def by_stage(self) -> dict[str, int]:
        """How many stuck articles per first missing stage."""
        counts = dict.fromkeys(STAGE_NAMES, 0)
        for item in self.found:
            counts[item.stage] += 1
        return {k: v for k, v in counts.items() if v}


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
    discarded = (
        select(DeadLetterRow.id)
        .join(DeadLetterNoteRow, DeadLetterNoteRow.dead_letter_id == DeadLetterRow.id)
        .where(DeadLetterRow.article_id == raw.id, DeadLetterNoteRow.action == DISCARDED)
    )
    last_result = (
        select(func.max(StageResultRow.updated_at))
        .where(StageResultRow.article_id == raw.id)
        .scalar_subquery()
    )
    last_sent = select(ReconcileRow.enqueued_at).where(ReconcileRow.article_id == raw.id).scalar_subquery()
    query = (
        select(raw.id, raw.trace_id, raw.received_at, last_result, last_sent)
        .where(
            raw.id > after,
            raw.received_at < cutoff,
            ~exists().where(ArticleRow.id == raw.id),
            ~exists().where(NotArticleRow.article_id == raw.id),  # ended `not_article` at clean: finished
            ~exists().where(DeadLetterRow.article_id == raw.id, DeadLetterRow.retried_at.is_(None)),
            ~exists(discarded),
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
    return [
        Stuck(
            a, t, first_missing(done.get(a, set())), max(_utc(x) for x in (got, res, sent) if x is not None)
        )
        for a, t, got, res, sent in rows
    ]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def task_rates(session: Session) -> dict[str, float]:
    """Tasks per second each stage's workers finished lately (distinct task ids per stage in the journal's
    last rows within RATE_WINDOW_S, over the time since the oldest of them); 0.0 for a stage with none.
    Read-only, one indexed range on the journal's id."""
    rates = dict.fromkeys(STAGE_NAMES, 0.0)
    newest = session.scalar(select(func.max(StageJournalRow.id)))
    if newest is None:
        return rates
    since = _cutoff(session, RATE_WINDOW_S)
    rows = session.execute(
        select(
            StageJournalRow.stage,
            func.count(func.distinct(StageJournalRow.task_id)),
            func.min(StageJournalRow.ended_at),
        )
        .where(
            StageJournalRow.id > newest - RATE_ROWS,
            StageJournalRow.task_id.is_not(None),
            StageJournalRow.ended_at >= since,
        )
        .group_by(StageJournalRow.stage)
    ).all()
    now = datetime.now(UTC)
    for stage, tasks, oldest in rows:
        if stage in rates and tasks and oldest is not None:
            rates[stage] = float(tasks) / max((now - _utc(oldest)).total_seconds(), 1.0)
    return rates


def backlogs(
    client: Any,
    settings: Settings,
    oldest: dict[str, set[str]] | None = None,
    in_flight: dict[str, set[str]] | None = None,
) -> dict[str, int]:
    """Per stage: messages queued in Redis (priority lists included) plus those delivered and not yet
    acknowledged that may still run (held no longer than a task's time limit and the longest retry delay;
    older ones belonged to a dead worker), read from kombu's `unacked` hash by routing key. `oldest`, if
    given, receives per stage the article ids of its oldest queued message and of its messages in flight;
    `in_flight`, if given, those of its messages in flight alone."""
    import json

    from workers.core import keys

    suffixes = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's priority lists beside the queue
    pipe = client.pipeline(transaction=False)
    for stage in STAGE_NAMES:
        for suffix in suffixes:
            pipe.llen(keys.queue_name(stage) + suffix)
    for stage in STAGE_NAMES:
        pipe.lindex(keys.queue_name(stage), -1)  # BRPOP takes from the right: the oldest message
    fresh_after = time.time() - settings.task_time_limit - settings.retry_backoff_max
    pipe.zrangebyscore(UNACKED_INDEX, fresh_after, "+inf")
    *lengths, fresh = pipe.execute()
    heads = lengths[len(STAGE_NAMES) * 4 :]
    counts = {s: int(sum(lengths[i * 4 : i * 4 + 4])) for i, s in enumerate(STAGE_NAMES)}
    if oldest is not None:
        for stage, head in zip(STAGE_NAMES, heads, strict=True):
            oldest.setdefault(stage, set()).update(_articles_of(head))
    by_queue = {keys.queue_name(s): s for s in STAGE_NAMES}
    tags = list(fresh)
    for start in range(0, len(tags), 500):
        for raw in client.hmget(UNACKED, tags[start : start + 500]):
            found: str | None = None
            message: Any = None
            with suppress(ValueError, TypeError, IndexError):
                message, _exchange, routing_key = json.loads(raw) if raw is not None else (None, None, None)
                found = by_queue.get(str(routing_key))
            if found is not None:
                counts[found] += 1
                if oldest is not None:
                    oldest.setdefault(found, set()).update(_articles_of(message))
                if in_flight is not None:
                    in_flight.setdefault(found, set()).update(_articles_of(message))
    return counts


def _articles_of(message: Any) -> list[str]:
    """The article ids a queued stage message carries (kombu's envelope: a base64 JSON body of Celery's
    `[args, kwargs, embed]`, its one argument a message or a micro-batch); [] for anything else."""
    import base64
    import json

    try:
        envelope = json.loads(message) if isinstance(message, bytes | str) else message
        args = json.loads(base64.b64decode(envelope["body"]))[0]
        body = args[0]
        items = body.get("articles", [body])
        return [str(item["article_id"]) for item in items][:1000]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return []


def horizons(session: Session, oldest: dict[str, set[str]]) -> dict[str, datetime | None]:
    """Per stage, the earliest last progress (database time) of the articles whose messages are the oldest
    still queued or in flight for it: any article whose last progress is later may still have its message
    queued behind them (FIFO), and is not re-sent. None for a stage with nothing queued or in flight."""
    ids = sorted({a for found in oldest.values() for a in found})
    progress: dict[str, datetime] = {}
    if ids:
        last_result = (
            select(func.max(StageResultRow.updated_at))
            .where(StageResultRow.article_id == RawArticleRow.id)
            .scalar_subquery()
        )
        last_sent = (
            select(ReconcileRow.enqueued_at)
            .where(ReconcileRow.article_id == RawArticleRow.id)
            .scalar_subquery()
        )
        for article, got, res, sent in session.execute(
            select(RawArticleRow.id, RawArticleRow.received_at, last_result, last_sent).where(
                RawArticleRow.id.in_(ids)
            )
        ):
            progress[article] = max(_utc(x) for x in (got, res, sent) if x is not None)
    result: dict[str, datetime | None] = {}
    for stage in STAGE_NAMES:
        known = [progress[a] for a in oldest.get(stage, ()) if a in progress]
        result[stage] = min(known) if known else None
    return result


UNACKED_INDEX = "unacked_index"
"""kombu's Redis transport: delivered, unacknowledged messages by delivery time."""
UNACKED = "unacked"
"""kombu's Redis transport: delivered, unacknowledged messages by tag, `[message, exchange, routing key]`."""


def drain_times(
    session: Session,
    client: Any,
    settings: Settings,
    oldest: dict[str, set[str]] | None = None,
    in_flight: dict[str, set[str]] | None = None,
) -> dict[str, float] | None:
    """Per stage, seconds its workers need to finish what is queued and in flight for it now: its backlog
    over its own finished-task rate (0.0 if nothing is waiting; infinite if something is and none of that
    stage's tasks finished lately). A backlog in one stage is judged by that stage's rate, never by the
    sum of all four. None if Redis cannot be asked (nothing is skipped then, as before)."""
    try:
        waiting = backlogs(client, settings, oldest, in_flight)
    except Exception as exc:
        from workers.core.errors import describe

        log.warning("reconcile_backlog_unknown", error=describe(exc))
        return None
    if not any(waiting.values()):
        return dict.fromkeys(STAGE_NAMES, 0.0)
    rates = task_rates(session)
    return {
        stage: (0.0 if not n else n / rates[stage] if rates[stage] > 0 else float("inf"))
        for stage, n in waiting.items()
    }


def drain_time(session: Session, client: Any, settings: Settings, stage: str | None = None) -> float:
    """Seconds to drain `stage`'s backlog (see `drain_times`), or the longest of the stages' when None."""
    times = drain_times(session, client, settings)
    if times is None:
        return 0.0
    return times[stage] if stage is not None else max(times.values())


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
    session.add(
        StageJournalRow(
            article_id=item.article_id,
            stage=item.stage,
            event=RESENT,
            started_at=now,
            ended_at=now,
            detail={"by": "reconciler"},
        )
    )


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
        client = sender.client if sender is not None else _redis(settings)
        oldest: dict[str, set[str]] = {}
        in_flight: dict[str, set[str]] = {}
        with transaction(settings.database_url) as session:
            times = drain_times(session, client, settings, oldest, in_flight)
            report.horizon_by_stage = horizons(session, oldest)
        report.in_flight = in_flight
        report.drain_by_stage = times or dict.fromkeys(STAGE_NAMES, 0.0)
        report.drain_s = max(report.drain_by_stage.values())
        after = ""
        while limit is None or len(report.found) < limit:
            with transaction(settings.database_url) as session:
                page = find_stuck(session, older_than=deadline, after=after, limit=PAGE)
            if not page:
                break
            after = page[-1].article_id
            now = datetime.now(UTC)
            for item in page:
                if limit is not None and len(report.found) >= limit:
                    break
                if item.last_progress is not None and report.may_be_queued(item, now):
                    report.skipped += 1  # its message (or a re-send) may still be queued or in flight
                    continue
                report.found.append(item)
                ok = True
                if sender is not None:
                    ok = sender.send(item)
                    report.sent += ok
                    report.failed += not ok
                if on_item is not None:
                    on_item(item, ok)
    if report.found or report.skipped:
        log.warning(
            "reconcile_pass",
            found=len(report.found),
            sent=report.sent,
            failed=report.failed,
            skipped=report.skipped,
            drain_s=None if report.drain_s == float("inf") else round(report.drain_s, 1),
            drain_by_stage={
                k: (None if v == float("inf") else round(v, 1)) for k, v in report.drain_by_stage.items()
            },
            dry_run=dry_run,
            **{f"from_{k}": v for k, v in report.by_stage().items()},
        )
    return report


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(
        settings.broker_url.unicode_string(), socket_timeout=10, socket_connect_timeout=5
    )


class _Sender:
    """Publishes re-enqueued articles with backpressure and marks them sent."""

    def __init__(self, settings: Settings, app: Any) -> None:
        if app is None:
            from workers.runtime.celery_app import app as celery_app

            app = celery_app
        self.settings, self.app, self.count = settings, app, 0
        self.client = _redis(settings)

    def send(self, item: Stuck) -> bool:
        from workers.runtime.broker import send, wait_below_high_water

        try:
            if self.count % 100 == 0:
                wait_below_high_water(self.client, self.settings.high_water_mark, stage=item.stage)
            send(self.app, StageMessage(article_id=item.article_id, trace_id=item.trace_id), item.stage)
        except Exception as exc:  # the broker is away: the next pass tries again
            from workers.core.errors import describe

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
            from workers.core.errors import describe

            log.warning("reconcile_pass_failed", error=describe(exc))
        done += 1
        if passes is None or done < passes:
            sleep(every)
