"""What every stage task shares: message validation, retries, dead letters and the summary line.

A stage task is three lines (STYLE.md 1); this base class holds the policy:
- `TransientError` → retried with exponential backoff and full jitter, dead-lettered when retries run out;
- `PermanentError`, a soft time limit or an unexpected exception → dead-lettered at once, never retried;
- a message that keeps killing its worker (redelivered after worker loss) → dead-lettered as `worker_lost`;
- a dead letter stops the chain; the next stage is not sent.
"""

import time
from typing import Any, ClassVar

import pydantic
import redis
import structlog
from celery import Task
from celery.exceptions import Ignore, Retry, SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval

from schemas import StageMessage
from workers import keys
from workers.errors import PermanentError, TransientError
from workers.logging import get_logger
from workers.pipeline import Context, dead_letter, run_step
from workers.settings import get_settings

log = get_logger(__name__)

MAX_DELIVERIES = 3
"""Deliveries of one attempt after which a message that kills workers is dead-lettered."""


class StageTask(Task):  # type: ignore[misc]
    """Base for the four stage tasks; subclasses set `stage`."""

    stage: ClassVar[str]
    typing = False  # the message is validated by pydantic, not by Celery's signature check
    # newsflow decides when retries run out (settings.max_retries, then a dead letter); Celery's default
    # cap of 3 would re-raise the TransientError on the 4th retry and acknowledge the message unrecorded.
    max_retries = None
    _redis: redis.Redis | None = None

    def process(self, message: Any) -> dict[str, str]:
        """Run this stage on one message; return the message for the next stage."""
        started = time.perf_counter()
        settings = get_settings()
        attempts = self.request.retries + 1
        trace_id = _header(self.request, "trace_id")
        structlog.contextvars.bind_contextvars(
            task_id=self.request.id, task_name=self.name, stage=self.stage, attempt=attempts
        )
        if trace_id:
            structlog.contextvars.bind_contextvars(trace_id=trace_id)
        try:
            msg = StageMessage.model_validate(message, strict=False)
        except pydantic.ValidationError as exc:
            self._dead_letter(
                None, message, exc, reason="invalid_message", attempts=attempts, started=started
            )
        structlog.contextvars.bind_contextvars(article_id=msg.article_id, trace_id=msg.trace_id)
        if self._too_many_deliveries(settings.broker_url.unicode_string()):
            lost = RuntimeError("worker lost repeatedly")
            self._dead_letter(msg, message, lost, reason="worker_lost", attempts=attempts, started=started)
        ctx = Context(settings)
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
        except (Retry, Ignore):
            raise
        except Exception as exc:
            # A bug or an input no rule foresaw: keep the message for `newsflow retry` after a fix.
            log.exception("task_unexpected_error")
            self._dead_letter(msg, message, exc, reason="unexpected", attempts=attempts, started=started)
        log.info("task_done", outcome="ok", duration_ms=_ms(started), **outcome)
        structlog.contextvars.clear_contextvars()
        return msg.model_dump()

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
        """Record a dead letter and stop the chain; if the database is down, retry instead of losing it."""
        try:
            dead_id = dead_letter(
                Context(get_settings()),
                stage=self.stage,
                msg=msg,
                payload=_json(message),
                error=exc,
                reason=reason,
                attempts=attempts,
            )
        except Exception as db_exc:
            log.exception("dead_letter_failed", reason=reason, error=type(db_exc).__name__)
            delay = get_settings().retry_backoff_max
            raise self.retry(exc=db_exc, countdown=delay, max_retries=None) from db_exc
        log.error(
            "task_done",
            outcome="dead_letter",
            reason=reason,
            error_class=type(exc).__name__,
            error=str(exc)[:500],
            dead_letter_id=dead_id,
            duration_ms=_ms(started),
        )
        structlog.contextvars.clear_contextvars()
        raise Ignore()

    def _too_many_deliveries(self, broker_url: str) -> bool:
        """Count this attempt's deliveries; True once a message has been redelivered too often."""
        if self.request.id is None:
            return False  # called directly, not delivered by a broker
        try:
            if StageTask._redis is None:
                StageTask._redis = redis.Redis.from_url(broker_url, socket_timeout=5)
            key = keys.deliveries(self.request.id, self.request.retries)
            pipe = StageTask._redis.pipeline()
            pipe.incr(key)
            pipe.expire(key, 7 * 24 * 3600)
            count = int(pipe.execute()[0])
        except redis.exceptions.RedisError:
            return False  # counting is a safeguard; never fail a task because it cannot count
        return count > MAX_DELIVERIES


def _header(request: Any, name: str) -> str | None:
    value = getattr(request, name, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    return value if isinstance(value, str) else None


def _json(message: Any) -> str:
    import json

    try:
        return json.dumps(message, ensure_ascii=False)[:100_000]
    except (TypeError, ValueError):
        return json.dumps(repr(message)[:100_000])


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
