"""Embedded mode: the same pipeline steps, run in-process one article at a time, no servers needed."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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
    for stage in stages_from(start):
        for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
            started = time.perf_counter()
            try:
                outcome = run_step(stage, ctx, msg)
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
