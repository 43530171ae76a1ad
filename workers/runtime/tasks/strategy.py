"""The worker-side guard in front of Celery's task strategy: a malformed message never stops a worker.

Celery unpacks a message body as `[args, kwargs, embed]` in the worker's main process; any other
shape raises there and the worker exits ("Unrecoverable error"), while the broker restores the
message for the next worker to die on. This guard checks the size first (a body above `schemas.limits.MAX_MESSAGE_BYTES` is dead-lettered
`invalid_message` by its size, never parsed, so a 100 MB message does not become several copies of
itself in the main process), then the shape, and that the arguments
fit a stage task (one positional message, or `message=` alone). A message that does not fit is
recorded as an `invalid_message` dead letter (or, if the database is unreachable, logged as a
discard with an excerpt) and acknowledged. A message that fits gets its delivery tag in a header,
so the task counts deliveries of this one message (`keys.deliveries`).
"""

import json
from typing import Any

from celery.worker.strategy import default

from workers.core.logging import get_logger

log = get_logger(__name__)

DELIVERY_HEADER = "newsflow_delivery"
"""Header the guard adds: the broker's delivery tag of this message (kept when Redis redelivers it)."""


def shape_problem(payload: Any) -> str | None:
    """Why a decoded message body cannot be a stage task's call, or None if it can."""
    if not isinstance(payload, list | tuple) or len(payload) != 3:
        return f"body is a {type(payload).__name__}, not Celery's [args, kwargs, embed] list"
    args, kwargs, embed = payload
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return "args is not a list or kwargs is not an object"
    if embed is not None and not isinstance(embed, dict):
        return "embed is not an object"
    if len(args) == 1 and not kwargs:
        return None
    if not args and set(kwargs) == {"message"}:
        return None
    return f"a stage task takes one message; got {len(args)} positional and keywords {sorted(kwargs)[:5]}"


def size_problem(message: Any) -> str | None:
    """Why a message is too large to parse (its body above `MAX_MESSAGE_BYTES`; or cut down by the transport,
    `workers.runtime.transport`, whose header gives its size), or None."""
    from schemas.limits import MAX_MESSAGE_BYTES, mib
    from workers.runtime.transport import OVERSIZE_HEADER

    headers = message.headers if isinstance(message.headers, dict) else {}
    if OVERSIZE_HEADER in headers:
        what = f"message is {headers[OVERSIZE_HEADER]} bytes in Redis"
    else:
        body = message.body
        size = len(body) if isinstance(body, bytes | str) else 0
        if size <= MAX_MESSAGE_BYTES:
            return None
        what = f"message body is {size} bytes"
    return (
        f"{what}, above the limit of {MAX_MESSAGE_BYTES} bytes ({mib(MAX_MESSAGE_BYTES)}) for a body: refused "
        "before it was parsed (a stage message carries ids, not documents)"
    )


def _raw_excerpt(message: Any) -> str:
    """The first 300 characters of a refused message's body, for the dead letter (never the whole of it)."""
    from workers.runtime.transport import EXCERPT_HEADER

    headers = message.headers if isinstance(message.headers, dict) else {}
    head = headers.get(EXCERPT_HEADER) if EXCERPT_HEADER in headers else message.body[:300]
    return json.dumps(head.decode("utf-8", "replace") if isinstance(head, bytes) else str(head))


def guarded(task: Any, app: Any, consumer: Any, **options: Any) -> Any:
    """Celery's default strategy for `task`, behind the shape guard (`Task.Strategy` points here)."""
    handler = default(task, app, consumer, **options)

    def handle(message: Any, body: Any, ack: Any, reject: Any, callbacks: Any, **kwargs: Any) -> Any:
        problem = size_problem(message)
        if problem is not None:  # refused by its size, never parsed (no copy of it in the main process)
            _record_invalid(task, message, problem, excerpt=_raw_excerpt(message))
            ack(log, consumer.connection_errors)
            return None
        problem = shape_problem(message.payload)
        if problem is not None:
            _record_invalid(task, message, problem)
            ack(log, consumer.connection_errors)
            return None
        if isinstance(message.headers, dict) and message.delivery_tag is not None:
            message.headers[DELIVERY_HEADER] = str(message.delivery_tag)
        return handler(message, body, ack, reject, callbacks, **kwargs)

    return handle


def _record_invalid(task: Any, message: Any, problem: str, *, excerpt: str | None = None) -> None:
    from workers.core.errors import InvalidMessage
    from workers.core.settings import get_settings
    from workers.runtime.pipeline import Context, dead_letter

    payload = excerpt if excerpt is not None else _excerpt(message.payload)
    task_id = message.headers.get("id") if isinstance(message.headers, dict) else None
    try:
        dead_id = dead_letter(
            Context(get_settings()),
            stage=task.stage,
            msg=None,
            payload=payload,
            error=InvalidMessage(problem),
            reason="invalid_message",
            attempts=1,
        )
    except Exception as exc:  # the database is down: never stop the worker for it, say what was dropped
        log.error(  # noqa: TRY400 -- no traceback: it would carry the message
            "message_discarded",
            stage=task.stage,
            task_id=task_id,
            problem=problem,
            error_class=type(exc).__name__,
            payload_excerpt=payload[:300],
        )
        return
    log.error(
        "message_dead_lettered",
        stage=task.stage,
        task_id=task_id,
        reason="invalid_message",
        problem=problem,
        dead_letter_id=dead_id,
    )


def _excerpt(payload: Any) -> str:
    try:
        return json.dumps(payload, ensure_ascii=False)[:100_000]
    except (TypeError, ValueError):
        return json.dumps(repr(payload)[:100_000])
