"""Embedded mode: the same pipeline steps, run in-process in micro-batches, no servers needed.

Articles go through the stages in batches of `NEWSFLOW_BATCH_SIZE`, like the workers' messages: each
stage reads, runs and writes a batch together (`pipeline.run_batch`), an article that fails alone is
dead-lettered alone, and a batch that cannot finish as a whole (its time or memory bound, an outage, a
statement the database refuses) is run again one article at a time, so the one at fault is found.

Each step runs under the workers' bounds: `task_soft_time_limit` seconds (a SIGALRM timer, as
Celery's soft limit) and at most `worker_max_memory_per_child` KiB of memory more than the process
had when the step started (an address-space limit, so one huge allocation fails at once instead of
swapping the machine). An article that exceeds a bound is dead-lettered (`timeout`,
`memory_limit`) and the run goes on with the next one.
"""

import contextlib
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

import structlog

from schemas import RawArticle, StageMessage
from workers.core.errors import PermanentError, TransientError, describe, reason_of
from workers.core.ids import article_id, new_trace_id
from workers.core.logging import get_logger
from workers.db.engine import transaction
from workers.runtime import journal
from workers.runtime.pipeline import (
    STAGE_NAMES,
    Context,
    dead_letter,
    ended,
    run_batch,
    run_step,
    stages_from,
)

log = get_logger(__name__)

TRANSIENT_ATTEMPTS = 3


class StepTimeout(BaseException):
    """A step ran past the soft time limit. A BaseException, so no `except Exception` in a library
    swallows it on the way out (Celery's SoftTimeLimitExceeded has that weakness)."""


