"""What every stage task shares: message validation, retries, dead letters, the next stage and the summary line.

A stage task is three lines (STYLE.md 1); this base class holds the policy:
- `TransientError` → retried with exponential backoff and full jitter, dead-lettered when retries run out;
- `PermanentError`, a soft time limit or an unexpected exception → dead-lettered at once, never retried;
- a message that keeps killing its worker (redelivered after worker loss) → dead-lettered as `worker_lost`,
  unless the stage's result already exists (then the stage is done and the pipeline goes on);
- a dead letter ends a one-article task in Celery's FAILURE state with `DeadLettered` (acknowledged, not
  retried, shown as failed in Flower), and the next stage is not sent;
- a dead letter is written only if no other attempt finished the stage meanwhile: a stale attempt (its
  worker paused past the time limit while the message ran again) ends quietly, journaled as `stale`;
- a task killed at the hard time limit is journaled (`killed`) from the worker's main process, then
  handled by the same rules: a batch is split, one article is retried, dead-lettered (`timeout`) when its
  retries run out;
- on success the task itself publishes the next stage, after its result is durably recorded, with a
  short bounded retry; if the broker is away the article is left to the reconciler (`workers.ops.reconcile`),
  which finds it from the database. No Celery chain: nothing runs outside this policy.

A message may carry a micro-batch of articles (`schemas.StageBatch`, STYLE.md 17): the stage reads, runs and
writes the batch together (`pipeline.run_batch`), and a failure still belongs to one article:
- an article that fails alone is dead-lettered alone, the others go on as one batch to the next stage;
  the batch task ends SUCCESS with a result listing each article's outcome, and each dead-lettered article
  appears in Flower as a task of its own (`newsflow.<stage>.article`, its id as argument, FAILURE with
  `DeadLettered(stage, reason, dead letter id)` and its own traceback), so its neighbours never look failed;
- an outage retries the whole batch (every stage is idempotent, so work already recorded is not changed);
- anything that stops the whole batch (its time limit, a statement the database refuses, a redelivery
  after a worker died on it) splits it: each article is re-published alone to this stage, so the one
  at fault is found and dead-lettered by the rules above while its neighbours are stored.
"""

import threading
import time
import traceback
import uuid
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, ClassVar

import pydantic
import redis
import structlog
from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from celery.worker.request import Request

from schemas import StageBatch, StageMessage
from workers.core import keys
from workers.core.errors import DeadLettered, PermanentError, TransientError, describe, traceback_head
from workers.core.logging import get_logger
from workers.core.settings import get_settings
from workers.runtime.journal import ArticleEnd
from workers.runtime.pipeline import (
    STAGE_NAMES,
    BatchOutcome,
    Context,
    dead_letter,
    dead_letter_unless_finished,
    ended,
    run_batch,
    run_step,
)
from workers.runtime.tasks.strategy import DELIVERY_HEADER

log = get_logger(__name__)

MAX_DELIVERIES = 3
"""Deliveries of one message after which a message that kills workers is dead-lettered."""

ARTICLE_TASK = "{stage}.article"
"""Flower name of the per-article task a batch's dead letter is shown as (`newsflow.clean.article`)."""
_ARTICLE_UUIDS = uuid.UUID("6e657773-666c-6f77-0000-000000000000")


def article_task_id(batch_task_id: str, article_id: str) -> str:
    """The id of the per-article task Flower shows for one article of a batch (stable across re-runs)."""
    return str(uuid.uuid5(_ARTICLE_UUIDS, f"{batch_task_id}:{article_id}"))


