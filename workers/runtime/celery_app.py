"""The Celery application: Redis broker, JSON only, one queue per stage, late acks.

Start a worker with `newsflow worker` (or `celery -A workers.runtime.celery_app worker`).
"""

import gc
import logging
from typing import Any

import structlog
from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

from workers.core import keys
from workers.core.logging import configure_logging
from workers.core.settings import get_settings
from workers.db.engine import dispose_all
from workers.runtime.pipeline import STAGE_NAMES

SHORT_PUBLISH_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
"""At most about 2 s of publish attempts (kombu's retry policy)."""


# redis:// and rediss:// name kombu's Redis transport with one change: a message above the size limit is
# refused before it is parsed (`workers.runtime.transport`). Registered under kombu's own aliases, so URLs,
# options and log lines ("Connected to redis://...") stay as they were.
for _scheme in ("redis", "rediss"):
    TRANSPORT_ALIASES[_scheme] = "workers.runtime.transport:Transport"


def create_app() -> Celery:
    """A Celery app configured from `Settings`; tasks are registered from `workers.runtime.tasks`."""
    settings = get_settings()
    app = Celery("newsflow", include=["workers.runtime.tasks"])
    app.conf.update(
        broker_url=str(settings.broker_url),
        # Outages of any length: the consumer reconnects with backoff for as long as it takes, it never
        # gives up and exits (Celery's default is 100 attempts); `_OutageLog` keeps one line per change.
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        broker_channel_error_retry=True,
        broker_connection_timeout=5,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "socket_keepalive": True,
            "health_check_interval": 10,
        },
        # JSON only: a pickle message is refused, never deserialized.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        # A publish from a task (the next stage, a retry) tries a few seconds, not minutes: a task must
        # not hold a pool process through an outage. What could not be published is found again from the
        # database by the reconciler (`workers.ops.reconcile`), whose deadline bounds the recovery time.
        task_publish_retry_policy=SHORT_PUBLISH_RETRY,
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
        # Celery's consumer, surviving kombu#582 (a lost connection Celery calls unrecoverable) and
        # writing the liveness heartbeat from its event loop (`workers.runtime.consumer`).
        worker_consumer="workers.runtime.consumer:Consumer",
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        # No task-sent events: one extra Redis round trip per publish, a third of the producer's time.
        # Flower still shows every task from the workers' received/started/succeeded/failed events.
        task_send_sent_event=False,
    )
    from workers.runtime.consumer import LoopHeartbeat

    app.steps["consumer"].add(LoopHeartbeat)
    return app


app = create_app()


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    """Celery asks for logging setup: use ours, so its own lines come out as structlog JSON too."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)


class _OutageLog(logging.Filter):
    """One log line per broker state change: the first "cannot connect" / "connection lost" line of an
    outage passes, its repetitions (one per reconnect attempt) are dropped until "Connected to" again."""

    down = False

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if text.startswith("Connected to"):
            _OutageLog.down = False  # the line itself says the broker is back
            return True
        if "Cannot connect to" in text or "Connection to broker lost" in text:
            if _OutageLog.down:
                return False
            _OutageLog.down = True
        return True


_OUTAGE_LOG = _OutageLog()
for _name in ("celery.worker.consumer.consumer", "celery.worker.consumer.connection"):
    logging.getLogger(_name).addFilter(_OUTAGE_LOG)


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
from workers.runtime import health, journal, metrics  # noqa: E402, F401
