"""Feeding archives to the workers: `newsflow backfill` (resumable) and `newsflow enqueue` (one pass).

Each input file is read as positioned items (`workers.ingest.archives`). For every valid raw article the
producer's contract holds: persist once (`repo.ensure_raw`), then publish (`producer.send`). An
article whose raw record already exists is counted as already stored and NOT published again
unless `reprocess=True`, so re-running a dump re-runs no stage. "Already stored" counts only articles
really stored (an `articles` row); one persisted and sent by an earlier run or another producer but not
stored yet is "in the pipeline", not sent again either.

A backfill keeps a checkpoint per input file (absolute path, the offset after the last item handled,
the counts) in `backfill_checkpoints`, written every `checkpoint_every` items, at the end of a file
and when interrupted. Running the same command again continues after the checkpoint; the items
between the last checkpoint and a crash are read again, found already stored and not re-sent.
Throttled by `rate` (articles per second) and by the clean queue's high-water mark.

A process stopped (Ctrl-C, also while it waits for a full Redis) or killed (SIGKILL, power loss)
between persisting articles and publishing them leaves them persisted with no stage and no
`raw_articles.published_at`: the next run over the same input (its checkpoint is kept before them)
sends them ("unsent", not "already stored"), and the reconciler (`workers.ops.reconcile`) finds them from
the database meanwhile. While Redis is away, full or frozen, publishing waits and says so
(`producer._Outage`).

The summary counts what this run did: a resumed file's earlier runs are reported apart
(`earlier_read`), and a file finished by an earlier run is "already done" (`already_done`), never
counted again as new.
"""

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas import RawArticle, StageMessage
from workers.core.ids import article_id, new_trace_id
from workers.core.logging import get_logger
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction
from workers.db.models import BackfillCheckpointRow
from workers.ingest import archives
from workers.ingest.archives import Item
from workers.runtime.pipeline import STAGE_NAMES

log = get_logger(__name__)

THROTTLE_EVERY = 100
"""Articles published between two looks at the queue depth."""


@dataclass
class FeedReport:
    """What a feed did; `skipped` counts by kind (revisit, not_html, non_200, ...)."""

    read: int = 0
    new: int = 0
    unsent: int = 0
    """Articles an earlier run persisted but never published: published by this run."""
    already_stored: int = 0
    """Articles already stored (an `articles` row): not sent again."""
    in_pipeline: int = 0
    """Articles persisted and sent before (by an earlier run or another producer), not stored yet: not sent
    again (they are on their way; the reconciler re-sends one whose message was lost)."""
    resent: int = 0
    rejected: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files: int = 0
    files_already_done: int = 0
    resumed: int = 0
    earlier_read: int = 0
    """Records of resumed files read by earlier runs (not counted above)."""
    already_done: list[str] = field(default_factory=list)
    """Files an earlier backfill finished: not read again (`--restart` reads them)."""
    waited_s: float = 0.0
    article_ids: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts as a JSON-able dict (without the id list)."""
        data = asdict(self)
        data.pop("article_ids")
        data["waited_s"] = round(self.waited_s, 1)
        return data

    def add(self, counts: dict[str, Any]) -> None:
        """Add counts (another report's `summary()`) to this report."""
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + int(counts.get(name, 0)))
        for kind, n in (counts.get("skipped") or {}).items():
            self.skipped[kind] = self.skipped.get(kind, 0) + int(n)


COUNTED = ("read", "new", "unsent", "already_stored", "in_pipeline", "resent", "rejected")
"""The counts a feed keeps per file (checkpoints) and in its summary."""

_STOP = threading.Event()
"""Set by a Ctrl-C held back by `deferred_interrupt`: a wait (backpressure, rate, an outage) then ends at
once with KeyboardInterrupt instead of holding the operator until the server is back."""


def stop_requested() -> bool:
    """True once a held-back Ctrl-C asks the current block to give up its wait."""
    return _STOP.is_set()


