"""The Celery application: Redis broker, JSON only, one queue per stage, late acks.

Start a worker with `newsflow worker` (or `celery -A workers.celery_app worker`).
"""

import gc
from typing import Any

import structlog
from celery import Celery, signals

from workers import keys
from workers.db.engine import dispose_all
from workers.logging import configure_logging
from workers.pipeline import STAGE_NAMES
from workers.settings import get_settings


def create_app() -> Celery:
    """A Celery app configured from `Settings`; tasks are registered from `workers.tasks`."""
    settings = get_settings()
    app = Celery("newsflow", include=["workers.tasks"])
    app.conf.update(
        broker_url=str(settings.broker_url),
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        # JSON only: a pickle message is refused, never deserialized.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        # Publishing the next stage of a chain (or a retry) waits out a broker restart, about two
        # minutes of attempts, instead of failing a finished task after Celery's default 0.6 s.
        task_publish_retry_policy={
            "max_retries": 30,
            "interval_start": 0,
            "interval_step": 1,
            "interval_max": 5,
        },
        # Every task is idempotent, so a message is acknowledged only after it was processed and
        # is redelivered if the worker dies mid-task (STYLE.md 5).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        worker_max_memory_per_child=settings.worker_max_memory_per_child,
        task_routes={keys.task_name(s): {"queue": keys.queue_name(s)} for s in STAGE_NAMES},
        task_default_queue=keys.queue_name(STAGE_NAMES[0]),
        task_create_missing_queues=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


app = create_app()


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Celery asks for logging setup: use ours, so its own lines come out as structlog JSON too."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


@signals.worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked child must not share the parent's database connections; what the parent imported is
    frozen out of the garbage collector, so collections scan only what tasks allocate (shorter pauses,
    and copy-on-write pages stay shared)."""
    dispose_all()
    gc.collect()
    gc.freeze()


@signals.before_task_publish.connect
def _propagate_trace(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Carry the current trace id in the message headers of every task published."""
    trace_id = structlog.contextvars.get_contextvars().get("trace_id")
    if headers is not None and trace_id and "trace_id" not in headers:
        headers["trace_id"] = trace_id


# Worker metrics, start-up checks and log hygiene connect their Celery signal handlers on import.
from workers import health, metrics  # noqa: E402, F401