def _address_space() -> int | None:
    """Bytes of virtual memory the process maps now (Linux), or None where that cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise StepTimeout


REPEAT_S = 0.5
"""After the soft limit fires, it fires again every REPEAT_S seconds until the step is left: a
library that swallows the first exception (in a finaliser, a `__del__`) does not run on unbounded."""


def _disarm(timer: tuple[float, float], started: float) -> None:
    """Stop our timer and give back the one that was set before (pytest-timeout, an outer bound)."""
    remaining, interval = timer
    while True:
        try:
            if remaining > 0:
                left = max(remaining - (time.monotonic() - started), 0.001)
                signal.setitimer(signal.ITIMER_REAL, left, interval)
            else:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except StepTimeout:
            continue  # our repeating alarm fired just now; disarm again
        else:
            return


@contextlib.contextmanager
def bounded(seconds: float, memory_kib: int) -> Iterator[None]:
    """Run the block with a soft time limit (StepTimeout) and a memory allowance (MemoryError).

    The time limit needs the main thread (signals) and yields to an outer SIGALRM timer that is
    due sooner; elsewhere only the memory bound applies. Both are lifted on the way out, whatever
    happened inside, and an outer timer is restored.
    """
    outer = (
        signal.getitimer(signal.ITIMER_REAL)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    timed = outer is not None and not (0 < outer[0] <= seconds)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = _address_space()
    limited = False
    if mapped is not None:
        allowed = mapped + memory_kib * 1024
        if hard == resource.RLIM_INFINITY or allowed < hard:
            resource.setrlimit(resource.RLIMIT_AS, (allowed, hard))
            limited = True
    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, _on_alarm) if timed else None
    try:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
        yield
    finally:
        if timed and outer is not None:
            _disarm(outer, started)
            signal.signal(signal.SIGALRM, previous_handler)
        if limited:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _warm_up(stage: str, ctx: Context) -> None:
    """Import a stage's libraries and load its model outside the bounds: a one-off per process that a
    worker pays at start-up, not a cost of the article being processed."""
    from importlib import import_module

    with contextlib.suppress(ImportError):
        import_module(f"workers.stages.{stage}")
    if stage == "tag":
        from workers.stages import tag as tag_stage

        with contextlib.suppress(Exception):  # a missing model is the step's dead letter to report
            tag_stage.load_model(ctx.settings.tagger_model)


@dataclass(frozen=True)
class Failure:
    """An article the embedded run dead-lettered, and why."""

    article_id: str
    stage: str
    reason: str
    error: str
    dead_letter_id: int


@dataclass
class EmbeddedReport:
    """What an embedded run did: articles stored (in input order), pages that ended `not_article`, failures."""

    stored: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    not_articles: list[str] = field(default_factory=list)


def process(
    ctx: Context, msg: StageMessage, start: str = STAGE_NAMES[0], ends: set[str] | None = None
) -> Failure | None:
    """Run the stages from `start` for one persisted article; a failure is dead-lettered and returned.
    An article whose stage ends it (`not_article`) goes no further; its id is added to `ends`."""
    ends = set() if ends is None else ends
    for stage in stages_from(start):
        failure = _run_one(ctx, stage, msg, ends)
        if failure is not None or msg.article_id in ends:
            return failure
    return None


def process_batch(ctx: Context, msgs: list[StageMessage], ends: set[str] | None = None) -> dict[str, Failure]:
    """Run every stage for a batch of persisted articles; returns the dead-lettered ones by id. The ids
    of articles a stage ended (`not_article`) are added to `ends`; no later stage runs for them."""
    failures: dict[str, Failure] = {}
    ends = set() if ends is None else ends
    alive = list(msgs)
    for stage in STAGE_NAMES:
        if not alive:
            break
        if len(alive) == 1:
            found = _run_one(ctx, stage, alive[0], ends)
            failed = {} if found is None else {alive[0].article_id: found}
        else:
            failed = _run_many(ctx, stage, alive, ends)
        failures.update(failed)
        alive = [m for m in alive if m.article_id not in failed and m.article_id not in ends]
    return failures


def _run_many(ctx: Context, stage: str, msgs: list[StageMessage], ends: set[str]) -> dict[str, Failure]:
    """One stage for a batch under one bound; if the batch cannot finish as a whole, one at a time."""
    _warm_up(stage, ctx)
    limits = (ctx.settings.task_soft_time_limit, ctx.settings.worker_max_memory_per_child)
    started = time.perf_counter()
    began = datetime.now(UTC)
    try:
        with bounded(*limits):
            results = run_batch(stage, ctx, msgs)
    except (StepTimeout, MemoryError, Exception) as exc:
        log.info("batch_split", stage=stage, articles=len(msgs), why=type(exc).__name__)
        return {m.article_id: f for m in msgs if (f := _run_one(ctx, stage, m, ends)) is not None}
    failures: dict[str, Failure] = {}
    for msg, result in zip(msgs, results, strict=True):
        if isinstance(result, Exception):
            with structlog.contextvars.bound_contextvars(article_id=msg.article_id, trace_id=msg.trace_id):
                failures[msg.article_id] = _fail(
                    ctx, stage, msg, result, reason=reason_of(result), attempts=1
                )
        elif ended(result):
            ends.add(msg.article_id)
    elapsed = round((time.perf_counter() - started) * 1000)
    journal.record_attempts(
        ctx.database_url,
        [
            {
                "article_id": msg.article_id,
                "stage": stage,
                "attempt": 1,
                "event": "dead_letter" if isinstance(result, Exception) else "ok",
                "started_at": began,
                "duration_ms": elapsed,
                "version": None if isinstance(result, Exception) else result.get("version"),
                "error": result if isinstance(result, Exception) else None,
            }
            for msg, result in zip(msgs, results, strict=True)
        ],
    )
    log.debug(
        "batch_done",
        stage=stage,
        articles=len(msgs),
        failed=len(failures),
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
    return failures


def _run_one(ctx: Context, stage: str, msg: StageMessage, ends: set[str]) -> Failure | None:
    """One stage for one article, under the bounds, with a few retries of a transient failure."""
    limits = (ctx.settings.task_soft_time_limit, ctx.settings.worker_max_memory_per_child)
    _warm_up(stage, ctx)
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        began = datetime.now(UTC)
        error: BaseException
        try:
            with bounded(*limits):
                outcome = run_step(stage, ctx, msg)
        except StepTimeout:
            error, reason = TimeoutError(f"{stage} ran past the soft time limit of {limits[0]}s"), "timeout"
        except MemoryError:
            error, reason = MemoryError(f"{stage} needed more than {limits[1]} KiB of memory"), "memory_limit"
        except TransientError as exc:
            if attempt < TRANSIENT_ATTEMPTS:
                _journal_one(ctx, stage, msg, attempt, "retry", began, started, error=exc)
                time.sleep(0.2 * 2**attempt)
                continue
            error, reason = exc, "retries_exhausted"
        except PermanentError as exc:
            error, reason = exc, exc.reason
        except Exception as exc:
            # The class and a cleaned message, never the exception's own text (SQL parameters are article text).
            log.error(  # noqa: TRY400 -- a traceback would print the message with its parameters
                "stage_unexpected_error", stage=stage, error_class=type(exc).__name__, error=describe(exc)
            )
            error, reason = exc, "unexpected"
        else:
            log.debug(
                "stage_done",
                stage=stage,
                duration_ms=round((time.perf_counter() - started) * 1000),
                **outcome,
            )
            _journal_one(ctx, stage, msg, attempt, "ok", began, started, version=outcome.get("version"))
            if ended(outcome):
                ends.add(msg.article_id)
            return None
        _journal_one(ctx, stage, msg, attempt, "dead_letter", began, started, error=error)
        return _fail(ctx, stage, msg, error, reason=reason, attempts=attempt)


def _journal_one(  # noqa: PLR0917 -- the attempt's facts, in the order they are known
    ctx: Context,
    stage: str,
    msg: StageMessage,
    attempt: int,
    event: str,
    began: datetime,
    started: float,
    *,
    version: str | None = None,
    error: BaseException | None = None,
) -> None:
    """One stage attempt in the journal `newsflow trace` reads (never fails the run)."""
    journal.record_attempts(
        ctx.database_url,
        [
            {
                "article_id": msg.article_id,
                "stage": stage,
                "attempt": attempt,
                "event": event,
                "started_at": began,
                "duration_ms": round((time.perf_counter() - started) * 1000),
                "version": version,
                "error": error,
            }
        ],
    )


def _fail(
    ctx: Context, stage: str, msg: StageMessage, exc: BaseException, *, reason: str, attempts: int
) -> Failure:
    dead_id = dead_letter(
        ctx, stage=stage, msg=msg, payload=msg.model_dump_json(), error=exc, reason=reason, attempts=attempts
    )
    log.warning("article_dead_lettered", stage=stage, reason=reason, error_class=type(exc).__name__)
    return Failure(msg.article_id, stage, reason, str(exc)[:300], dead_id)


def run(
    articles: Iterable[RawArticle],
    ctx: Context,
    *,
    on_done: Callable[[str, Failure | None], None] | None = None,
) -> EmbeddedReport:
    """Persist and process the articles in-process, in batches of `batch_size`; idempotent like the
    distributed pipeline. `on_done` is called once per article, in input order.

    An article already done in this run (the same id earlier in the input) is not run again: it gets
    the outcome of its first run, so 100,000 copies of one line cost one pipeline run, not 100,000."""
    from itertools import islice

    from workers.db.repo import ensure_raw_batch

    report = EmbeddedReport()
    outcomes: dict[str, Failure | None] = {}
    ends: set[str] = set()
    stored: set[str] = set()
    failed: set[str] = set()
    it = iter(articles)
    while chunk := list(islice(it, ctx.settings.batch_size)):
        ids = [article_id(raw) for raw in chunk]
        todo: dict[str, tuple[StageMessage, RawArticle]] = {}
        for aid, raw in zip(ids, chunk, strict=True):
            if aid not in outcomes and aid not in todo:
                todo[aid] = (StageMessage(article_id=aid, trace_id=new_trace_id()), raw)
        if todo:
            with transaction(ctx.database_url) as session:
                ensure_raw_batch(session, [(aid, raw, m.trace_id) for aid, (m, raw) in todo.items()])
            failures = process_batch(ctx, [m for m, _ in todo.values()], ends)
            for aid in todo:
                outcomes[aid] = failures.get(aid)
        for aid in ids:
            failure = outcomes[aid]
            if failure is None:
                if aid not in stored:
                    stored.add(aid)
                    (report.not_articles if aid in ends else report.stored).append(aid)
            elif aid not in failed:
                failed.add(aid)
                report.failures.append(failure)
            if on_done is not None:
                on_done(aid, failure)
    return report
