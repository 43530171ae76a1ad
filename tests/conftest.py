"""Fixtures shared by every test: private Redis and PostgreSQL servers and per-test URLs.

- ``redis_server`` / ``postgres_server`` (session): a ``RedisServer`` (appendonly, so data survives
  ``kill()`` + ``restart()``) and a ``PostgresServer`` from ``tests/servers.py``, started on first use
  and stopped at the end of the session.
- ``redis_url`` / ``postgres_url`` / ``sqlite_url`` (function): an emptied Redis database, a fresh
  PostgreSQL database dropped afterwards, and a SQLite file under ``tmp_path``.

Set ``NEWSFLOW_TEST_REDIS_URL`` / ``NEWSFLOW_TEST_DATABASE_URL`` to use existing servers instead.
``redis_url`` then FLUSHes the database in that URL, and a test that calls ``kill()`` or ``restart()``
on such a server is skipped, since it is not ours to crash.

Fixtures for integration tests (workers, Celery apps) belong in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers import ExternalPostgres, ExternalRedis, PostgresServer, RedisServer, ServerNotManagedError


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Turn ServerNotManagedError (kill/restart of an external server) into a skip instead of a failure."""
    try:
        return (yield)
    except ServerNotManagedError as exc:
        pytest.skip(f"fault injection needs a private server: {exc}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | ExternalRedis]:
    """The session's Redis: a private appendonly server, or NEWSFLOW_TEST_REDIS_URL if set."""
    if url := os.environ.get("NEWSFLOW_TEST_REDIS_URL"):
        yield ExternalRedis(url)
        return
    server = RedisServer(appendonly=True)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | ExternalPostgres]:
    """The session's PostgreSQL: a private cluster, or NEWSFLOW_TEST_DATABASE_URL if set."""
    if url := os.environ.get("NEWSFLOW_TEST_DATABASE_URL"):
        yield ExternalPostgres(url)
        return
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer | ExternalRedis) -> str:
    """URL of a Redis database emptied (FLUSHDB) just before this test."""
    redis_server.start()  # a previous fault test may have left it killed; no-op otherwise
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    return redis_server.url


@pytest.fixture
def postgres_url(postgres_server: PostgresServer | ExternalPostgres) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database for this test only; dropped afterwards."""
    postgres_server.start()
    name = f"test_{uuid.uuid4().hex}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.start()  # the test may have killed the server; bring it back to drop the database
    postgres_server.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a SQLite file in this test's tmp_path (created on first connect)."""
    return f"sqlite:///{tmp_path / 'newsflow.db'}"
