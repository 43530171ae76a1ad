"""The producer at a full Redis and a frozen PostgreSQL (real servers): it waits and says so in one
line, goes on when the server is back, and every article is persisted and published once; an article
persisted but never published is sent by the next run, not called "already stored".

`bench/faults.py --producer` runs these and prints their `ledger:` lines.
"""

import json
import os
import signal
import threading
import time

import pytest
import redis
import sqlalchemy as sa

from tests.servers import _descendants
from tests.test_producer import _articles, _queued_articles, _raw_count, producer_env  # noqa: F401 -- fixture
from workers.core.ids import article_id, new_trace_id
from workers.db.engine import transaction
from workers.db.repo import ensure_raw_batch
from workers.ingest import producer
from workers.ingest.producer import enqueue

pytestmark = pytest.mark.integration


def _fill(client: redis.Redis) -> int:
    """Put Redis at maxmemory under noeviction: writes are refused, reads still answer. Returns keys written."""
    client.config_set("maxmemory-policy", "noeviction")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 2 * 1024 * 1024)
    junk = b"x" * 64 * 1024
    for n in range(1000):
        try:
            client.set(f"junk:{n}", junk)
        except redis.exceptions.OutOfMemoryError:
            # Used memory hovers around the mark (buffers come and go); keep it clearly above, so every
            # write is refused until the junk is deleted, as in a Redis the workers cannot drain.
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", max(used - 1024 * 1024, 1024 * 1024))
            return n
    raise AssertionError("Redis never reached maxmemory")


def _unpublished(db: str) -> int:
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        n = int(
            conn.execute(sa.text("SELECT count(*) FROM raw_articles WHERE published_at IS NULL")).scalar_one()
        )
    engine.dispose()
    return n


def _ledger(case: str, db: str, client: redis.Redis, sent: list[str]) -> None:
    queued = _queued_articles(client)
    persisted = _raw_count(db)
    lost = len(set(sent) - set(queued))
    duplicated = len(queued) - len(set(queued))
    print(
        f"\nledger: {case}: persisted {persisted}, queued {len(set(queued))}, never published "
        f"{_unpublished(db)}, lost {lost}, duplicated {duplicated}"
    )
    assert lost == 0
    assert duplicated == 0


def test_producer_waits_at_a_full_redis_and_sends_everything(producer_env, capsys):  # noqa: F811
    """Redis at maxmemory with noeviction refuses the publishes: the producer says "Redis is full" once,
    no traceback, waits; once memory is freed it publishes every persisted article exactly once."""
    settings, app = producer_env
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    written = _fill(client)
    reports: list[producer.EnqueueReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(enqueue(_articles(250), settings, app))
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    try:
        worker.start()
        time.sleep(4.0)
        assert worker.is_alive(), errors
        assert client.llen("newsflow.clean") == 0  # nothing could be published
        client.delete(*[f"junk:{n}" for n in range(written)])
        worker.join(timeout=60)
    finally:
        client.config_set("maxmemory", 0)
        client.delete(*[f"junk:{n}" for n in range(1000)])
        worker.join(timeout=60)  # never leave a producer running into the next test's Redis
    assert not errors, errors
    [report] = reports
    err = capsys.readouterr().err
    assert err.count("Redis is full") == 1, err
    assert "reachable again" in err
    assert "Traceback" not in err
    assert report.outage_s > 1
    assert report.published == 250
    assert _raw_count(settings.database_url) == 250
    assert _unpublished(settings.database_url) == 0
    _ledger("redis-maxmemory", settings.database_url, client, report.sent)


def test_rerun_sends_articles_persisted_but_never_published(producer_env):  # noqa: F811
    """Articles a stopped producer persisted but never published are sent by the next run over the same
    input (counted as unsent, not already stored); a third run sends nothing."""
    settings, app = producer_env
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    articles = _articles(6)
    with transaction(
        settings.database_url
    ) as session:  # a producer stopped after persisting, before publishing
        ensure_raw_batch(session, [(article_id(raw), raw, new_trace_id()) for raw in articles[:5]])
    again = enqueue(articles, settings, app)
    assert (again.new, again.unsent, again.published) == (1, 5, 6)
    assert sorted(_queued_articles(client)) == sorted(article_id(raw) for raw in articles)
    third = enqueue(articles, settings, app)
    assert (third.new, third.unsent, third.published) == (0, 0, 0)
    _ledger("persisted-never-published", settings.database_url, client, again.sent)


def test_producer_says_it_waits_for_a_frozen_database(producer_env, postgres_server, capsys, monkeypatch):  # noqa: F811
    """PostgreSQL frozen (SIGSTOP, as a VM pause) while the producer inserts: within SLOW_S it says the
    database is not answering, goes on when it is resumed, and every article is published once."""
    settings, app = producer_env
    monkeypatch.setattr(producer, "SLOW_S", 1.0)
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    enqueue(_articles(1, start=900), settings, app)  # a pooled connection to the backend we freeze
    # The postmaster and every backend (each backend is its own session, so not one process group).
    frozen = [postgres_server.pid, *_descendants(postgres_server.pid)]
    reports: list[producer.EnqueueReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(enqueue(_articles(40), settings, app))
        except BaseException as exc:
            errors.append(exc)

    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        worker = threading.Thread(target=run)
        worker.start()
        time.sleep(3.0)
        assert worker.is_alive(), errors
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    worker.join(timeout=60)
    assert not errors, errors
    [report] = reports
    err = capsys.readouterr().err
    assert "the database not answering" in err, err
    assert "reachable again" in err
    assert report.published == 40
    assert report.outage_s >= 2
    _ledger("postgres-frozen", settings.database_url, client, report.sent)


def test_backfill_interrupted_at_a_full_redis_sends_the_rest_next_run(producer_env, tmp_path):  # noqa: F811
    """`newsflow backfill` at a full Redis says so once, stops at Ctrl-C (exit 130, no traceback) although
    Redis is still full; once memory is freed the same command sends every article persisted but never
    published ("unsent", not "already stored"), each queued once."""
    import subprocess
    import sys

    from tests.samples import ROOT

    settings, _app = producer_env
    env = {
        **os.environ,
        "NEWSFLOW_BROKER_URL": settings.broker_url.unicode_string(),
        "NEWSFLOW_DATABASE_URL": settings.database_url,
        "NEWSFLOW_LOG_FORMAT": "json",
    }
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(a.model_dump_json() + "\n" for a in _articles(30)))
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    written = _fill(client)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "backfill", str(feed), "--json"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        said = ""
        while "Redis is full" not in said:
            line = proc.stderr.readline()
            assert line, said
            said += line
        proc.send_signal(signal.SIGINT)
        _out, rest = proc.communicate(timeout=30)  # it stops although Redis is still full
        assert proc.returncode == 130, said + rest
        assert "Traceback" not in said + rest
        assert client.llen("newsflow.clean") == 0
        assert _unpublished(settings.database_url) >= 1
    finally:
        client.config_set("maxmemory", 0)
        client.delete(*[f"junk:{n}" for n in range(written)])
    again = subprocess.run(
        [sys.executable, "-m", "workers.cli", "backfill", str(feed), "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["unsent"] >= 1
    assert summary["already_stored"] == 0
    assert summary["new"] + summary["unsent"] == 30
    ids = [article_id(a) for a in _articles(30)]
    _ledger("redis-maxmemory-backfill-interrupted", settings.database_url, client, ids)
    assert _unpublished(settings.database_url) == 0
