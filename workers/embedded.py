"""Embedded mode: the same pipeline steps, run in-process one article at a time, no servers needed.

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
from types import FrameType

import structlog

from schemas import RawArticle, StageMessage
from workers.db import repo
from workers.db.engine import transaction
from workers.errors import PermanentError, TransientError
from workers.ids import article_id, new_trace_id
from workers.logging import get_logger
from workers.pipeline import STAGE_NAMES, Context, dead_letter, run_step, stages_from

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
    """What an embedded run did: articles stored (in input order) and failures."""

    stored: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def process(ctx: Context, msg: StageMessage, start: str = STAGE_NAMES[0]) -> Failure | None:
    """Run the stages from `start` for one persisted article; a failure is dead-lettered and returned."""
    limits = (ctx.settings.task_soft_time_limit, ctx.settings.worker_max_memory_per_child)
    for stage in stages_from(start):
        _warm_up(stage, ctx)
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            started = time.perf_counter()
            try:
                with bounded(*limits):
                    outcome = run_step(stage, ctx, msg)
            except StepTimeout:
                late = TimeoutError(f"{stage} ran past the soft time limit of {limits[0]}s")
                return _fail(ctx, stage, msg, late, reason="timeout", attempts=attempt)
            except MemoryError:
                big = MemoryError(f"{stage} needed more than {limits[1]} KiB of memory")
                return _fail(ctx, stage, msg, big, reason="memory_limit", attempts=attempt)
            except TransientError as exc:
                if attempt < TRANSIENT_ATTEMPTS:
                    time.sleep(0.2 * 2**attempt)
                    continue
                return _fail(ctx, stage, msg, exc, reason="retries_exhausted", attempts=attempt)
            except PermanentError as exc:
                return _fail(ctx, stage, msg, exc, reason=exc.reason, attempts=attempt)
            except Exception as exc:
                log.exception("stage_unexpected_error", stage=stage)
                return _fail(ctx, stage, msg, exc, reason="unexpected", attempts=attempt)
            log.debug(
                "stage_done",
                stage=stage,
                duration_ms=round((time.perf_counter() - started) * 1000),
                **outcome,
            )
            break
    return None


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
    """Persist and process each article in-process; idempotent like the distributed pipeline."""
    report = EmbeddedReport()
    for raw in articles:
        msg = StageMessage(article_id=article_id(raw), trace_id=new_trace_id())
        with structlog.contextvars.bound_contextvars(article_id=msg.article_id, trace_id=msg.trace_id):
            with transaction(ctx.database_url) as session:
                repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
            failure = process(ctx, msg)
        if failure is None:
            if msg.article_id not in report.stored:
                report.stored.append(msg.article_id)
        else:
            report.failures.append(failure)
        if on_done is not None:
            on_done(msg.article_id, failure)
    return report
