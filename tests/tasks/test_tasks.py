"""Task wrappers called directly (STYLE.md 11, tier 2): real database, no broker, no worker."""

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from schemas import RawArticle, StageMessage
from tests.samples import EXAMPLES
from workers.core.errors import DeadLettered, TransientError
from workers.core.ids import article_id
from workers.core.settings import get_settings
from workers.db import repo
from workers.db.engine import transaction, upgrade
from workers.runtime.tasks import clean, dedup, store, tag

TASKS = (clean, dedup, tag, store)
ARTICLE = RawArticle(
    source="valleypost.example",
    url="https://valleypost.example/news/riverside-library-reopens",
    content_type="text/html",
    body=(EXAMPLES / "valleypost-library.html").read_text(),
)


HISTORY_TABLES = {"alembic_version", "stage_journal"}
"""Tables that are history, not state: the stage journal gains a row per attempt, by design."""


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated database (SQLite file or fresh PostgreSQL database) that the tasks' settings point at."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(url)
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _persist(url: str, raw: RawArticle) -> dict[str, str]:
    msg = StageMessage(article_id=article_id(raw), trace_id="test-trace")
    with transaction(url) as session:
        repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
    return msg.model_dump()


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t not in HISTORY_TABLES]
        rows = {t: sorted(map(repr, conn.execute(sa.text(f"SELECT * FROM {t}")))) for t in tables}
    engine.dispose()
    return rows


def _dead_letters(url: str) -> list[Any]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT stage, reason, attempts, article_id, payload FROM dead_letters")
        ).all()
    engine.dispose()
    return list(rows)


def test_each_task_returns_the_message_for_the_next(database_url):
    """Called in order, the four tasks pass the same message along and leave a stored article."""
    message = _persist(database_url, ARTICLE)
    for task in TASKS:
        assert task(message) == message
    with transaction(database_url) as session:
        article = repo.fetch_article(session, message["article_id"])
    assert article is not None
    assert article.title == "Riverside library reopens after flood repairs"
    assert set(article.versions) >= {"clean", "dedup", "tag", "store"}


def test_running_every_task_twice_changes_no_row(database_url):
    """A second run of each task, in order or repeated in place, leaves every row exactly as it was."""
    message = _persist(database_url, ARTICLE)
    for task in TASKS:
        task(message)
    before = _rows(database_url)
    for task in TASKS:
        task(message)
        task(message)
    assert _rows(database_url) == before


def test_permanent_error_is_dead_lettered_once_and_stops_the_chain(database_url):
    """A page that is not HTML raises DeadLettered (FAILURE, no next stage) and leaves one dead letter with stage, reason, attempts."""
    raw = RawArticle(source="broken.example", content_type="text/html", body="%PDF-1.4\n%\x00\x01 obj stream")
    message = _persist(database_url, raw)
    with pytest.raises(DeadLettered) as first:
        clean(message)
    with pytest.raises(DeadLettered) as second:
        clean(message)
    assert (first.value.stage, first.value.reason) == ("clean", "not_html")
    assert first.value.dead_letter_id == second.value.dead_letter_id is not None
    [row] = _dead_letters(database_url)
    assert (row.stage, row.reason, row.attempts, row.article_id) == (
        "clean",
        "not_html",
        1,
        message["article_id"],
    )
    with transaction(database_url) as session:
        assert repo.load_result(session, message["article_id"], "clean", RawArticle) is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"article_id": 42}, "invalid_message"),
        ({"article_id": "a" * 32, "trace_id": "t", "extra": 1}, "invalid_message"),
        ({"article_id": "b" * 32, "trace_id": "t"}, "missing_input"),
    ],
)
def test_bad_messages_are_dead_lettered_with_their_payload(database_url, message, reason):
    """Invalid messages and messages for unknown articles are kept as dead letters, never dropped."""
    with pytest.raises(DeadLettered, match=reason):
        dedup(message)
    [row] = _dead_letters(database_url)
    assert (row.stage, row.reason) == ("dedup", reason)
    assert '"article_id"' in row.payload


def test_database_outage_is_transient_not_dead_lettered(monkeypatch):
    """A refused database connection surfaces as TransientError (retried by Celery), with no dead letter."""
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        with pytest.raises(TransientError):
            clean({"article_id": "c" * 32, "trace_id": "t"})
    finally:
        get_settings.cache_clear()


def test_task_logs_one_summary_event_without_the_body(database_url):
    """Each task logs one task_done event with its outcome, duration and ids, and never the article text."""
    message = _persist(database_url, ARTICLE)
    with capture_logs() as events:
        clean(message)
    done = [e for e in events if e["event"] == "task_done"]
    assert len(done) == 1
    assert done[0]["outcome"] == "ok"
    assert done[0]["log_level"] == "info"
    assert isinstance(done[0]["duration_ms"], int)
    assert "floodwater" not in repr(events)