class StageRequest(Request):  # type: ignore[misc]
    """Celery's request, plus a record when the worker kills a task at the hard time limit (issue 19.3):
    Celery acknowledges such a message and never runs it again, so this is its only trace."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft:
            return
        from celery.worker import state

        if state.should_terminate:
            return
        # In a thread: the main process runs the consumer's event loop, and the database or the broker
        # may be what the killed task was stuck on.
        threading.Thread(
            target=_record_hard_kill_safely,
            args=(self.task, self.args, int(self.request_dict.get("retries") or 0), timeout, self.id),
            name="newsflow-hard-kill",
            daemon=True,
        ).start()


def _record_hard_kill_safely(task: Any, args: Any, retries: int, timeout: float, task_id: str) -> None:
    try:
        record_hard_kill(task, args, retries=retries, timeout=timeout)
    except Exception as exc:  # never take the worker's main process down for a record
        log.warning("hard_kill_not_recorded", task_id=task_id, error=describe(exc))


class StageTask(Task):  # type: ignore[misc]
    """Base for the four stage tasks; subclasses set `stage`."""

    stage: ClassVar[str]
    typing = False  # the message is validated by pydantic, not by Celery's signature check
    # newsflow decides when retries run out (settings.max_retries, then a dead letter); Celery's default
    # cap of 3 would re-raise the TransientError on the 4th retry and acknowledge the message unrecorded.
    max_retries = None
    # A dead letter is an expected end: Celery logs it at INFO without a traceback, marks the task FAILURE.
    throws = (DeadLettered,)
    # The shape guard in front of Celery's strategy: a malformed message never stops the worker.
    Strategy = "workers.runtime.tasks.strategy:guarded"
    Request = "workers.runtime.tasks.base:StageRequest"
    _redis: ClassVar[redis.Redis | None] = None
    last_outcomes: dict[str, ArticleEnd] | None = None
    """How each article of the last task ended, with its own error, for the journal (`ArticleEnd`)."""

    def process(self, message: Any) -> dict[str, Any]:
        """Run this stage on one message, publish the next stage; return the message for the next stage."""
        started = time.perf_counter()
        settings = get_settings()
        attempts = self.request.retries + 1
        trace_id = _header(self.request, "trace_id")
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            task_id=self.request.id, task_name=self.name, stage=self.stage, attempt=attempts
        )
        if trace_id:
            structlog.contextvars.bind_contextvars(trace_id=trace_id)
        delivery = self._count_delivery()
        self.last_outcomes = None
        try:
            return self._process(message, settings, attempts, started, delivery)
        except Stale as quiet:
            return quiet.result
        finally:
            if delivery is not None:
                self._forget_delivery(delivery[0])
            structlog.contextvars.clear_contextvars()

    def _process(
        self, message: Any, settings: Any, attempts: int, started: float, delivery: tuple[str, int] | None
    ) -> dict[str, Any]:
        if isinstance(message, dict) and "articles" in message:
            try:
                batch = StageBatch.model_validate(message, strict=False)
            except pydantic.ValidationError as exc:
                self._dead_letter(
                    None, message, exc, reason="invalid_message", attempts=attempts, started=started
                )
            if len(batch.articles) > 1:
                return self._process_batch(batch, settings, attempts, started, delivery)
            message = batch.articles[0].model_dump()
        try:
            msg = StageMessage.model_validate(message, strict=False)
        except pydantic.ValidationError as exc:
            self._dead_letter(
                None, message, exc, reason="invalid_message", attempts=attempts, started=started
            )
        structlog.contextvars.bind_contextvars(article_id=msg.article_id, trace_id=msg.trace_id)
        ctx = Context(settings)
        if delivery is not None and delivery[1] > MAX_DELIVERIES:
            if self._already_done(ctx, msg):
                # Delivered often (published twice, or redelivered) but the stage's result is there.
                log.info(
                    "task_done", outcome="already_done", deliveries=delivery[1], duration_ms=_ms(started)
                )
                self._publish_next(msg, settings)
                return msg.model_dump()
            lost = RuntimeError(f"worker lost repeatedly ({delivery[1]} deliveries)")
            self._dead_letter(msg, message, lost, reason="worker_lost", attempts=attempts, started=started)
        try:
            outcome = run_step(self.stage, ctx, msg)
        except TransientError as exc:
            if self.request.retries >= settings.max_retries:
                self._dead_letter(
                    msg, message, exc, reason="retries_exhausted", attempts=attempts, started=started
                )
            delay = get_exponential_backoff_interval(
                factor=1, retries=self.request.retries, maximum=settings.retry_backoff_max, full_jitter=True
            )
            log.warning("task_retry", error=str(exc), countdown=delay, duration_ms=_ms(started))
            raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
        except PermanentError as exc:
            self._dead_letter(msg, message, exc, reason=exc.reason, attempts=attempts, started=started)
        except SoftTimeLimitExceeded as exc:
            self._dead_letter(msg, message, exc, reason="timeout", attempts=attempts, started=started)
        except (Retry, DeadLettered):
            raise
        except Exception as exc:
            # A bug or an input no rule foresaw: keep the message for `newsflow retry` after a fix. The
            # line names the error and where it happened, never its arguments (SQL parameters are text).
            log.error(  # noqa: TRY400 -- a traceback would print the exception's message with its parameters
                "task_unexpected_error",
                error_class=type(exc).__name__,
                error=describe(exc),
                where=_where(exc),
            )
            self._dead_letter(msg, message, exc, reason="unexpected", attempts=attempts, started=started)
        published = None if ended(outcome) else self._publish_next(msg, settings)  # not_article: the end
        log.info("task_done", outcome="ok", duration_ms=_ms(started), next_published=published, **outcome)
        return msg.model_dump()

    def _process_batch(
        self,
        batch: StageBatch,
        settings: Any,
        attempts: int,
        started: float,
        delivery: tuple[str, int] | None,
    ) -> dict[str, Any]:
        """Run this stage on a batch of articles (see the module docstring for the failure rules)."""
        msgs = list(batch.articles)
        structlog.contextvars.bind_contextvars(batch_size=len(msgs))
        if delivery is not None and delivery[1] > 1:
            # A worker died with this batch: go on one article at a time, so an article that kills
            # workers is dead-lettered alone after its own deliveries.
            return self._split(msgs, settings, why="redelivered", started=started)
        ctx = Context(settings)
        try:
            results = run_batch(self.stage, ctx, msgs)
        except TransientError as exc:
            if self.request.retries >= settings.max_retries:
                gave_up = [PermanentError(str(exc), reason="retries_exhausted") for _ in msgs]
                return self._finish_batch(
                    ctx, msgs, list(gave_up), settings, attempts=attempts, started=started
                )
            delay = get_exponential_backoff_interval(
                factor=1, retries=self.request.retries, maximum=settings.retry_backoff_max, full_jitter=True
            )
            log.warning("task_retry", error=str(exc), countdown=delay, duration_ms=_ms(started))
            raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
        except (Retry, DeadLettered):
            raise
        except (SoftTimeLimitExceeded, Exception) as exc:
            return self._split(msgs, settings, why=type(exc).__name__, started=started, error=exc)
        return self._finish_batch(ctx, msgs, results, settings, attempts=attempts, started=started)

    def _finish_batch(
        self,
        ctx: Context,
        msgs: list[StageMessage],
        results: list[BatchOutcome],
        settings: Any,
        *,
        attempts: int,
        started: float,
    ) -> dict[str, Any]:
        """Dead-letter the articles that failed alone, log one line per article, send the rest on; ends
        SUCCESS with each article's outcome (each dead letter is shown in Flower as its own task)."""
        done: list[StageMessage] = []
        ends: dict[str, ArticleEnd] = {}
        dead: list[tuple[StageMessage, BaseException, str, int]] = []
        for msg, result in zip(msgs, results, strict=True):
            with structlog.contextvars.bound_contextvars(article_id=msg.article_id, trace_id=msg.trace_id):
                if not isinstance(result, Exception):
                    log.info("task_done", outcome="ok", duration_ms=_ms(started), **result)
                    if not ended(result):  # a not_article page goes to no later stage
                        done.append(msg)
                    ends[msg.article_id] = ArticleEnd("ok")
                    continue
                reason = _reason(result)
                try:
                    dead_id = dead_letter_unless_finished(
                        ctx,
                        stage=self.stage,
                        msg=msg,
                        payload=msg.model_dump_json(),
                        error=result,
                        reason=reason,
                        attempts=attempts,
                    )
                except Exception as db_exc:
                    # Nothing is dropped without a record: run the batch again later (it is idempotent).
                    log.warning("dead_letter_failed", reason=reason, error=describe(db_exc))
                    raise self.retry(
                        exc=db_exc, countdown=settings.retry_backoff_max, max_retries=None
                    ) from db_exc
                if dead_id is None:
                    _log_stale(result, reason, started)
                    ends[msg.article_id] = ArticleEnd("stale", result, {"reason": reason})
                    continue
                _log_dead_letter(result, reason, dead_id, started)
                dead.append((msg, result, reason, dead_id))
                ends[msg.article_id] = ArticleEnd(
                    "dead_letter", result, {"reason": reason, "dead_letter_id": dead_id}
                )
        self.last_outcomes = ends
        published = self._publish_next_many(done, settings)
        log.info(
            "batch_done", articles=len(msgs), ok=len(done), dead_letters=len(dead), next_published=published
        )
        self._show_dead_letters(dead, attempts)
        outcomes: dict[str, Any] = {"ok": len(done)}
        outcomes |= {f"dead_letter {m.article_id}": f"{r} (dead letter {i})" for m, _, r, i in dead}
        outcomes |= {
            f"stale {a}": "finished by another attempt" for a, e in ends.items() if e.event == "stale"
        }
        return {"outcomes": outcomes, "articles": [m.model_dump() for m in done]}

    def _show_dead_letters(
        self, dead: list[tuple[StageMessage, BaseException, str, int]], attempts: int
    ) -> None:
        """Send Celery task events for one task per dead-lettered article of this batch (received, started,
        failed), so Flower lists each by its id and reason; a batch task itself ends SUCCESS."""
        if not dead or self.request.called_directly or not self.app.conf.worker_send_task_events:
            return
        hostname = self.request.hostname
        try:
            with self.app.events.default_dispatcher(hostname=hostname) as dispatcher:
                for msg, error, reason, dead_id in dead:
                    task_id = article_task_id(self.request.id, msg.article_id)
                    now = time.time()
                    dispatcher.send(
                        "task-received",
                        uuid=task_id,
                        name=ARTICLE_TASK.format(stage=self.name),
                        args=repr((msg.article_id,)),
                        kwargs=repr({"trace_id": msg.trace_id, "batch": self.request.id}),
                        root_id=self.request.root_id or self.request.id,
                        parent_id=self.request.id,
                        retries=attempts - 1,
                        eta=None,
                        expires=None,
                        timestamp=now,
                    )
                    dispatcher.send("task-started", uuid=task_id, timestamp=now)
                    dispatcher.send(
                        "task-failed",
                        uuid=task_id,
                        exception=repr(DeadLettered(self.stage, reason, dead_id)),
                        traceback=traceback_head(error) or "",
                        timestamp=now,
                    )
        except Exception as exc:  # Flower's view is an aid; the dead letters are recorded
            log.warning("dead_letter_events_not_sent", error=describe(exc))

    def _split(
        self,
        msgs: list[StageMessage],
        settings: Any,
        *,
        why: str,
        started: float,
        error: BaseException | None = None,
    ) -> dict[str, Any]:
        """Re-publish each article of the batch alone to this stage; one that cannot be published is
        left to the reconciler (its stage record is missing, so it is found and sent again)."""
        log.warning(
            "batch_split",
            why=why,
            articles=len(msgs),
            error=None if error is None else describe(error),
            duration_ms=_ms(started),
        )
        for msg in msgs:
            self._send(msg, self.stage, settings)
        self.last_outcomes = {m.article_id: ArticleEnd("split", error) for m in msgs}
        return {"outcomes": {"split": len(msgs)}, "articles": []}

    def _send(self, what: StageMessage | list[StageMessage], stage: str, settings: Any) -> bool:
        """Publish one article or a batch to `stage` with the short retry; False if the broker refused."""
        from workers.runtime.broker import send, send_batch

        policy = {
            "max_retries": settings.next_stage_publish_retries,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        }
        try:
            if isinstance(what, list):
                send_batch(self.app, what, stage, retry_policy=policy)
            else:
                send(self.app, what, stage, retry_policy=policy)
        except Exception as exc:
            log.warning(
                "next_stage_not_published", next_stage=stage, error=describe(exc), left_to="reconciler"
            )
            return False
        return True

    def _publish_next_many(self, msgs: list[StageMessage], settings: Any) -> bool | None:
        """Publish the next stage for `msgs` as one message (None at the end, when called directly, or
        when nothing is left); False if the broker refused: the reconciler sends them later."""
        index = STAGE_NAMES.index(self.stage)
        if not msgs or index + 1 == len(STAGE_NAMES) or self.request.called_directly:
            return None
        return self._send(msgs if len(msgs) > 1 else msgs[0], STAGE_NAMES[index + 1], settings)

    def _publish_next(self, msg: StageMessage, settings: Any) -> bool | None:
        """Publish the next stage for one article (see `_publish_next_many`)."""
        return self._publish_next_many([msg], settings)

    def _already_done(self, ctx: Context, msg: StageMessage) -> bool:
        from workers.db.engine import transaction
        from workers.runtime.pipeline import stage_done

        try:
            with transaction(ctx.database_url) as session:
                return stage_done(session, msg.article_id, self.stage)
        except Exception:  # the database is down: the stage runs (and retries) as usual
            return False

    def _dead_letter(
        self,
        msg: StageMessage | None,
        message: Any,
        exc: BaseException,
        *,
        reason: str,
        attempts: int,
        started: float,
    ) -> None:
        """Record a dead letter and end the task as FAILURE; if the database is down, retry instead of losing it.
        If another attempt finished the stage meanwhile (a stale attempt), end quietly (`Stale`) instead."""
        ctx = Context(get_settings())
        try:
            if msg is None:
                dead_id: int | None = dead_letter(
                    ctx,
                    stage=self.stage,
                    msg=msg,
                    payload=_json(message),
                    error=exc,
                    reason=reason,
                    attempts=attempts,
                )
            else:
                dead_id = dead_letter_unless_finished(
                    ctx,
                    stage=self.stage,
                    msg=msg,
                    payload=_json(message),
                    error=exc,
                    reason=reason,
                    attempts=attempts,
                )
        except Exception as db_exc:
            log.warning("dead_letter_failed", reason=reason, error=describe(db_exc))
            delay = get_settings().retry_backoff_max
            raise self.retry(exc=db_exc, countdown=delay, max_retries=None) from db_exc
        if dead_id is None and msg is not None:
            _log_stale(exc, reason, started)
            self.last_outcomes = {msg.article_id: ArticleEnd("stale", exc, {"reason": reason})}
            raise Stale(msg.model_dump())
        _log_dead_letter(exc, reason, dead_id or 0, started)
        raise DeadLettered(self.stage, reason, dead_id)

    def _count_delivery(self) -> tuple[str, int] | None:
        """Count this delivery of this message (its broker delivery tag, kept across redeliveries, new
        for each publish); the counter expires with the visibility timeout. None if not counted."""
        tag = _header(self.request, DELIVERY_HEADER)
        if tag is None or self.request.called_directly:
            return None
        settings = get_settings()
        try:
            key = keys.deliveries(tag)
            pipe = self._client(settings.broker_url.unicode_string()).pipeline()
            pipe.incr(key)
            pipe.expire(key, settings.visibility_timeout)
            return key, int(pipe.execute()[0])
        except redis.exceptions.RedisError:
            return None  # counting is a safeguard; never fail a task because it cannot count

    def _forget_delivery(self, key: str) -> None:
        """The task ended (done, retried or dead-lettered): its counter is no longer needed."""
        with suppress(redis.exceptions.RedisError):  # else it expires with the visibility timeout
            self._client(get_settings().broker_url.unicode_string()).delete(key)

    @staticmethod
    def _client(broker_url: str) -> redis.Redis:
        if StageTask._redis is None:
            StageTask._redis = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
        return StageTask._redis


