"""structlog configuration, done once per process (STYLE.md 9).

JSON lines when stderr is not a terminal, pretty console output when it is. The standard
library's loggers (Celery's own, kombu's, alembic's) are routed through the same processors,
so every line a worker prints has one shape.
"""

import logging
import re
import sys
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


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.format_exc_info,
    ]


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "INFO") -> None:
    """Route structlog and stdlib logging to stderr as JSON or console lines; safe to call again."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named for its module."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