def test_dead_letter_survives_celery_json_serialisation():
    """DeadLettered round-trips through Celery's JSON exception encoding with stage, reason and id intact."""
    from celery.utils.serialization import create_exception_cls  # noqa: F401 -- Celery's own machinery

    from workers.runtime.celery_app import app

    backend = app.backend
    encoded = backend.prepare_exception(DeadLettered("tag", "timeout", 7), serializer="json")
    decoded = backend.exception_to_python(encoded)
    assert type(decoded).__name__ == "DeadLettered"
    assert decoded.args == ("tag", "timeout", 7)


def test_concurrent_dead_letters_for_one_article_stage_leave_one_open_row(database_url):
    """Eight threads recording the same (article, stage) failure at once leave exactly one open dead letter."""
    import threading

    from workers.runtime.pipeline import Context, dead_letter

    message = _persist(database_url, ARTICLE)
    msg = StageMessage.model_validate(message)
    ids: list[int] = []
    errors: list[BaseException] = []

    def record(n: int) -> None:
        try:
            ids.append(
                dead_letter(
                    Context(get_settings()),
                    stage="tag",
                    msg=msg,
                    payload="{}",
                    error=RuntimeError("boom"),
                    reason="unexpected",
                    attempts=n,
                )
            )
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] or all("locked" in str(e) for e in errors)  # SQLite may refuse a writer
    assert len(set(ids)) == 1
    [row] = _dead_letters(database_url)
    assert row.attempts == max(n for n in range(1, 9)) or database_url.startswith("sqlite")


@pytest.mark.parametrize(
    ("make", "permanent"),
    [
        (lambda: _statement_error(sa.exc.OperationalError, "too many SQL variables"), True),
        (
            lambda: _statement_error(
                sa.exc.OperationalError,
                "sending query failed: number of parameters must be between 0 and 65535",
            ),
            True,
        ),
        (
            lambda: _statement_error(
                sa.exc.DataError, "PostgreSQL text fields cannot contain NUL (0x00) bytes"
            ),
            True,
        ),
        (
            lambda: _statement_error(sa.exc.IntegrityError, "duplicate key value violates unique constraint"),
            True,
        ),
        (lambda: _statement_error(sa.exc.OperationalError, "connection refused"), False),
        (lambda: _statement_error(sa.exc.OperationalError, "database is locked"), False),
    ],
)
def test_deterministic_database_errors_are_permanent(monkeypatch, make, permanent):
    """A statement the database will refuse again is DatabaseRejected (permanent); an outage stays transient."""
    from workers.core.errors import DatabaseRejected
    from workers.runtime import pipeline

    def failing(_ctx: Any, _msg: Any) -> Any:
        raise make()

    monkeypatch.setitem(
        pipeline.BY_NAME, "store", dataclasses.replace(pipeline.BY_NAME["store"], step=failing)
    )
    msg = StageMessage(article_id="d" * 32, trace_id="t")
    expected = DatabaseRejected if permanent else TransientError
    with pytest.raises(expected) as raised:
        pipeline.run_step("store", pipeline.Context(get_settings()), msg)
    assert "secret article text" not in str(raised.value)  # SQL parameters never reach the message


def _statement_error(cls: type[sa.exc.DBAPIError], text: str) -> sa.exc.DBAPIError:
    return cls("INSERT INTO articles VALUES (?)", {"text": "secret article text"}, Exception(text))


def test_unexpected_error_log_line_has_no_sql_parameters(database_url, monkeypatch):
    """An unexpected database error is logged with its class and a cleaned message, never the SQL parameters."""
    from workers.runtime import pipeline

    def failing(_ctx: Any, _msg: Any) -> Any:
        raise sa.exc.StatementError(
            "weird", "INSERT INTO x VALUES (?)", {"text": "secret article text"}, KeyError("k")
        )

    message = _persist(database_url, ARTICLE)
    monkeypatch.setitem(
        pipeline.BY_NAME, "clean", dataclasses.replace(pipeline.BY_NAME["clean"], step=failing)
    )
    with capture_logs() as events, pytest.raises(DeadLettered, match="unexpected"):
        clean(message)
    [line] = [e for e in events if e["event"] == "task_unexpected_error"]
    assert line["error_class"] == "StatementError"
    assert "secret article text" not in repr(events)
    [row] = _dead_letters(database_url)
    assert "secret article text" not in row.payload
