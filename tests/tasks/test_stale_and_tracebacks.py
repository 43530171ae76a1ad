"""Stale attempts, each dead letter's own traceback, and the time a stage finished (issues 19.1, 20.4,
20.7): task wrappers called directly against a real database (SQLite and PostgreSQL)."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from celery.exceptions import SoftTimeLimitExceeded

from schemas import RawArticle, StageMessage
from tests.integration.conftest import run_cli
from tests.samples import EXAMPLES
from workers.core.errors import DeadLettered
from workers.core.ids import article_id
from workers.core.settings import get_settings
from workers.db import repo
from workers.db.engine import transaction, upgrade
from workers.runtime.tasks import base, clean, store

HEALTHY = RawArticle(
    source="valleypost.example",
    url="https://valleypost.example/news/riverside-library-reopens",
    content_type="text/html",
    body=(EXAMPLES / "valleypost-library.html").read_text(),
)
PDF = RawArticle(source="bad.example", url="https://bad.example/a.pdf", body="%PDF-1.4\n%\x00\x01 obj stream")
EMPTY = RawArticle(
    source="bad.example", url="https://bad.example/empty", body="<html><body><nav>x</nav></body></html>"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database the tasks' settings point at."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(url)
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _persist(url: str, *raws: RawArticle) -> list[dict[str, str]]:
    msgs = [StageMessage(article_id=article_id(raw), trace_id="t") for raw in raws]
    with transaction(url) as session:
        for msg, raw in zip(msgs, raws, strict=True):
            repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
    return [m.model_dump() for m in msgs]


def _open_dead_letters(url: str) -> list[tuple[str, str, str]]:
    with transaction(url) as session:
        rows = session.execute(
            sa.text("SELECT article_id, reason, traceback FROM dead_letters WHERE retried_at IS NULL")
        ).all()
    return [tuple(r) for r in rows]


def test_a_stale_attempt_of_a_finished_stage_ends_quietly(database_url, monkeypatch):
    """Issue 19.1: a paused worker's attempt that hits its soft time limit after another attempt finished
    the stage records no dead letter and returns; a live timeout still dead-letters."""
    (message,) = _persist(database_url, HEALTHY)
    real = base.run_step

    def finished_elsewhere_then_timeout(stage, ctx, msg):
        real(stage, ctx, msg)  # the other worker's attempt records the stage meanwhile
        raise SoftTimeLimitExceeded

    monkeypatch.setattr(base, "run_step", finished_elsewhere_then_timeout)
    assert clean(message) == message
    assert _open_dead_letters(database_url) == []

    (other,) = _persist(database_url, HEALTHY.model_copy(update={"url": "https://valleypost.example/2"}))

    def timeout(stage, ctx, msg):
        raise SoftTimeLimitExceeded

    monkeypatch.setattr(base, "run_step", timeout)
    with pytest.raises(DeadLettered, match="timeout"):
        clean(other)
    assert [(a, r) for a, r, _ in _open_dead_letters(database_url)] == [(other["article_id"], "timeout")]


def test_a_stored_article_never_keeps_an_attempt_dead_letter(database_url, monkeypatch):
    """Issue 19.1: a timeout dead letter a stale attempt wrote before another attempt stored the article is
    closed by that store (noted, journaled), so no article is both stored and dead-lettered."""
    (message,) = _persist(database_url, HEALTHY)
    for stage in ("clean", "dedup", "tag"):
        getattr(__import__("workers.runtime.tasks", fromlist=[stage]), stage)(message)
    with transaction(database_url) as session:
        repo.record_dead_letter(
            session,
            stage="tag",
            message=StageMessage.model_validate(message),
            payload="{}",
            error=SoftTimeLimitExceeded(),
            reason="timeout",
            attempts=1,
        )
    store(message)
    assert _open_dead_letters(database_url) == []
    with transaction(database_url) as session:
        events = session.execute(sa.text("SELECT event FROM stage_journal WHERE event = 'superseded'")).all()
    assert len(events) == 1


def test_each_dead_letter_of_a_batch_keeps_its_own_traceback(database_url, monkeypatch):
    """Issue 20.4: a batch with a PDF (not_html) and an empty page (no_content) records two dead letters,
    each with its own error's traceback, not one exception for the batch; the healthy article goes on;
    the batch ends with each article's outcome instead of failing."""
    messages = _persist(database_url, PDF, HEALTHY, EMPTY)
    result = clean({"articles": messages})
    assert result["outcomes"]["ok"] == 1
    assert [m["article_id"] for m in result["articles"]] == [messages[1]["article_id"]]
    found = {a: (r, tb) for a, r, tb in _open_dead_letters(database_url)}
    pdf_reason, pdf_tb = found[messages[0]["article_id"]]
    empty_reason, empty_tb = found[messages[2]["article_id"]]
    assert (pdf_reason, empty_reason) == ("not_html", "no_content")
    assert "NotHtml" in pdf_tb
    assert "NoContent" not in pdf_tb
    assert "NoContent" in empty_tb
    assert "NotHtml" not in empty_tb


def test_a_closed_dead_letter_shows_its_own_traceback_not_a_later_one(database_url):
    """Issue 20.4: `dead-letters show` of a dead letter closed by a retry shows that attempt's traceback,
    not the traceback of the failure that opened a new dead letter later."""
    (message,) = _persist(database_url, PDF)
    with pytest.raises(DeadLettered) as first:
        clean(message)
    with transaction(database_url) as session:
        repo.mark_retried(session, [first.value.dead_letter_id])

    def later() -> None:
        raise RuntimeError("a later, different failure")

    try:
        later()
    except RuntimeError as exc:
        with transaction(database_url) as session:
            repo.record_dead_letter(
                session,
                stage="clean",
                message=StageMessage.model_validate(message),
                payload="{}",
                error=exc,
                reason="unexpected",
                attempts=2,
            )
    env = {"NEWSFLOW_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    shown = run_cli(env, "dead-letters", "show", str(first.value.dead_letter_id), "--json")
    assert shown.returncode == 0, shown.stderr
    traceback = json.loads(shown.stdout)["traceback"]
    assert "NotHtml" in traceback
    assert "a later, different failure" not in traceback


def test_recorded_time_is_when_the_stage_finished_not_when_its_transaction_began(database_url):
    """Issue 20.7: a stage result written late in a long transaction is recorded with the write's time."""
    (message,) = _persist(database_url, HEALTHY)
    with transaction(database_url) as session:
        time.sleep(1.2)
        before = datetime.now(UTC)
        repo.upsert_results(
            session, "clean", [(message["article_id"], "v", StageMessage.model_validate(message))]
        )
    with transaction(database_url) as session:
        recorded = session.scalar(sa.text("SELECT updated_at FROM stage_results"))
    if isinstance(recorded, str):  # SQLite keeps text
        recorded = datetime.fromisoformat(recorded)
    recorded = recorded if recorded.tzinfo else recorded.replace(tzinfo=UTC)
    assert recorded >= before.replace(microsecond=0)
