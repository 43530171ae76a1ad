"""The worker's consumer: Celery's, surviving one broker failure Celery calls unrecoverable, and beating
from its event loop so that liveness means "this worker consumes".

**A lost broker connection seen as a bug (celery/kombu#582, celery/celery#10205).** When Redis dies
again soon after the consumer reconnected, kombu may close a channel whose transport was already
detached from its connection; restoring that channel's unacknowledged messages then asks the missing
connection for its host: `AttributeError: 'NoneType' object has no attribute 'hostname'`. Celery
treats only its transport's connection and channel errors as recoverable; this one reaches the worker
as "Unrecoverable error" and the worker exits, its messages queued for nobody. Here that one error
(an `AttributeError` naming `hostname`, raised inside kombu) is turned into a connection error, so
Celery does what it does for any lost connection: it logs one line, closes what is left and
reconnects. Nothing is lost by not restoring at that moment: kombu keeps every delivered and
unacknowledged message in Redis (`unacked`) until it is acknowledged, a later restore or the
visibility timeout brings it back, and the reconciler re-sends from the database if Redis lost it.
Any other error still stops the worker (and its liveness probe then fails: below).

**Liveness.** A timer on the consumer's event loop writes the worker's heartbeat file every
`HEARTBEAT_EVERY_S` (`workers.runtime.metrics.beat`): a worker whose loop is stuck, whose consumer
died or whose process exited stops beating, and `newsflow health --live` fails once the beat is
older than `--max-age` (at once when its process is gone). While the consumer reconnects to the broker
(an outage: no loop runs) it beats with state `connecting`, so an outage never restarts a worker.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import bootsteps
from celery.worker.consumer import Consumer as CeleryConsumer

from workers.core.errors import raised_inside
from workers.core.logging import get_logger

log = get_logger(__name__)


class BrokerConnectionLost(ConnectionError):
    """kombu#582 seen as what it is: the broker connection went away while a channel was closed."""


def is_lost_connection_bug(exc: BaseException) -> bool:
    """True for kombu#582: an AttributeError on a connection's missing `hostname`, raised inside kombu."""
    if not isinstance(exc, AttributeError) or "attribute 'hostname'" not in str(exc):
        return False
    return "'NoneType'" in str(exc) and raised_inside(exc, "kombu")


class _Blueprint(CeleryConsumer.Blueprint):  # type: ignore[misc]
    """Celery's consumer blueprint; kombu#582 leaves its start as a connection error (recoverable)."""

    def start(self, parent: Any) -> None:
        try:
            super().start(parent)
        except AttributeError as exc:
            if not is_lost_connection_bug(exc):
                raise
            log.warning(
                "broker_connection_lost",
                error=f"{type(exc).__name__}: {exc}",
                known_issue="celery/kombu#582",
                action="reconnecting",
            )
            raise BrokerConnectionLost(str(exc)) from exc


class Consumer(CeleryConsumer):  # type: ignore[misc]
    """Celery's consumer (`worker_consumer`), with kombu#582 recoverable and a reconnect that beats."""

    Blueprint = _Blueprint

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known: tuple[type[BaseException], ...] = tuple(getattr(self, "connection_errors", ()))
        self.connection_errors = (*known, BrokerConnectionLost)

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        """Celery's handling of a lost connection, which closes the lost connection and so restores its
        channel's unacknowledged messages: where kombu#582 strikes again (seen in the Redis-kill bench), the
        close is given up (the messages stay in Redis's `unacked` until the visibility timeout) and the
        consumer reconnects as usual."""
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as error:
            if not is_lost_connection_bug(error):
                raise
            self.connection = None
            log.warning(
                "broker_connection_lost",
                error=f"{type(error).__name__}: {error}",
                known_issue="celery/kombu#582",
                action="reconnecting",
                during="closing the lost connection",
            )

    def connect(self) -> Any:
        """Celery's connect (retried for as long as the broker is away), beating `connecting` meanwhile."""
        with _beating(self, "connecting"):
            return super().connect()


@contextmanager
def _beating(consumer: Any, state: str) -> Iterator[None]:
    """Beat from a thread while the block runs (the event loop is not running then)."""
    from workers.runtime.metrics import HEARTBEAT_EVERY_S, beat

    stop = threading.Event()

    def run() -> None:
        while True:
            beat(consumer, state)
            if stop.wait(HEARTBEAT_EVERY_S):
                return

    thread = threading.Thread(target=run, name="newsflow-heartbeat-connecting", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


class LoopHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step: the heartbeat, written by a timer of the consumer's event loop."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        self.tref: Any = None
        super().__init__(c, **kwargs)

    def start(self, c: Any) -> None:
        from workers.runtime.metrics import HEARTBEAT_EVERY_S, beat

        beat(c, "consuming")
        self.tref = c.timer.call_repeatedly(HEARTBEAT_EVERY_S, beat, (c, "consuming"), priority=10)

    def stop(self, c: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop
