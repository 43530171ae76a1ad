"""Engines and sessions, one engine per database URL per process, and schema migration."""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    # WAL lets readers (newsflow show/status) work while the embedded runner writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL syncs at checkpoints, not on every commit: a crash of the process loses nothing
    # and never corrupts; only a power or OS failure may undo the last commits (embedded mode's trade).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_engines: dict[tuple[str, bool], Engine] = {}


def session_options(timeouts_ms: dict[str, int]) -> str:
    """The libpq `options` string that sets each PostgreSQL session timeout (milliseconds) at connect."""
    return " ".join(f"-c {name}={ms}" for name, ms in sorted(timeouts_ms.items()))


def get_engine(url: str, *, bounded: bool = True) -> Engine:
    """The engine for `url`, created once per process.

    On PostgreSQL every session of a `bounded` engine (all but migrations) has `statement_timeout`,
    `lock_timeout` and `idle_in_transaction_session_timeout` set at connect, from the settings and below
    the task's soft time limit (STYLE.md 19): a frozen peer holding a lock, or a frozen server, ends a wait
    with an error the task layer retries (`errors.is_db_timeout`), and a frozen worker's open transaction
    is ended by the server, releasing its locks.

    No `pool_pre_ping`: it costs a round trip on every checkout. A connection the database dropped
    fails its next statement with an OperationalError, which the steps report as transient (the task
    layer retries), and SQLAlchemy then invalidates the whole pool, so the retry connects afresh.
    """
    engine = _engines.get((url, bounded))
    if engine is None:
        if make_url(url).get_backend_name() == "sqlite":
            engine = create_engine(url)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            connect_args: dict[str, object] = {}
            if bounded:
                from workers.core.settings import get_settings

                settings = get_settings()
                connect_args["options"] = session_options(settings.db_timeouts_ms())
                # A frozen server accepts the TCP connection and never answers: bound the handshake too.
                connect_args["connect_timeout"] = max(1, round(settings.task_soft_time_limit * 0.75))
            engine = create_engine(url, pool_size=5, max_overflow=5, connect_args=connect_args)
        _engines[(url, bounded)] = engine
    return engine


@cache
def _sessions(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with _sessions(url).begin() as session:
        yield session


def upgrade(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations to `url` up to `revision`; idempotent."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    command.upgrade(config, revision)


def dispose_all() -> None:
    """Close every pooled connection (after fork, or in tests that restart the database)."""
    for engine in _engines.values():
        engine.dispose()
