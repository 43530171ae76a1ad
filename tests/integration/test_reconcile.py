"""The reconciler against a real PostgreSQL and Redis: what it finds, what it sends, and its lock (F8)."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
import redis
import sqlalchemy as sa

from schemas import RawArticle, StageMessage
from tests.integration.conftest import check_ledger, run_cli, wait_for
from tests.samples import EXAMPLES
from tests.servers import libpq_url
from workers.core import keys
from workers.core.ids import article_id
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction
from workers.ops.reconcile import LOCK_KEY, find_stuck, first_missing, reconcile
from workers.runtime.celery_app import create_app
from workers.runtime.pipeline import STAGE_NAMES

pytestmark = pytest.mark.integration


def _raw(n: int) -> RawArticle:
    return RawArticle(
        source="recon.example", url=f"https://recon.example/{n}", body=f"Body number {n}. " * 20
    )


def _settings(env: dict[str, str]) -> Settings:
    return Settings(broker_url=env["NEWSFLOW_BROKER_URL"], database_url=env["NEWSFLOW_DATABASE_URL"])


def _seed(db: str, stages_done: dict[int, tuple[str, ...]]) -> dict[int, str]:
    """Raw articles with fake stage records, all made an hour ago; returns their ids by number."""
    ids = {}
    with transaction(db) as session:
        for n, done in stages_done.items():
            raw = _raw(n)
            ids[n] = article_id(raw)
            repo.ensure_raw(session, ids[n], raw, f"trace-{n}")
            for stage in done:
                session.execute(
                    sa.text(
                        "INSERT INTO stage_results (article_id, stage, version, output) VALUES (:a, :s, 'v', '{}')"
                    ),
                    {"a": ids[n], "s": stage},
                )
    with psycopg.connect(libpq_url(db)) as conn:
        conn.execute("UPDATE raw_articles SET received_at = now() - interval '1 hour'")
        conn.execute("UPDATE stage_results SET updated_at = now() - interval '1 hour'")
    return ids


def test_first_missing_stage_follows_pipeline_order():
    """The first stage without a result is re-run; with clean, dedup and tag done it is store."""
    assert first_missing(set()) == "clean"
    assert first_missing({"clean"}) == "dedup"
    assert first_missing({"clean", "tag"}) == "dedup"
    assert first_missing({"clean", "dedup", "tag"}) == "store"


def test_reconcile_finds_only_stuck_articles_and_sends_each_from_its_first_missing_stage(pipeline_env):
    """Stuck articles (not stored, no open dead letter, old) are sent from the stage they lack; recent,
    dead-lettered and stored ones are left alone; dry-run sends nothing; a second pass sends nothing new."""
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    ids = _seed(
        db, {0: (), 1: ("clean",), 2: ("clean", "dedup"), 3: ("clean", "dedup", "tag"), 4: ("clean",)}
    )
    with transaction(db) as session:  # 4 has an open dead letter: the operator's, not the reconciler's
        repo.record_dead_letter(
            session,
            stage="dedup",
            message=StageMessage(article_id=ids[4], trace_id="t"),
            payload="{}",
            error=RuntimeError("x"),
            reason="unexpected",
            attempts=1,
        )
        recent = _raw(5)
        repo.ensure_raw(session, article_id(recent), recent, "fresh")  # just received: not stuck
    settings = _settings(pipeline_env)
    with transaction(db) as session:
        stuck = {s.article_id: s.stage for s in find_stuck(session, older_than=60)}
    assert stuck == {ids[0]: "clean", ids[1]: "dedup", ids[2]: "tag", ids[3]: "store"}

    dry = run_cli(pipeline_env, "reconcile", "--dry-run", "--older-than", "60", "--json")
    assert dry.returncode == 0, dry.stderr
    assert {json.loads(line)["article_id"] for line in dry.stdout.splitlines()} == set(stuck)
    client = redis.Redis.from_url(broker)
    assert all(client.llen(keys.queue_name(s)) == 0 for s in STAGE_NAMES)

    app = create_app()
    app.conf.broker_url = broker
    report = reconcile(settings, older_than=60, app=app)
    assert report.sent == 4
    assert {s: client.llen(keys.queue_name(s)) for s in STAGE_NAMES} == dict.fromkeys(STAGE_NAMES, 1)
    again = reconcile(settings, older_than=60, app=app)  # its marks count as progress
    assert again.found == []
    assert sum(client.llen(keys.queue_name(s)) for s in STAGE_NAMES) == 4


def test_only_one_reconciler_pass_at_a_time(pipeline_env):
    """While another session holds the reconciler's advisory lock, a pass does nothing and says so."""
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    _seed(db, {0: ()})
    with psycopg.connect(libpq_url(db)) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        report = reconcile(_settings(pipeline_env), older_than=60, dry_run=True)
        assert report.locked_out
        assert report.found == []
        cli = run_cli(pipeline_env, "reconcile", "--older-than", "60")
        assert "another reconciler pass is running" in cli.stderr
    assert len(reconcile(_settings(pipeline_env), older_than=60, dry_run=True).found) == 1


