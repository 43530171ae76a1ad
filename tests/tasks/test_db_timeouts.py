"""Every database wait has a deadline PostgreSQL enforces (STYLE.md 19, issue 19.2): real PostgreSQL."""

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from schemas import RawArticle, StageMessage
from tests.samples import EXAMPLES
from tests.servers import libpq_url
from workers.core.errors import TransientError, db_timeout
from workers.core.ids import article_id
from workers.core.settings import Settings, get_settings
from workers.db import repo
from workers.db.engine import get_engine, transaction, upgrade
from workers.runtime.tasks import clean, dedup, store, tag

ARTICLE = RawArticle(
    source="valleypost.example",
    url="https://valleypost.example/news/riverside-library-reopens",
    content_type="text/html",
    body=(EXAMPLES / "valleypost-library.html").read_text(),
)
HELD_S = 20
"""How long the test holds its lock at most: a wait without a server deadline would last this long."""


@pytest.fixture
def bounded_db(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated PostgreSQL database whose sessions have 1 s statement and lock timeouts and a 3 s idle
    timeout (the task time limit: soft limit 2 s, hard 3 s)."""
    upgrade(postgres_url)
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", postgres_url)
    monkeypatch.setenv("NEWSFLOW_TASK_SOFT_TIME_LIMIT", "2")
    monkeypatch.setenv("NEWSFLOW_TASK_TIME_LIMIT", "3")
    monkeypatch.setenv("NEWSFLOW_DB_STATEMENT_TIMEOUT", "1")
    monkeypatch.setenv("NEWSFLOW_DB_LOCK_TIMEOUT", "1")
    get_settings.cache_clear()
    from workers.stages import tag as tag_stage

    tag_stage.load_model(get_settings().tagger_model)  # loaded before any transaction opens
    yield postgres_url
    get_settings.cache_clear()


def test_timeouts_are_capped_below_the_soft_time_limit():
    """Statement and lock timeouts are at most 3/4 of the soft time limit (0 leaves one off); an idle
    transaction is ended at the task time limit, and a shorter idle timeout than the soft limit is refused
    (a stage computes inside its transaction)."""
    settings = Settings(task_soft_time_limit=4, task_time_limit=8, db_statement_timeout=30, db_lock_timeout=0)
    assert settings.db_timeouts_ms() == {
        "statement_timeout": 3000,
        "lock_timeout": 0,
        "idle_in_transaction_session_timeout": 8000,
    }
    with pytest.raises(ValueError, match="must exceed task_soft_time_limit"):
        Settings(task_soft_time_limit=4, task_time_limit=8, db_idle_in_transaction_timeout=3)


def test_every_session_has_the_three_timeouts(bounded_db):
    """A session from the engine reports the configured statement, lock and idle-in-transaction timeouts."""
    with transaction(bounded_db) as session:
        shown = {
            name: session.scalar(sa.text(f"SHOW {name}"))
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        }
    assert shown == {
        "statement_timeout": "1s",
        "lock_timeout": "1s",
        "idle_in_transaction_session_timeout": "3s",
    }


def test_a_task_waiting_on_a_lock_gives_up_at_the_lock_timeout_and_retries(bounded_db):
    """The store task blocked by another session's lock ends within seconds as TransientError (a retry),
    with no dead letter, instead of waiting as long as the lock is held."""
    message = StageMessage(article_id=article_id(ARTICLE), trace_id="t").model_dump()
    with transaction(bounded_db) as session:
        repo.ensure_raw(session, message["article_id"], ARTICLE, "t")
    for task in (clean, dedup, tag):
        task(message)
    holder = psycopg.connect(libpq_url(bounded_db))
    holder.execute("LOCK TABLE articles IN ACCESS EXCLUSIVE MODE")
    release = threading.Timer(HELD_S, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"(lock|statement) timeout"):
            store(message)
        took = time.monotonic() - started
    finally:
        release.cancel()
        holder.rollback()
        holder.close()
    assert took < 8
    with transaction(bounded_db) as session:
        assert session.scalar(sa.text("SELECT count(*) FROM dead_letters")) == 0
    store(message)  # the retry, once the lock is gone
    with transaction(bounded_db) as session:
        assert session.scalar(sa.text("SELECT count(*) FROM articles")) == 1


def test_a_statement_past_statement_timeout_is_a_transient_timeout(bounded_db):
    """A statement running past statement_timeout is cancelled by the server and named as a timeout."""
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError) as caught, transaction(bounded_db) as session:
        session.execute(sa.text(f"SELECT pg_sleep({HELD_S})"))
    assert time.monotonic() - started < 8
    assert db_timeout(caught.value) == "statement_timeout"


def test_an_idle_transaction_is_ended_by_the_server_and_its_locks_released(bounded_db):
    """A session that sits idle inside a transaction (a frozen worker) is ended by the server, so the
    locks it held are free for others; its own next statement fails as a transient error."""
    engine = get_engine(bounded_db)
    conn = engine.connect()
    try:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(42)"))
        time.sleep(4)  # the worker is frozen past idle_in_transaction_session_timeout
        with psycopg.connect(libpq_url(bounded_db), autocommit=True) as other:
            assert other.execute("SELECT pg_try_advisory_lock(42)").fetchone() == (True,)
        with pytest.raises(sa.exc.DBAPIError) as caught:
            conn.execute(sa.text("SELECT 1"))
        assert (
            db_timeout(caught.value) == "idle_in_transaction_session_timeout"
            or caught.value.connection_invalidated
        )
    finally:
        conn.close()
