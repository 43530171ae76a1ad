"""Producers: persist raw articles once and enqueue the pipeline for them, with backpressure.

`enqueue()` is the programmatic producer; `newsflow enqueue` wraps it. A message carries only
the article id and a trace id (STYLE.md 3); the raw article is persisted first, so a stage can
always re-read it.

Fast and safe: articles go in batches, one multi-row insert-if-absent per batch (RETURNING tells
which ids are new) and one broker connection for the batch's publishes. Only new articles are
published, so re-running a file publishes nothing. While Redis (or the database) is away, refuses
writes (a full Redis: `maxmemory` with `noeviction`) or does not answer (frozen), the producer waits
and says so in one line, and goes on when it is back. Each raw row records when its first message
went out (`raw_articles.published_at`): an article persisted but never published (the producer was
stopped while it waited) is sent by the next run over the same input, not called "already stored",
and found by the reconciler (`workers.ops.reconcile`) meanwhile, so nothing is lost if it is stopped.
"""

import functools
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import redis
from celery import Celery

from schemas import RawArticle, StageMessage
from workers.core.ids import article_id, new_trace_id
from workers.core.logging import get_logger
from workers.core.settings import Settings
from workers.db.engine import transaction
from workers.db.repo import ensure_raw_batch, mark_published, never_published
from workers.runtime.broker import send_batch, wait_below_high_water
from workers.runtime.pipeline import TRANSIENT

log = get_logger(__name__)

WAIT_MAX_S = 5.0
"""Longest pause between two attempts while the broker or the database is away."""

DISK_FULL = ("no space left on device", "diskfull", "database or disk is full", "disk full")
"""Words of a full disk (PostgreSQL's SQLSTATE 53100, the OS, SQLite): said as such, not as "unreachable"."""

SLOW_S = 5.0
"""A call to Redis or the database that has not returned after this long (a frozen server) is said."""


@dataclass
class EnqueueReport:
    """What an enqueue did: articles sent, how many were new, how long it waited for the workers."""

    sent: list[str] = field(default_factory=list)
    new: int = 0
    unsent: int = 0
    """Articles persisted by an earlier run but never published: published now."""
    published: int = 0
    stored: int = 0
    """Articles not sent because they are already stored (an `articles` row); the rest of those not sent
    are in the pipeline (persisted and sent before, by an earlier run or another producer)."""
    waited_s: float = 0.0
    outage_s: float = 0.0


def _batches(
    items: Iterable[RawArticle], size: int, linger_s: float | None = None
) -> Iterator[list[RawArticle]]:
    """`items` in lists of up to `size`. With `linger_s`, a list is also cut when its first item has
    waited that long for the next one (a slow stdin), so a lone article goes out at once; the input is
    then read in a thread, and an error it raises is raised here."""
    if linger_s is None:
        it = iter(items)
        while batch := list(islice(it, size)):
            yield batch
        return
    yield from _lingering(items, size, linger_s)


_END = object()


def _lingering(items: Iterable[RawArticle], size: int, linger_s: float) -> Iterator[list[RawArticle]]:
    import queue
    import threading

    handoff: queue.Queue[Any] = queue.Queue(maxsize=size * 2)
    stop = threading.Event()

    def read() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        handoff.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            handoff.put(exc)

    reader = threading.Thread(target=read, name="newsflow-producer-reader", daemon=True)
    reader.start()
    try:
        batch: list[RawArticle] = []
        deadline = 0.0
        while True:
            timeout = None if not batch else max(deadline - time.monotonic(), 0.0)
            try:
                item = handoff.get(timeout=timeout)
            except queue.Empty:
                yield batch
                batch = []
                continue
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            if not batch:
                deadline = time.monotonic() + linger_s
            batch.append(item)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        stop.set()


def _outage(exc: BaseException, what: str) -> str | None:
    """The one-line description of an outage `exc` shows (unreachable, full, frozen), or None when it is
    not one (a bug, bad data): then it is raised, not waited out."""
    import kombu.exceptions

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, redis.exceptions.OutOfMemoryError) or "maxmemory" in str(e) for e in chain):
        return (
            "Redis is full (used memory above maxmemory, noeviction: writes refused); "
            "waiting and retrying (Ctrl-C stops)"
        )
    if any(marker in f"{type(e).__name__} {e}".lower() for e in chain for marker in DISK_FULL):
        return f"{what} cannot write: its disk is full; waiting and retrying (Ctrl-C stops)"
    retried = (*TRANSIENT, OSError, kombu.exceptions.OperationalError)
    if isinstance(exc, retried) or (
        isinstance(exc, kombu.exceptions.BatchPublishError) and any(isinstance(e, retried) for e in chain)
    ):
        return f"{what} unreachable ({type(exc).__name__}); waiting and retrying (Ctrl-C stops)"
    return None


