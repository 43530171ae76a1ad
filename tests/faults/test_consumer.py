"""The worker's consumer survives celery/kombu#582 where Celery closes a lost connection (issue 30.1)."""

from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from workers.runtime.consumer import Consumer, is_lost_connection_bug


class _LostConnection:
    """A broker connection whose close restores unacknowledged messages and hits kombu#582."""

    connection_errors: tuple[type[BaseException], ...] = (ConnectionError,)
    channel_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def collect(self, **_: Any) -> None:
        return None

    def close(self) -> None:
        raise self.error


def _consumer(connection: _LostConnection) -> Any:
    """A consumer with only what Celery's error handler reads (no broker, no pool)."""
    consumer = Consumer.__new__(Consumer)
    consumer.connection = connection
    conf = SimpleNamespace(worker_cancel_long_running_tasks_on_connection_loss=True)
    consumer.app = SimpleNamespace(conf=conf)
    return consumer


def test_kombu_582_while_closing_the_lost_connection_is_survived():
    """Celery closes the lost connection inside its error handler; kombu#582 raised there (through kombu's
    `ignore_errors`) no longer escapes as "Unrecoverable error": it is logged and the consumer reconnects."""
    stub = _consumer(_LostConnection(AttributeError("'NoneType' object has no attribute 'hostname'")))
    with capture_logs() as logs:
        Consumer.on_connection_error_after_connected(stub, ConnectionError("Redis killed"))
    assert stub.connection is None
    assert [e["known_issue"] for e in logs if e["event"] == "broker_connection_lost"] == ["celery/kombu#582"]


def test_any_other_error_while_closing_still_stops_the_worker():
    """Only kombu#582 is made recoverable: another AttributeError still escapes."""
    stub = _consumer(_LostConnection(AttributeError("'NoneType' object has no attribute 'port'")))
    with pytest.raises(AttributeError):
        Consumer.on_connection_error_after_connected(stub, ConnectionError("Redis killed"))


def test_kombu_582_is_told_by_its_message_and_kombu_frames():
    """The error is kombu#582 only with its message, raised inside kombu."""

    def raise_here() -> None:
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    with pytest.raises(AttributeError) as outside:
        raise_here()
    assert not is_lost_connection_bug(outside.value)