def test_articles_stuck_mid_pipeline_are_finished_within_the_deadline(
    pipeline_env, start_worker, start_reconciler, monkeypatch
):
    """F8: articles left after clean, after tag and never published are found by the reconciler loop and
    stored within its deadline; re-sending every stage for them afterwards changes no row."""
    from tests.integration.test_pipeline import snapshot
    from workers.runtime.tasks import clean, dedup, tag

    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    raws = [
        RawArticle(
            source="valleypost.example",
            url="https://valleypost.example/lib",
            body=(EXAMPLES / "valleypost-library.html").read_text(),
        ),
        RawArticle(
            source="harbourtimes.example",
            url=None,
            content_type="text/plain",
            body=(EXAMPLES / "harbourtimes-wind-farm.txt").read_text(),
        ),
    ]
    ids = []
    with transaction(db) as session:
        for n, raw in enumerate(raws):
            ids.append(article_id(raw))
            repo.ensure_raw(session, ids[-1], raw, f"trace-{n}")
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", db)
    from workers.core.settings import get_settings

    get_settings.cache_clear()
    try:
        first = StageMessage(article_id=ids[0], trace_id="t0").model_dump()
        clean(first)  # called directly: records clean, publishes nothing (stuck after clean)
        second = StageMessage(article_id=ids[1], trace_id="t1").model_dump()
        for task in (clean, dedup, tag):
            task(second)  # stuck before store
    finally:
        get_settings.cache_clear()
    worker = start_worker(concurrency=1)
    deadline_s = 3
    start_reconciler(every=1, older_than=deadline_s)
    started = time.monotonic()
    wait_for(lambda: check_ledger(db, ids).stored == 2, timeout=90, message="both stuck articles stored")
    print(f"stuck articles stored {time.monotonic() - started:.1f}s after the reconciler started")
    ledger = check_ledger(db, ids)
    print(ledger.line())
    assert ledger.clean(), ledger
    before = snapshot(db)
    app = create_app()
    app.conf.broker_url = pipeline_env["NEWSFLOW_BROKER_URL"]
    from workers.runtime.broker import send

    for article in ids:
        for stage in STAGE_NAMES:
            send(app, StageMessage(article_id=article, trace_id="spurious"), stage)

    def done():
        return sum(
            1
            for e in worker.log_events()
            if e.get("event") == "task_done" and e.get("task_name") == "newsflow.store"
        )

    wait_for(lambda: done() >= 2 + 2 * 4, timeout=120, message="the spurious re-runs to finish")
    assert snapshot(db) == before


def test_a_discarded_article_is_finished_for_the_reconciler_and_a_resend_is_in_trace(pipeline_env):
    """Issue 20.1: after `dead-letters discard` the reconciler never re-sends the article (it would reopen as
    a new dead letter); an article it does re-send shows the re-send in `newsflow trace`."""
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    ids = _seed(db, {0: ("clean",), 1: ()})
    with transaction(db) as session:
        dead = repo.record_dead_letter(
            session,
            stage="dedup",
            message=StageMessage(article_id=ids[0], trace_id="t"),
            payload="{}",
            error=RuntimeError("x"),
            reason="no_content",
            attempts=1,
        )
    discard = run_cli(pipeline_env, "dead-letters", "discard", str(dead), "--note", "not news")
    assert discard.returncode == 0, discard.stderr
    app = create_app()
    app.conf.broker_url = broker
    report = reconcile(_settings(pipeline_env), older_than=60, app=app)
    assert [s.article_id for s in report.found] == [ids[1]]
    assert report.sent == 1
    shown = run_cli(pipeline_env, "trace", ids[1], "--json")
    assert shown.returncode == 0, shown.stderr
    replays = json.loads(shown.stdout)["replays"]
    assert [(r["event"], r["stage"]) for r in replays] == [("reconciled", "clean")]