class Stale(Exception):
    """A stale attempt's quiet end: `process` returns the message; nothing is recorded but the journal."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__("finished by another attempt")
        self.result = result


def record_hard_kill(task: Any, args: Any, *, retries: int, timeout: float) -> None:
    """In the worker's main process, after the pool killed `task` at its hard time limit: journal each
    article (`killed`), then the usual rules: a batch is re-sent one article at a time; one article is
    re-sent as a retry (retries + 1, with backoff), or dead-lettered as `timeout` when its retries are
    spent (quietly not, if another attempt finished the stage). Idempotent enough: a re-send changes no row."""
    from billiard.exceptions import TimeLimitExceeded

    from workers.runtime.broker import send
    from workers.runtime.journal import write_many

    settings = get_settings()
    body = args[0] if args else None
    items = body.get("articles") if isinstance(body, dict) and "articles" in body else [body]
    msgs = []
    for item in items if isinstance(items, list) else []:
        with suppress(pydantic.ValidationError):
            msgs.append(StageMessage.model_validate(item, strict=False))
    error = TimeLimitExceeded(timeout)
    now = datetime.now(UTC)
    write_many(
        settings.database_url,
        [
            {
                "article_id": msg.article_id,
                "stage": task.stage,
                "event": "killed",
                "attempt": retries + 1,
                "started_at": now,
                "ended_at": now,
                "error_class": type(error).__name__,
                "error": f"killed at the hard time limit ({timeout:g} s)",
                "detail": {"reason": "hard_time_limit"},
            }
            for msg in msgs
        ],
    )
    if len(msgs) > 1:
        for msg in msgs:
            send(task.app, msg, task.stage, retry_policy=_short_policy(settings))
        log.warning("hard_kill_split", stage=task.stage, articles=len(msgs))
        return
    if not msgs:
        return
    (msg,) = msgs
    if retries < settings.max_retries:
        delay = get_exponential_backoff_interval(
            factor=1, retries=retries, maximum=settings.retry_backoff_max, full_jitter=True
        )
        task.apply_async(
            args=(msg.model_dump(),),
            retries=retries + 1,
            countdown=delay,
            headers={"trace_id": msg.trace_id},
            retry_policy=_short_policy(settings),
        )
        log.warning("hard_kill_retry", stage=task.stage, article_id=msg.article_id, countdown=delay)
        return
    dead_id = dead_letter_unless_finished(
        Context(settings),
        stage=task.stage,
        msg=msg,
        payload=msg.model_dump_json(),
        error=error,
        reason="timeout",
        attempts=retries + 1,
    )
    log.error("hard_kill_dead_letter", stage=task.stage, article_id=msg.article_id, dead_letter_id=dead_id)


def _short_policy(settings: Any) -> dict[str, float]:
    return {
        "max_retries": settings.next_stage_publish_retries,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
    }


def _log_stale(exc: BaseException, reason: str, started: float) -> None:
    """The summary line of a stale attempt that ended quietly: another attempt finished the stage."""
    log.warning(
        "task_done",
        outcome="stale",
        would_be_reason=reason,
        error_class=type(exc).__name__,
        error=describe(exc, limit=500),
        duration_ms=_ms(started),
    )


def _header(request: Any, name: str) -> str | None:
    value = getattr(request, name, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    return value if isinstance(value, str) else None


def _log_dead_letter(exc: BaseException, reason: str, dead_id: int, started: float) -> None:
    """The summary line of an article that ended as a dead letter (metrics and the journal read it)."""
    log.error(
        "task_done",
        outcome="dead_letter",
        reason=reason,
        error_class=type(exc).__name__,
        error=describe(exc, limit=500),
        dead_letter_id=dead_id,
        duration_ms=_ms(started),
    )


def _reason(exc: BaseException) -> str:
    """The dead-letter reason of an article that failed alone in a batch (an unexpected one is logged)."""
    from workers.core.errors import reason_of

    reason = reason_of(exc)
    if reason == "unexpected":
        log.error(
            "task_unexpected_error", error_class=type(exc).__name__, error=describe(exc), where=_where(exc)
        )
    return reason


def _where(exc: BaseException) -> list[str]:
    """The innermost frames of the exception as `file:line function`, without any message."""
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in frames]


def _json(message: Any) -> str:
    import json

    try:
        return json.dumps(message, ensure_ascii=False)[:100_000]
    except (TypeError, ValueError):
        return json.dumps(repr(message)[:100_000])


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