def interruptible_sleep(seconds: float) -> None:
    """Sleep, but raise KeyboardInterrupt as soon as a held-back Ctrl-C asks to stop."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if _STOP.is_set():
            raise KeyboardInterrupt
        time.sleep(min(left, 0.1))


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) until the block is done, so handling one item is never cut in half;
    a wait inside the block (`interruptible_sleep`, an outage) gives up at once instead."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, _frame: object) -> None:
        caught.append(signum)
        _STOP.set()

    _STOP.clear()
    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _STOP.clear()
    if caught:
        raise KeyboardInterrupt


@dataclass
class Feeder:
    """Persists and publishes articles with backpressure and an optional rate limit."""

    settings: Settings
    app: Any
    reprocess: bool = False
    rate: float | None = None
    on_wait: Callable[[float], None] | None = None
    say: Callable[[str], None] | None = None
    """Where the one-line outage messages go (waiting for Redis or the database)."""
    ignore_unknown: bool = False
    """Drop JSON fields the schema does not know instead of rejecting the record."""
    follow_symlinks: bool = False
    """Read files through symlinks that lead out of an input directory (skipped, and said, by default)."""
    report: FeedReport = field(default_factory=FeedReport)
    _client: Any = None
    _waiter: Any = None
    _counted_outage: float = 0.0
    _started: float = field(default_factory=time.monotonic)
    _published: int = 0
    _pending: list[StageMessage] = field(default_factory=list)
    _pending_since: float = 0.0

    def feed(self, raw: RawArticle) -> tuple[str, str]:
        """Persist one article and publish it if new, never published before, or `reprocess`; returns
        (id, new|unsent|resent|already_stored|in_pipeline)."""
        from workers.db.repo import never_published
        from workers.ingest.producer import stored_among
        from workers.runtime.broker import wait_below

        if self._client is None:
            import redis

            self._client = redis.Redis.from_url(
                self.settings.broker_url.unicode_string(), socket_connect_timeout=5
            )
            self._client.ping()  # fail fast (and clearly) before anything is persisted
        msg = StageMessage(article_id=article_id(raw), trace_id=new_trace_id())
        # Wait (rate, high-water mark) before persisting. An interrupt at any point is safe: an article
        # persisted and not yet published has no `published_at`, and the next run over the same input
        # (which resumes before it: see `backfill`) sends it.
        if self._published % THROTTLE_EVERY == 0:
            self.report.waited_s += wait_below(
                self._client, self.settings.high_water_mark, stage=STAGE_NAMES[0], on_wait=self._waiting
            )
        self._throttle()

        def persist() -> tuple[bool, bool, bool]:
            with transaction(self.settings.database_url) as session:
                new = repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
                unsent = not new and bool(never_published(session, [msg.article_id]))
                stored = not new and not unsent and bool(stored_among(session, [msg.article_id]))
                return new, unsent, stored

        new, unsent, stored = self._outage.run("the database", persist)
        if new or unsent or self.reprocess:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append(msg)
            self._published += 1
        outcome = (
            "new"
            if new
            else "unsent"
            if unsent
            else "resent"
            if self.reprocess
            else "already_stored"
            if stored
            else "in_pipeline"
        )
        setattr(self.report, outcome, getattr(self.report, outcome) + 1)
        linger = self.settings.batch_linger_ms / 1000
        if len(self._pending) >= self.settings.batch_size or time.monotonic() - self._pending_since > linger:
            self.flush()
        return msg.article_id, outcome

    def _waiting(self, waited: float) -> None:
        if _STOP.is_set():
            raise KeyboardInterrupt
        if self.on_wait is not None:
            self.on_wait(waited)

    @property
    def _outage(self) -> Any:
        from workers.ingest.producer import _Outage

        if self._waiter is None:
            self._waiter = _Outage(self.say, stop=stop_requested)
        return self._waiter

    def flush_once(self) -> None:
        """One attempt to publish what is pending, no waiting (on the way out after Ctrl-C): what cannot go
        out now stays pending, persisted and unsent."""
        from workers.ingest.producer import _mark
        from workers.runtime.broker import send_batch

        try:
            while self._pending:
                batch = self._pending[: self.settings.batch_size]
                send_batch(self.app, batch, retry=False)
                _mark(self.settings.database_url, [m.article_id for m in batch])
                del self._pending[: len(batch)]
        except Exception as exc:
            log.warning("backfill_publish_failed", pending=len(self._pending), error=type(exc).__name__)

    def flush(self) -> None:
        """Publish the articles persisted since the last flush, as micro-batches of `batch_size` (one
        message each), and record them as published. While Redis is away or full it waits and says so;
        if it is stopped meanwhile, those articles are persisted and unsent: the next run over the same
        input and the reconciler (`newsflow reconcile`) send them."""
        from workers.ingest.producer import _mark
        from workers.runtime.broker import send_batch

        # A Ctrl-C ends a wait for a full or away Redis at once (`stop_requested`). What is left pending stays
        # persisted and unsent, and the checkpoint stays before it (`backfill`), so it is sent next run.
        while self._pending:
            batch = self._pending[: self.settings.batch_size]
            self._outage.run("Redis", lambda batch=batch: send_batch(self.app, batch, retry=False))
            self._outage.run(
                "the database",
                lambda batch=batch: _mark(self.settings.database_url, [m.article_id for m in batch]),
            )
            del self._pending[: len(batch)]
        self.report.waited_s += self._outage.seconds - self._counted_outage
        self._counted_outage = self._outage.seconds

    def _throttle(self) -> None:
        if self.rate:
            due = self._started + self._published / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                interruptible_sleep(delay)


def count_rejected(feeder: Feeder, item: Item, on_rejected: Callable[[Item], None] | None) -> None:
    """Count a rejected item: in the report, in `newsflow_producer_rejected_total` (by field), to the caller."""
    from workers.ingest.readers import Problem, Record
    from workers.runtime.metrics import counted

    feeder.report.rejected += 1
    # The metric's labels are bare names: "(record)" is counted as `record`, "(file)"/"(archive)" as other.
    problems = tuple(Problem(p.field.strip("()"), p.reason) for p in item.problems)
    for _ in counted([Record(item.origin, None, problems)], feeder.settings):
        pass
    if on_rejected is not None:
        on_rejected(item)


NOT_RECORDS = frozenset({"unsupported_file", "symlink_outside"})
"""Skips that are files not read, not records."""


def count_skipped(feeder: Feeder, item: Item) -> bool:
    """Count an item as read (unless it is a file not read) and, if it is a skip, by its kind, saying why
    when it carries a reason (a symlink out of its directory); True if it was a skip."""
    report = feeder.report
    if item.skipped not in NOT_RECORDS:
        report.read += 1
    if item.skipped is None:
        return False
    report.skipped[item.skipped] = report.skipped.get(item.skipped, 0) + 1
    if item.problems and feeder.say is not None:
        feeder.say(f"skipped {item.origin}: {item.problems[0].reason}")
    return True


def handle(feeder: Feeder, item: Item, on_rejected: Callable[[Item], None] | None) -> str | None:
    """Count one item and feed it if it is an article; returns the article id or None."""
    if count_skipped(feeder, item):
        return None
    if item.article is None:
        count_rejected(feeder, item, on_rejected)
        return None
    found, _ = feeder.feed(item.article)
    return found


def enqueue(
    paths: Iterable[str],
    feeder: Feeder,
    *,
    source: str,
    on_rejected: Callable[[Item], None] | None = None,
    on_article: Callable[[str], None] | None = None,
) -> FeedReport:
    """One pass over the inputs (`-` is stdin), no checkpoints: what `newsflow enqueue` runs.

    Without `reprocess` or a rate, the articles go through the batched producer (`producer.enqueue`: one
    insert-if-absent per batch, micro-batch messages, pipelined publishes); the result is the same."""
    if not feeder.reprocess and not feeder.rate:
        return _enqueue_batched(paths, feeder, source=source, on_rejected=on_rejected, on_article=on_article)
    seen: list[Path] = []
    for path in paths:
        for item in _stream(path, source, feeder.ignore_unknown, seen, feeder.follow_symlinks):
            with deferred_interrupt():
                found = handle(feeder, item, on_rejected)
                if path == "-":
                    feeder.flush()  # a line from a pipe goes out at once, not when the next one comes
            if found is not None:
                feeder.report.article_ids.append(found)
                if on_article is not None:
                    on_article(found)
    feeder.flush()
    feeder.report.files += len(seen)
    return feeder.report


def _stream(
    path: str,
    source: str,
    ignore_unknown: bool = False,
    seen: list[Path] | None = None,
    follow_symlinks: bool = False,
) -> Iterable[Item]:
    """The items of one input argument (`-` is JSON lines on stdin); `seen` collects the files read."""
    return archives.stream(
        [path], source=source, ignore_unknown=ignore_unknown, files_seen=seen, follow_symlinks=follow_symlinks
    )


def _enqueue_batched(
    paths: Iterable[str],
    feeder: Feeder,
    *,
    source: str,
    on_rejected: Callable[[Item], None] | None,
    on_article: Callable[[str], None] | None,
) -> FeedReport:
    import redis
    from sqlalchemy import text

    from workers.ingest.producer import enqueue as produce

    # Fail fast, in one line, when a service is down or refuses us at the start; an outage that begins
    # once articles are flowing is waited out by the producer (and said so).
    redis.Redis.from_url(feeder.settings.broker_url.unicode_string(), socket_connect_timeout=5).ping()
    with transaction(feeder.settings.database_url) as session:
        session.execute(text("SELECT 1"))
    report = feeder.report
    seen: list[Path] = []

    def articles() -> Iterator[RawArticle]:
        for path in paths:
            for item in _stream(path, source, feeder.ignore_unknown, seen, feeder.follow_symlinks):
                if count_skipped(feeder, item):
                    continue
                if item.article is None:
                    count_rejected(feeder, item, on_rejected)
                else:
                    yield item.article

    def sent(found: str) -> None:
        report.article_ids.append(found)
        if on_article is not None:
            on_article(found)

    done = produce(articles(), feeder.settings, feeder.app, on_sent=sent, on_wait=feeder.say)
    report.files += len(seen)
    report.new += done.new
    report.unsent += done.unsent
    report.already_stored += done.stored
    report.in_pipeline += len(done.sent) - done.new - done.unsent - done.stored
    report.waited_s += done.waited_s
    return report


KEY_MAX = 1000
"""Longest checkpoint key (`backfill_checkpoints.path`): a longer absolute path is keyed by its hash."""


def checkpoint_key(path: Path) -> str:
    """A file's checkpoint key: its absolute path, or `sha256:HEX` of it when longer than KEY_MAX
    characters (a path of 4,000 characters is a valid path; it must not stop a backfill)."""
    import hashlib

    key = str(path.resolve())
    if len(key) <= KEY_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def _load_checkpoint(database_url: str, key: str) -> BackfillCheckpointRow | None:
    with transaction(database_url) as session:
        return session.get(BackfillCheckpointRow, key)


def _save_checkpoint(
    database_url: str, key: str, *, size: int, offset: int, records: int, done: bool, counts: dict[str, Any]
) -> None:
    with transaction(database_url) as session:
        row = session.get(BackfillCheckpointRow, key)
        if row is None:
            session.add(
                BackfillCheckpointRow(
                    path=key, size=size, offset=offset, records=records, done=done, counts=counts
                )
            )
        else:
            row.size, row.offset, row.records, row.done, row.counts = size, offset, records, done, counts
            row.updated_at = datetime.now(UTC)


def _counts(report: FeedReport) -> dict[str, Any]:
    return {**{name: getattr(report, name) for name in COUNTED}, "skipped": dict(report.skipped)}


def _file_counts(report: FeedReport, snapshot: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """One file's counts: its checkpoint's (`base`) plus what this run added since `snapshot`."""
    counts: dict[str, Any] = {
        name: int(base.get(name, 0)) + getattr(report, name) - snapshot[name] for name in COUNTED
    }
    skipped = {k: int(v) for k, v in (base.get("skipped") or {}).items()}
    for kind, n in report.skipped.items():
        skipped[kind] = skipped.get(kind, 0) + n - snapshot["skipped"].get(kind, 0)
    counts["skipped"] = {k: v for k, v in skipped.items() if v}
    return counts


def backfill(
    paths: Iterable[str],
    feeder: Feeder,
    *,
    source: str,
    restart: bool = False,
    checkpoint_every: int = 50,
    on_rejected: Callable[[Item], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> FeedReport:
    """Feed every input file from its checkpoint; `restart` ignores checkpoints. Resumable, idempotent.

    The report counts this run only: a resumed file's earlier records are in `earlier_read`, a finished
    file is listed in `already_done`. `on_progress(bytes)` is called after each item with the bytes of
    input consumed since the last call.
    """
    db = feeder.settings.database_url
    report = feeder.report
    for entry in archives.entries(paths, follow_symlinks=feeder.follow_symlinks):
        path = entry.path
        if _not_a_file(feeder, entry, source, on_rejected):
            continue
        report.files += 1
        key = checkpoint_key(path)
        size = path.stat().st_size
        checkpoint = None if restart else _load_checkpoint(db, key)
        start, records = 0, 0
        base: dict[str, Any] = {}
        if checkpoint is not None and checkpoint.size == size:
            if checkpoint.done:
                report.files_already_done += 1
                report.already_done.append(str(path))
                log.info("backfill_already_done", path=key, records=checkpoint.records)
                if on_progress is not None:
                    on_progress(size)
                continue
            start, records, base = checkpoint.offset, checkpoint.records, dict(checkpoint.counts)
            report.resumed += 1
            report.earlier_read += int(base.get("read", records))
            log.info("backfill_resumed", path=key, offset=start, records=records)
            if on_progress is not None:
                on_progress(_progress_bytes(path, start, size))
        seen = _feed_file(
            feeder, path, source=source, key=key, size=size, start=start, records=records, base=base,
            checkpoint_every=checkpoint_every, on_rejected=on_rejected, on_progress=on_progress,
        )  # fmt: skip
        log.info("backfill_file_done", path=key, records=records + seen)
    return report


def _feed_file(
    feeder: Feeder,
    path: Path,
    *,
    source: str,
    key: str,
    size: int,
    start: int,
    records: int,
    base: dict[str, Any],
    checkpoint_every: int,
    on_rejected: Callable[[Item], None] | None,
    on_progress: Callable[[int], None] | None,
) -> int:
    """Feed one file from offset `start`, checkpointing as it goes; returns the items handled."""
    db = feeder.settings.database_url
    report = feeder.report
    snapshot = _counts(report)
    offset, seen, done, interrupted = start, 0, False, False
    flushed = start  # the offset after the last item whose article is published (or needs none)
    last_bytes = _progress_bytes(path, start, size)
    try:
        for item in archives.items(path, source=source, start=start, ignore_unknown=feeder.ignore_unknown):
            with deferred_interrupt():  # an item is handled and counted whole, or not at all
                handle(feeder, item, on_rejected)
                offset, seen = item.next_offset or offset, seen + 1
                if not feeder._pending:
                    flushed = offset
            if on_progress is not None:
                now_bytes = _progress_bytes(path, offset, size)
                on_progress(max(0, now_bytes - last_bytes))
                last_bytes = now_bytes
            if seen % checkpoint_every == 0:
                with deferred_interrupt():
                    feeder.flush()
                    flushed = offset
                _save_checkpoint(
                    db, key, size=size, offset=offset, records=records + seen, done=False,
                    counts=_file_counts(report, snapshot, base),
                )  # fmt: skip
        done = True
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # Also when interrupted (Ctrl-C, an error): the next run continues after the last item published.
        # Articles persisted but not published (a Ctrl-C while Redis was full) are read again by the next
        # run, found never published and sent (the reconciler sends them meanwhile).
        if interrupted:
            feeder.flush_once()
        else:
            try:
                feeder.flush()
            except Exception as exc:
                log.warning("backfill_publish_failed", pending=len(feeder._pending), error=type(exc).__name__)
        if not feeder._pending:
            flushed = offset
        _save_checkpoint(
            db, key, size=size, offset=flushed, records=records + seen, done=done and flushed == offset,
            counts=_file_counts(report, snapshot, base),
        )  # fmt: skip
    return seen


def _not_a_file(feeder: Feeder, entry: Any, source: str, on_rejected: Callable[[Item], None] | None) -> bool:
    """Count an entry that is not a file to read (a file of unknown type in a directory: skipped; a FIFO,
    socket, symlink loop...: one rejected line); True if it was one. No checkpoint is kept for it."""
    skip = archives.skipped_item(entry)
    if skip is not None:
        handle(feeder, skip, on_rejected)
        return True
    if entry.problem is not None or entry.path.is_dir():
        for item in archives.items(entry.path, source=source):
            handle(feeder, item, on_rejected)
        return True
    return False


def _progress_bytes(path: Path, offset: int, size: int) -> int:
    """Input bytes consumed: the offset itself for WARC and plain files; for gzipped JSON lines the offset
    is into the decompressed stream, so it is capped at the file size (the bar ends full either way)."""
    return min(offset, size) if size else 0