class _Outage:
    """Waits out an unreachable, full or frozen broker or database with one message per outage, not per
    attempt: an error that means an outage is retried with backoff; a call that does not return within
    SLOW_S (a frozen server holds the connection open) is said to be waited for."""

    def __init__(
        self,
        say: Callable[[str], None] | None,
        slow_s: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.say = say
        self.slow_s = SLOW_S if slow_s is None else slow_s
        self.stop = stop
        """Asked between attempts: True ends the wait with KeyboardInterrupt (a held-back Ctrl-C)."""
        self.seconds = 0.0

    def _tell(self, line: str) -> None:
        if self.say is not None:
            self.say(line)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.stop is not None and self.stop():
                raise KeyboardInterrupt
            time.sleep(min(left, 0.1))

    def run(self, what: str, action: Callable[[], Any]) -> Any:
        delay, started = 0.5, None
        while True:
            began = time.monotonic()
            frozen = threading.Event()

            def notice(what: str = what, frozen: threading.Event = frozen) -> None:
                frozen.set()
                log.info("producer_waiting", target=what, error="no answer")
                self._tell(f"{what} not answering for {self.slow_s:.0f}s; waiting (Ctrl-C stops)")

            timer = threading.Timer(self.slow_s, notice)
            timer.daemon = True
            timer.start()
            try:
                result = action()
            except Exception as exc:
                timer.cancel()
                line = _outage(exc, what)
                if line is None:
                    raise
                if started is None:
                    started = began
                    from workers.core.errors import describe

                    log.info("producer_waiting", target=what, error=describe(exc))
                    self._tell(line)
                self._sleep(delay)
                delay = min(delay * 2, WAIT_MAX_S)
                continue
            finally:
                timer.cancel()
            if frozen.is_set() and started is None:
                started = began
            if started is not None:
                waited = time.monotonic() - started
                self.seconds += waited
                log.info("producer_resumed", target=what, waited_s=round(waited, 1))
                self._tell(f"{what} reachable again after {waited:.0f}s; going on")
            return result


def _say(line: str) -> None:
    print(f"newsflow enqueue: {line}", file=sys.stderr, flush=True)


def enqueue(
    articles: Iterable[RawArticle],
    settings: Settings,
    app: Celery,
    *,
    on_sent: Callable[[str], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    batch_size: int | None = None,
) -> EnqueueReport:
    """Persist each raw article (once) and enqueue the new ones, waiting while the clean queue is full
    and while Redis or the database is unreachable.

    Idempotent per article: the same article enqueued twice is stored once and published once.
    `on_sent` gets every article id (new or already known) in input order.
    """
    client = redis.Redis.from_url(settings.broker_url.unicode_string(), socket_timeout=10)
    report = EnqueueReport()
    on_wait = on_wait or _say
    outage = _Outage(on_wait)
    size = batch_size or settings.producer_batch
    step = settings.batch_size
    for batch in _batches(articles, size, settings.batch_linger_ms / 1000):
        # The mark counts messages; a batch goes out as ceil(len / batch_size) micro-batch messages.
        room = max(settings.high_water_mark - -(-len(batch) // step), 0)
        report.waited_s += outage.run(
            "Redis",
            functools.partial(
                wait_below_high_water, client, room, on_wait=on_wait, shown=settings.high_water_mark
            ),
        )
        msgs = [StageMessage(article_id=article_id(raw), trace_id=new_trace_id()) for raw in batch]

        def insert(
            msgs: list[StageMessage] = msgs, batch: list[RawArticle] = batch
        ) -> tuple[set[str], set[str], set[str]]:
            with transaction(settings.database_url) as session:
                new = ensure_raw_batch(
                    session, [(m.article_id, raw, m.trace_id) for m, raw in zip(msgs, batch, strict=True)]
                )
                unsent = never_published(session, {m.article_id for m in msgs} - new)
                return new, unsent, stored_among(session, {m.article_id for m in msgs} - new - unsent)

        new_ids, unsent_ids, stored_ids = outage.run("the database", insert)
        report.new += len(new_ids)
        report.unsent += len(unsent_ids)
        fresh: dict[str, StageMessage] = {}
        for msg in msgs:
            if (msg.article_id in new_ids or msg.article_id in unsent_ids) and msg.article_id not in fresh:
                fresh[msg.article_id] = msg
        fresh_msgs = list(fresh.values())
        pending = [fresh_msgs[i : i + step] for i in range(0, len(fresh_msgs), step)]
        while pending:
            pending = outage.run("Redis", functools.partial(_publish, app, pending))
        if fresh:
            outage.run("the database", functools.partial(_mark, settings.database_url, list(fresh)))
        report.published += len(fresh)
        for msg in msgs:
            report.sent.append(msg.article_id)
            report.stored += msg.article_id in stored_ids
            if on_sent is not None:
                on_sent(msg.article_id)
    report.outage_s = outage.seconds
    log.info(
        "enqueue_done",
        sent=len(report.sent),
        new=report.new,
        unsent=report.unsent,
        published=report.published,
    )
    return report


def stored_among(session: Any, ids: Iterable[str]) -> set[str]:
    """The ids among `ids` that are stored (have an `articles` row); read-only."""
    from sqlalchemy import select

    from workers.db.models import ArticleRow

    wanted = list(set(ids))
    if not wanted:
        return set()
    return set(session.scalars(select(ArticleRow.id).where(ArticleRow.id.in_(wanted))))


def _mark(database_url: str, ids: list[str]) -> None:
    with transaction(database_url) as session:
        mark_published(session, ids)


def _publish(app: Celery, batches: list[list[StageMessage]]) -> list[list[StageMessage]]:
    """Publish each micro-batch as one message, all over one broker connection in one pipelined round trip;
    returns those left (empty when all went out). A failure raises with the list intact: the retry publishes
    them all again, and a message that went out twice is harmless (the stages are idempotent)."""
    # kombu's publish batch: the LPUSHes go out in one pipelined round trip per batch (kombu disables it,
    # publishing one by one, if the transport retries timeouts: a replayed pipeline could double-publish).
    with app.producer_or_acquire() as producer, producer.batch(max_size=max(len(batches), 1)):
        for batch in batches:
            send_batch(app, batch, producer=producer, retry=False)
    batches.clear()
    return batches