def test_no_resend_while_a_message_for_the_article_may_still_be_queued(pipeline_env):
    """Issue 19.5: with a deadline shorter than the queue's drain time (no worker consumes), a second pass
    re-sends nothing and says how many it skipped; once the queues are empty (messages lost) it re-sends."""
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    _seed(db, dict.fromkeys(range(12), ()))
    settings = _settings(pipeline_env)
    app = create_app()
    app.conf.broker_url = broker
    client = redis.Redis.from_url(broker)
    first = reconcile(settings, older_than=1, app=app)
    assert (first.sent, first.skipped) == (12, 0)
    time.sleep(1.5)  # the marks are older than the deadline; the 12 messages are still queued
    second = reconcile(settings, older_than=1, app=app)
    assert (second.sent, second.skipped) == (0, 12)
    assert second.drain_s == float("inf")  # queued, and no worker finished a task lately
    assert client.llen(keys.queue_name("clean")) == 12
    cli = run_cli(pipeline_env, "reconcile", "--older-than", "1")
    assert "skipped 12" in cli.stderr
    client.flushdb()  # the messages are lost (Redis restarted empty): nothing can still be queued
    third = reconcile(settings, older_than=1, app=app)
    assert (third.sent, third.skipped) == (12, 0)


def test_a_backlog_in_one_stage_is_judged_by_that_stage_rate_no_resend_storm(pipeline_env):
    """Issue 30.2: 200 messages queued for a slow tag stage (0.1 task/s) while clean, dedup and store finish
    3 tasks/s each: articles waiting for tag since 100 s are skipped (tag's drain time is 2,000 s), not
    re-sent as when every queued message was divided by all four stages' rate (22 s); an article waiting
    for clean, whose queue is empty, is re-sent."""
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    ids = _seed(db, {**dict.fromkeys(range(10), ("clean", "dedup")), 10: ()})
    with psycopg.connect(libpq_url(db)) as conn:
        conn.execute("UPDATE raw_articles SET received_at = now() - interval '100 seconds'")
        conn.execute("UPDATE stage_results SET updated_at = now() - interval '100 seconds'")
        for stage, tasks in (("clean", 300), ("dedup", 300), ("store", 300), ("tag", 10)):
            conn.execute(
                "INSERT INTO stage_journal (article_id, stage, event, task_id, ended_at) SELECT 'x', %s, 'ok',"
                " %s || g, now() - (g * 100.0 / %s) * interval '1 second' FROM generate_series(1, %s) g",
                (stage, stage, tasks, tasks),
            )
    client = redis.Redis.from_url(broker)
    client.lpush(keys.queue_name("tag"), *[b"{}"] * 200)
    settings = _settings(pipeline_env)
    app = create_app()
    app.conf.broker_url = broker
    report = reconcile(settings, older_than=1, app=app)
    assert report.drain_by_stage["tag"] > 1000
    assert report.drain_by_stage["clean"] == 0
    assert (report.sent, report.skipped) == (1, 10)
    assert [item.article_id for item in report.found] == [ids[10]]


def test_an_article_behind_the_oldest_queued_message_is_not_resent_however_fast_the_stage(pipeline_env):
    """Issue 30.2, a draining queue: the stage finishes 10 tasks/s (drain time about 0 s), but its oldest queued
    message is of an article whose last progress was 200 s ago, so an article stuck since 100 s may still be
    queued behind it (first in, first out) and is skipped; one stuck since 300 s (before that message) is
    re-sent. Judged by the drain time alone, both were re-sent."""
    from workers.runtime.broker import send

    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    ids = _seed(db, {0: (), 1: (), 2: ()})
    with psycopg.connect(libpq_url(db)) as conn:
        for n, age in ((0, 200), (1, 100), (2, 300)):
            conn.execute(
                "UPDATE raw_articles SET received_at = now() - %s * interval '1 second' WHERE id = %s",
                (age, ids[n]),
            )
        conn.execute(
            "INSERT INTO stage_journal (article_id, stage, event, task_id, ended_at) SELECT 'x', 'clean', 'ok',"
            " 'c' || g, now() - (g * 0.1) * interval '1 second' FROM generate_series(1, 600) g"
        )
    settings = _settings(pipeline_env)
    app = create_app()
    app.conf.broker_url = broker
    send(app, StageMessage(article_id=ids[0], trace_id="trace-0"), "clean")  # the oldest queued message
    report = reconcile(settings, older_than=50, dry_run=True, app=app)
    assert report.drain_by_stage["clean"] < 1
    found = {item.article_id for item in report.found}
    assert ids[2] in found
    assert ids[1] not in found
    assert ids[0] not in found  # its message is the one queued
    assert report.skipped == 2
