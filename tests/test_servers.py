"""The private test servers start, answer, survive kill + restart, and clean up after themselves."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers import (
    ExternalRedis,
    PostgresServer,
    RedisServer,
    ServerError,
    ServerNotManagedError,
    libpq_url,
)

needs_local_redis = pytest.mark.skipif(
    bool(os.environ.get("NEWSFLOW_TEST_REDIS_URL")), reason="NEWSFLOW_TEST_REDIS_URL set: no local servers"
)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_redis_set_get(redis_url: str) -> None:
    """redis_url points at a running Redis that stores and returns a value."""
    with redis.Redis.from_url(redis_url) as client:
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"


def test_redis_url_starts_empty(redis_url: str) -> None:
    """redis_url's database is flushed before each test, so no earlier test's keys are visible."""
    with redis.Redis.from_url(redis_url) as client:
        assert client.dbsize() == 0


def test_redis_kill_restart_keeps_appendonly_data(redis_server: RedisServer, redis_url: str) -> None:
    """A SIGKILLed appendonly Redis comes back on the same port with every acknowledged write."""
    with redis.Redis.from_url(redis_url) as client:
        client.set("survivor", "yes")
    old_pid, port = redis_server.pid, redis_server.port

    redis_server.kill()

    assert not redis_server.running
    with (
        redis.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0)) as client,
        pytest.raises(redis.ConnectionError),
    ):
        client.ping()

    redis_server.restart()

    assert (redis_server.port, redis_server.pid != old_pid) == (port, True)
    with redis.Redis.from_url(redis_url) as client:
        assert client.get("survivor") == b"yes"


@needs_local_redis
def test_redis_password_is_required_when_set() -> None:
    """With a password, unauthenticated commands fail and the server's url authenticates."""
    with RedisServer(password="s3cret") as server:
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 0))
        with anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()


@needs_local_redis
def test_redis_stop_removes_process_and_directory() -> None:
    """stop() ends the server process and deletes its temp dir; a second stop() is a no-op."""
    server = RedisServer()
    server.start()
    pid = server.pid
    assert pid is not None

    server.stop()
    server.stop()

    assert not _pid_alive(pid)
    assert not server.dir.exists()


@needs_local_redis
def test_redis_start_failure_reports_log_tail() -> None:
    """A server that exits during start-up raises ServerError quoting its own log."""
    server = RedisServer(appendfsync="sometimes")
    try:
        with pytest.raises(ServerError, match="appendfsync"):
            server.start()
    finally:
        server.stop()


def test_external_server_cannot_be_killed() -> None:
    """kill() on a server given by URL raises ServerNotManagedError (which conftest turns into a skip)."""
    with pytest.raises(ServerNotManagedError):
        ExternalRedis("redis://127.0.0.1:1/0").kill()


def test_postgres_fresh_database_answers_queries(postgres_url: str) -> None:
    """postgres_url is a SQLAlchemy URL of a new, empty database of its own."""
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            name = conn.execute(sa.text("SELECT current_database()")).scalar_one()
            tables = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
            assert name.startswith("test_")
            assert postgres_url.endswith(f"/{name}")
            assert tables.scalar_one() == 0
    finally:
        engine.dispose()


def test_postgres_create_database(postgres_server: PostgresServer) -> None:
    """create_database returns a URL of the new database; drop_database removes it."""
    name = f"created_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    try:
        with psycopg.connect(libpq_url(url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (name,)
    finally:
        postgres_server.drop_database(name)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(libpq_url(url)).close()


def test_postgres_kill_restart_keeps_committed_rows(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A SIGKILLed postmaster restarts on the same port, recovers, and still has committed rows."""
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.execute("INSERT INTO t VALUES ('before kill')")
    old_pid, port = postgres_server.pid, postgres_server.port

    postgres_server.kill()

    assert not postgres_server.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(libpq_url(postgres_url), connect_timeout=2).close()

    postgres_server.restart()

    assert (postgres_server.port, postgres_server.pid != old_pid) == (port, True)
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        assert conn.execute("SELECT v FROM t").fetchall() == [("before kill",)]


def test_postgres_kill_leaves_no_backends(postgres_server: PostgresServer, postgres_url: str) -> None:
    """kill() reaps the backends orphaned by the dead postmaster, so no postgres process lingers."""
    conn = psycopg.connect(libpq_url(postgres_url), autocommit=True)
    try:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        postgres_server.kill()
    finally:
        conn.close()

    assert not Path(f"/proc/{row[0]}").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has to drop privileges")
def test_postgres_runs_unprivileged_under_root(postgres_server: PostgresServer) -> None:
    """Under root the postmaster runs as an unprivileged user, since PostgreSQL refuses root."""
    if not postgres_server.managed:
        pytest.skip("external PostgreSQL")
    status = Path(f"/proc/{postgres_server.pid}/status").read_text()
    real_uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert real_uid != "0"


def test_sqlite_url_is_a_file_in_tmp_path(sqlite_url: str, tmp_path: Path) -> None:
    """sqlite_url is a SQLAlchemy URL of a database file under this test's tmp_path."""
    engine = sa.create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (v int)"))
    finally:
        engine.dispose()
    assert (tmp_path / "newsflow.db").is_file()
