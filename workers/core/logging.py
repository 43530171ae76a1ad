"""structlog configuration, done once per process (STYLE.md 9).

JSON lines when stderr is not a terminal, pretty console output when it is. The standard
library's loggers (Celery's own, kombu's, alembic's) are routed through the same processors,
so every line a worker prints has one shape. Python warnings are logged too (`py.warnings`), and
Celery's own task lines (received, succeeded, failed, retry) carry `task_id`, `task_name`, `stage`,
`article_id` and `trace_id` as fields instead of a Python repr of the task's arguments.

`add_event_hook` lets another module see every structlog event as it is logged (metrics count the
tasks' canonical `task_done` lines, so the summary line and the counters cannot disagree).
"""

import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, WrappedLogger

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape_controls(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Escape control characters in string fields so no value can forge a log line on a console.

    JSON output needs no such step: the encoder escapes every control character itself.
    """
    for key, value in event_dict.items():
        if key != "exception" and isinstance(value, str) and _CONTROL.search(value):
            event_dict[key] = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)
    return event_dict


QUIET_LOGGERS = {"alembic.runtime.plugins": logging.WARNING}
"""Loggers whose info lines say nothing to an operator: alembic names each plugin it sets up (eight
`setup plugin` lines before every worker's `worker_starting`)."""

EventHook = Callable[[MutableMapping[str, Any]], None]
_hooks: list[EventHook] = []
_json_output = False
_IDS = {name: re.compile(rf"'{name}': '([^']{{1,100}})'") for name in ("article_id", "trace_id")}


def add_event_hook(hook: EventHook) -> None:
    """Call `hook(event_dict)` for every structlog event of this process, whatever the log level."""
    if hook not in _hooks:
        _hooks.append(hook)


def _run_hooks(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    for hook in _hooks:
        try:
            hook(event_dict)
        except Exception:  # noqa: S112 -- a broken hook must never cost a log line
            continue
    return event_dict


def json_output() -> bool:
    """Whether this process logs JSON lines (set by `configure_logging`)."""
    return _json_output


def _celery_task_fields(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Celery's task lines (received, succeeded, failed, ...) with the task's ids as fields.

    Celery passes each line's context as `extra={"data": ...}`, with the arguments and return value
    as Python reprs; keep the ids as fields (`task_id`, `task_name`, `stage`, `article_id`,
    `trace_id`), name the line in `task_event` (`task_received`, `task_succeeded`, ...), and drop
    the reprs, also from the succeeded line's text. The text stays Celery's otherwise, so log
    searches written for Celery keep working.
    """
    data = event_dict.get("data")
    if not (isinstance(data, dict) and "id" in data and "name" in data):
        return event_dict
    from celery.app import trace

    record = event_dict.get("_record")
    fmt = str(getattr(record, "msg", "")).strip()
    events = {
        trace.LOG_RECEIVED.strip(): "task_received",
        trace.LOG_SUCCESS.strip(): "task_succeeded",
        trace.LOG_FAILURE.strip(): "task_failed",
        trace.LOG_INTERNAL_ERROR.strip(): "task_internal_error",
        trace.LOG_IGNORED.strip(): "task_ignored",
        trace.LOG_REJECTED.strip(): "task_rejected",
        trace.LOG_RETRY.strip(): "task_retried",
    }
    del event_dict["data"]
    name = str(data["name"])
    event_dict["task_event"] = events.get(fmt, "celery_task")
    if event_dict["task_event"] == "task_succeeded":  # "...succeeded in 0.1s: {return value repr}"
        event_dict["event"] = str(event_dict.get("event", "")).split(": ", 1)[0]
    event_dict["task_id"] = str(data["id"])
    event_dict["task_name"] = name
    if name.startswith("newsflow."):
        event_dict["stage"] = name.removeprefix("newsflow.")
    reprs = f"{data.get('args', '')} {data.get('return_value', '')}"
    for field, pattern in _IDS.items():
        if field not in event_dict and (found := pattern.search(reprs)):
            event_dict[field] = found.group(1)
    if isinstance(data.get("runtime"), int | float):
        event_dict["runtime_s"] = round(float(data["runtime"]), 4)
    if data.get("exc") is not None:
        event_dict["error"] = str(data["exc"])[:500]
    if data.get("eta"):
        event_dict["eta"] = str(data["eta"])
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _celery_task_fields,
        structlog.processors.format_exc_info,
    ]


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "INFO") -> None:
    """Route structlog, stdlib logging and warnings to stderr as JSON or console lines; safe to call again."""
    global _json_output  # noqa: PLW0603 -- one logging setup per process, read by the worker start-up
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    _json_output = not use_console
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=True)
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    shared = _shared_processors()
    if use_console:
        shared.append(_escape_controls)
    structlog.configure(
        processors=[
            _run_hooks,  # before the level filter: hooks see every event, logged or not
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, quiet_level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet_level, root.level))
    logging.captureWarnings(True)  # warnings.warn(...) becomes a `py.warnings` line of the same shape


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named for its module."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
