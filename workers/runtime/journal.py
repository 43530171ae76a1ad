"""The stage journal: one durable row per stage attempt and per operator action, for `newsflow trace`.

Workers write it through Celery signals (connected when this module is imported: `newsflow worker`
passes `--include workers.runtime.journal`, and `workers.runtime.celery_app` should import it for workers started
with plain `celery -A workers.runtime.celery_app worker`). `task_prerun` only remembers the start time in
memory; `task_retry` and `task_failure` remember the error; `task_postrun` writes the one row. So an
attempt costs one INSERT, and a journal that cannot be written never fails a task (it is logged).

The embedded runner calls `record_attempt()` after each stage attempt; operator commands call
`record_action()` (retry, reprocess, discard).
"""

import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

from celery import signals
from sqlalchemy import insert

from workers.core.errors import TRACEBACK_LINES, traceback_head
from workers.core.logging import get_logger

log = get_logger(__name__)

__all__ = [
    "TRACEBACK_LINES",
    "ArticleEnd",
    "record_actions",
    "record_attempt",
    "record_attempts",
    "traceback_head",
    "write",
    "write_many",
]


class ArticleEnd(NamedTuple):
    """How one article of a stage task ended, for its own journal row: `event` (ok, dead_letter, stale,
    split), its own error (never a neighbour's) and details (reason, dead letter id)."""

    event: str
    error: BaseException | None = None
    detail: dict[str, Any] | None = None


_started: dict[str, tuple[datetime, float]] = {}
_errors: dict[str, tuple[str, BaseException | None, str | None]] = {}


def _insert(database_url: str, rows: list[dict[str, Any]]) -> None:
    from workers.db.engine import transaction
    from workers.db.models import StageJournalRow

    with transaction(database_url) as session:
        session.execute(insert(StageJournalRow), rows)


def write(database_url: str, **row: Any) -> None:
    """Insert one journal row; a failure is logged, never raised (the journal is an aid, not a gate)."""
    try:
        _insert(database_url, [row])
    except Exception as exc:
        log.warning("journal_write_failed", error=type(exc).__name__, journal_event=row.get("event"))


def write_many(database_url: str, rows: list[dict[str, Any]]) -> None:
    """Insert journal rows in one statement; a failure is logged, never raised."""
    try:
        _insert(database_url, rows)
    except Exception as exc:
        log.warning("journal_write_failed", error=type(exc).__name__, rows=len(rows))


def record_attempts(database_url: str, attempts: list[dict[str, Any]]) -> None:
    """Journal several stage attempts in one insert (the embedded runner's batches). Each dict has
    `article_id`, `stage`, `attempt`, `event`, `started_at`, `duration_ms`, `version` and `error` (an
    exception or None). A failure is logged, never raised."""
    now = datetime.now(UTC)
    rows = [
        {
            "article_id": a["article_id"],
            "stage": a["stage"],
            "event": a["event"],
            "attempt": a["attempt"],
            "version": a.get("version"),
            "started_at": a["started_at"],
            "ended_at": now,
            "duration_ms": a["duration_ms"],
            "error_class": type(a["error"]).__name__ if a.get("error") is not None else None,
            "error": str(a["error"])[:2000] if a.get("error") is not None else None,
            "traceback": traceback_head(a.get("error")),
        }
        for a in attempts
    ]
    if not rows:
        return
    try:
        _insert(database_url, rows)
    except Exception as exc:
        log.warning("journal_write_failed", error=type(exc).__name__, rows=len(rows))


def record_attempt(
    database_url: str,
    *,
    article_id: str,
    stage: str,
    attempt: int,
    event: str,
    started_at: datetime,
    duration_ms: int,
    version: str | None = None,
    error: BaseException | None = None,
    worker: str | None = None,
    task_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Journal one stage attempt (`event`: ok, retry, dead_letter or failed); the embedded runner's hook."""
    write(
        database_url,
        article_id=article_id,
        stage=stage,
        event=event,
        attempt=attempt,
        task_id=task_id,
        worker=worker,
        version=version,
        started_at=started_at,
        ended_at=datetime.now(UTC),
        duration_ms=duration_ms,
        error_class=type(error).__name__ if error is not None else None,
        error=str(error)[:2000] if error is not None else None,
        traceback=traceback_head(error),
        detail=detail,
    )


def record_actions(database_url: str, rows: list[dict[str, Any]]) -> None:
    """Journal operator actions (`event` retry, reprocess, discard...) in one INSERT; raises on failure."""
    if rows:
        now = datetime.now(UTC)
        _insert(database_url, [{"ended_at": now, "started_at": now, **row} for row in rows])


# --- Celery signals -----------------------------------------------------------------------------------


def _is_stage(task: Any) -> bool:
    return isinstance(getattr(task, "stage", None), str)


def _article_ids(args: Any) -> list[str | None]:
    """The article ids a stage task's message names: one, or each of a micro-batch."""
    if not args or not isinstance(args[0], dict):
        return [None]
    items = args[0].get("articles") if "articles" in args[0] else [args[0]]
    if not isinstance(items, list):
        return [None]
    ids = [item.get("article_id") if isinstance(item, dict) else None for item in items[:64]]
    return [i if isinstance(i, str) and len(i) <= 32 else None for i in ids] or [None]


@signals.task_prerun.connect
def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id and _is_stage(task):
        _started[task_id] = (datetime.now(UTC), time.perf_counter())


@signals.task_retry.connect
def _on_retry(request: Any = None, reason: Any = None, einfo: Any = None, **_: Any) -> None:
    task_id = getattr(request, "id", None)
    if task_id:
        exc = getattr(reason, "exc", None) or (einfo.exception if einfo is not None else None)
        _errors[task_id] = ("retry", exc, str(reason)[:2000] if reason is not None else None)


@signals.task_failure.connect
def _on_failure(task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
    from billiard.exceptions import TimeLimitExceeded

    # A hard time limit fires this in the worker's main process, where no postrun follows: the kill is
    # journaled by the task's request (`tasks.base.StageRequest`).
    if task_id and not isinstance(exception, TimeLimitExceeded):
        event = "dead_letter" if getattr(exception, "dead_letter_id", None) is not None else "failed"
        _errors[task_id] = (event, exception, None)


@signals.task_postrun.connect
def _on_postrun(
    task_id: str | None = None,
    task: Any = None,
    args: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_: Any,
) -> None:
    if not task_id or not _is_stage(task):
        return
    started = _started.pop(task_id, None)
    event, exc, message = _errors.pop(task_id, (None, None, None))
    if event is None:
        event, exc = _end_of(state, retval)
    detail: dict[str, Any] = {}
    for name in ("reason", "dead_letter_id"):
        value = getattr(exc, name, None)
        if isinstance(value, str | int):
            detail[name] = value
    if event == "dead_letter" and exc is not None and detail:
        # DeadLettered says which dead letter and why; the error that caused it is its cause.
        exc = exc.__cause__ or exc.__context__ or exc
    request = getattr(task, "request", None)
    try:
        from workers.core.settings import get_settings
        from workers.runtime.pipeline import current_version

        stage_version = current_version(task.stage)
        database_url = get_settings().database_url
    except Exception as error:
        log.warning("journal_write_failed", error=type(error).__name__)
        return
    now = datetime.now(UTC)
    # A micro-batch: one row per article, with that article's own end when the task says it (one dead
    # letter in a batch does not make its neighbours dead letters).
    per_article = getattr(task, "last_outcomes", None) or {}
    rows = []
    for article in _article_ids(args):
        own = per_article.get(article) if article is not None else None
        if isinstance(own, ArticleEnd):  # this article's own end and error, not the batch's
            row_event, row_exc, row_detail = own.event, own.error, own.detail or {}
        else:
            row_event, row_exc, row_detail = event, exc, detail
        rows.append(
            _row(
                article_id=article,
                stage=task.stage,
                event=row_event,
                request=request,
                task_id=task_id,
                version=stage_version,
                started=started,
                now=now,
                exc=row_exc,
                message=message if row_exc is exc else None,
                detail=row_detail,
            )
        )
    try:
        _insert(database_url, rows)
    except Exception as error:
        log.warning("journal_write_failed", error=type(error).__name__, journal_event=event)


def _end_of(state: str | None, retval: Any) -> tuple[str, BaseException | None]:
    """The journal event (and error) of a task that ended without a retry or failure signal."""
    if state == "SUCCESS":
        return "ok", None
    if state == "IGNORED":
        # A dead letter ends the chain by raising Ignore from inside the `except` that caught the
        # error, so the original exception is its context.
        return "dead_letter", getattr(retval, "__context__", None)
    return (state or "unknown").lower(), None


def _row(
    *,
    article_id: str | None,
    stage: str,
    event: str,
    request: Any,
    task_id: str,
    version: str | None,
    started: tuple[datetime, float] | None,
    now: datetime,
    exc: BaseException | None,
    message: str | None,
    detail: dict[str, Any],
) -> dict[str, Any]:
    if event != "ok":
        version = None
    else:
        exc, message, detail = None, None, {}
    return {
        "article_id": article_id,
        "stage": stage,
        "event": event,
        "attempt": int(getattr(request, "retries", 0) or 0) + 1,
        "task_id": task_id,
        "worker": getattr(request, "hostname", None),
        "version": version,
        "started_at": started[0] if started else None,
        "ended_at": now,
        "duration_ms": round((time.perf_counter() - started[1]) * 1000) if started else None,
        "error_class": type(exc).__name__ if exc is not None else None,
        "error": (message or str(exc))[:2000] if exc is not None else message,
        "traceback": traceback_head(exc),
        "detail": detail or None,
    }
