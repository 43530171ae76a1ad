"""Settings validation, the Celery app's safety settings, ids, and log-line safety."""

import io
import json
import logging

import pydantic
import pytest
import structlog

from schemas import RawArticle
from workers.core import keys
from workers.core.ids import article_id
from workers.core.logging import configure_logging
from workers.core.settings import Settings
from workers.runtime.celery_app import create_app


def test_visibility_timeout_must_exceed_retry_delay_and_time_limit():
    """Settings refuse a visibility timeout that would redeliver messages still being retried or run."""
    with pytest.raises(pydantic.ValidationError, match="visibility_timeout"):
        Settings(visibility_timeout=200, retry_backoff_max=300, task_time_limit=90)


def test_settings_come_from_prefixed_environment(monkeypatch):
    """NEWSFLOW_* variables configure the settings."""
    monkeypatch.setenv("NEWSFLOW_HIGH_WATER_MARK", "17")
    monkeypatch.setenv("NEWSFLOW_BROKER_URL", "redis://:pw@example.internal:6380/2")
    settings = Settings()
    assert settings.high_water_mark == 17
    assert settings.broker_url.port == 6380


def test_celery_app_is_json_only_late_ack_one_queue_per_stage():
    """The app refuses pickle, acks late, requeues on worker loss, prefetches one and routes per stage."""
    conf = create_app().conf
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == "json"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.task_routes == {
        keys.task_name(s): {"queue": keys.queue_name(s)} for s in ("clean", "dedup", "tag", "store")
    }


def test_article_id_is_deterministic_and_ignores_fetch_time():
    """Equal source, URL and body give the same id whatever the fetch time; another body another id."""
    from datetime import UTC, datetime

    a = RawArticle(source="s", body="b", url="https://x.example/1")
    b = RawArticle(source="s", body="b", url="https://x.example/1", fetched_at=datetime.now(UTC))
    c = RawArticle(source="s", body="c", url="https://x.example/1")
    assert article_id(a) == article_id(b) != article_id(c)
    assert len(article_id(a)) == 32


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_control_characters_cannot_forge_a_log_line(fmt, monkeypatch):
    """A field holding newlines and escape codes still yields exactly one log line, JSON or console."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(fmt, "INFO")  # type: ignore[arg-type]
    try:
        structlog.stdlib.get_logger("t").info("article_enqueued", source='evil\n{"event": "forged"}\r\x1b[2J')
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    if fmt == "json":
        assert json.loads(lines[0])["source"].startswith("evil\n")
    else:
        assert "\\x0a" in lines[0]
        assert "\x1b[2J" not in lines[0]
