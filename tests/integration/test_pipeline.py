"""End to end with real parts: producers, Redis, Celery worker processes, PostgreSQL."""

import json
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from tests.integration.conftest import run_cli, wait_for
from tests.samples import EXAMPLES, SAMPLE_FIRST, SAMPLE_LAST, SAMPLE_PERSONS, SAMPLE_TITLE, sample_page
from workers.core import keys

HISTORY_TABLES = {"alembic_version", "stage_journal"}
"""Tables that are history, not state: the stage journal gains a row per attempt, by design."""


pytestmark = pytest.mark.integration


def _count(url: str, table: str, where: str = "") -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one())
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every newsflow table, sorted: what 'changes nothing' is checked against."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t not in HISTORY_TABLES]
            return {
                t: sorted(
                    (tuple(map(repr, row)) for row in conn.execute(sa.text(f"SELECT * FROM {t}"))),
                )
                for t in tables
            }
    finally:
        engine.dispose()


def _queues_empty(broker_url: str) -> bool:
    client = redis.Redis.from_url(broker_url)
    return all(client.llen(keys.queue_name(s)) == 0 for s in ("clean", "dedup", "tag", "store"))


def test_sample_and_examples_are_stored_by_workers(pipeline_env, start_worker):
    """The sample page and the examples go through real workers into PostgreSQL as clean, tagged articles."""
    start_worker()
    result = run_cli(pipeline_env, "enqueue", str(sample_page()), str(EXAMPLES), "--wait", "--timeout", "240")
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert len(ids) == 5
    # --wait returned once each article reached its end: the syndicated copy is the one duplicate.
    assert "5 of 5 done (stored 4, duplicate 1, dead_lettered 0, not_article 0)" in result.stderr
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    assert _count(db, "articles") == 5
    status = json.loads(run_cli(pipeline_env, "status", "--json").stdout)
    assert status["terminal"] == {"stored": 4, "duplicate": 1, "dead_lettered": 0, "not_article": 0}
    assert status["oldest_waiting_s"] is None
    assert {
        stage: (row["queued"], row["in_progress"]) for stage, row in status["stages"].items()
    } == dict.fromkeys(("clean", "dedup", "tag", "store"), (0, 0))
    assert all(row["workers"] == 1 for row in status["stages"].values())
    shown = run_cli(pipeline_env, "show", ids[0], "--json")
    assert shown.returncode == 0, shown.stderr
    article = json.loads(shown.stdout)
    assert article["title"] == SAMPLE_TITLE
    assert article["text"].startswith(SAMPLE_FIRST)
    assert article["text"].endswith(SAMPLE_LAST)
    names = {(e["name"], e["label"]) for e in article["entities"]}
    for person in SAMPLE_PERSONS:
        assert (person, "PERSON") in names
    assert {"clean", "dedup", "tag", "store"} <= set(article["versions"])


def test_same_file_enqueued_twice_is_stored_once(pipeline_env, start_worker):
    """Enqueuing the same file twice gives one raw article, one stored article and the same entity rows."""
    start_worker()
    page = str(sample_page())
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    first = run_cli(pipeline_env, "enqueue", page)
    assert first.returncode == 0, first.stderr
    wait_for(lambda: _count(db, "articles") == 1, message="the article stored")
    wait_for(lambda: _queues_empty(pipeline_env["NEWSFLOW_BROKER_URL"]), message="queues drained")
    entities = _count(db, "entities")
    second = run_cli(pipeline_env, "enqueue", page)
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout  # same deterministic id
    assert "(0 new)" in second.stderr
    wait_for(lambda: _queues_empty(pipeline_env["NEWSFLOW_BROKER_URL"]), message="queues drained again")
    assert _count(db, "raw_articles") == 1
    assert _count(db, "articles") == 1
    assert _count(db, "entities") == entities > 0


def test_message_delivered_twice_changes_nothing(pipeline_env, start_worker):
    """Delivering every stage's message a second time leaves every row exactly as it was."""
    from schemas import StageMessage
    from workers.runtime.broker import send
    from workers.runtime.celery_app import create_app

    worker = start_worker()
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    enqueued = run_cli(pipeline_env, "enqueue", str(EXAMPLES / "feed.jsonl"))
    assert enqueued.returncode == 0, enqueued.stderr
    wait_for(lambda: _done(worker, "newsflow.store") == 2, message="2 articles stored")
    before = snapshot(db)
    assert len(before["articles"]) == 2
    app = create_app()
    app.conf.broker_url = pipeline_env["NEWSFLOW_BROKER_URL"]

    for article_id in enqueued.stdout.split():
        send(app, StageMessage(article_id=article_id, trace_id="redelivery"))
    wait_for(lambda: _done(worker, "newsflow.store") == 4, message="the redelivered chains to finish")
    assert snapshot(db) == before


def _done(worker: Any, task_name: str) -> int:
    """How many `task_done` summary lines the worker logged for `task_name`."""
    return sum(
        1 for e in worker.log_events() if e.get("event") == "task_done" and e.get("task_name") == task_name
    )


def test_malformed_record_is_rejected_with_its_reason(pipeline_env, start_worker, tmp_path):
    """A record failing validation is reported as file:line, field and reason; the valid one is still enqueued."""
    start_worker()
    feed = tmp_path / "mixed.jsonl"
    good = {"source": "wire.example", "body": "MADRID – A plain article about the city budget. " * 20}
    feed.write_text(
        json.dumps({"source": "wire.example", "url": "ftp://bad", "body": "x"})
        + "\n"
        + json.dumps(good)
        + "\n"
        + json.dumps({"body": "no source", "colour": "red"})
        + "\n"
    )
    result = run_cli(pipeline_env, "enqueue", str(feed))
    assert result.returncode == 1
    assert f"{feed}:1: url: Value error, must be an absolute http:// or https:// URL" in result.stderr
    assert f"{feed}:3: source: Field required" in result.stderr
    assert f"{feed}:3: colour: Extra inputs are not permitted" in result.stderr
    assert "enqueued 1 (1 new), rejected 2" in result.stderr
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    wait_for(lambda: _count(db, "articles") == 1, message="the valid record stored")


def test_poison_record_lands_in_dead_letters(pipeline_env, start_worker, tmp_path):
    """A page the clean stage cannot use is dead-lettered once with stage, reason and attempts; nothing is stored."""
    worker = start_worker()
    feed = tmp_path / "poison.jsonl"
    pdf = "%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + "stream\x00\x01binary\x02" * 50
    feed.write_text(json.dumps({"source": "broken.example", "content_type": "text/html", "body": pdf}) + "\n")
    result = run_cli(pipeline_env, "enqueue", str(feed))
    assert result.returncode == 0, result.stderr
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    wait_for(lambda: _count(db, "dead_letters") == 1, message="a dead letter")
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT stage, reason, attempts, article_id, payload FROM dead_letters")
        ).one()
    engine.dispose()
    assert (row.stage, row.reason, row.attempts) == ("clean", "not_html", 1)
    assert row.article_id == result.stdout.strip()
    assert json.loads(row.payload)["article_id"] == row.article_id
    assert _count(db, "articles") == 0
    dead = [e for e in worker.log_events() if e.get("outcome") == "dead_letter"]
    assert dead
    assert dead[0]["reason"] == "not_html"
    assert dead[0]["article_id"] == row.article_id


def test_invalid_message_is_dead_lettered_not_dropped(pipeline_env, start_worker):
    """A message that is not a valid StageMessage is kept as a dead letter with its payload."""
    from workers.runtime.celery_app import create_app

    worker = start_worker()
    app = create_app()
    app.conf.broker_url = pipeline_env["NEWSFLOW_BROKER_URL"]
    app.send_task(
        keys.task_name("dedup"),
        args=({"article_id": "not-an-id"},),
        queue=keys.queue_name("dedup"),
        headers={"trace_id": "trace-from-header"},
    )
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    wait_for(
        lambda: _count(db, "dead_letters", "WHERE reason = 'invalid_message'") == 1, message="a dead letter"
    )
    status = run_cli(pipeline_env, "status", "--json")
    figures = json.loads(status.stdout)
    assert figures["dead_letters"] == 1
    assert {stage: row["queued"] for stage, row in figures["stages"].items()} == {
        "clean": 0, "dedup": 0, "tag": 0, "store": 0
    }  # fmt: skip
    [dead] = [e for e in worker.log_events() if e.get("outcome") == "dead_letter"]
    assert dead["trace_id"] == "trace-from-header"  # the producer's trace, carried in the message headers


def test_worker_logs_one_json_summary_per_task_without_bodies(pipeline_env, start_worker):
    """Each task logs one JSON task_done line with task, article and trace ids and a duration; no body text."""
    worker = start_worker()
    result = run_cli(pipeline_env, "enqueue", str(EXAMPLES / "valleypost-library.html"))
    assert result.returncode == 0, result.stderr
    article_id = result.stdout.strip()
    wait_for(lambda: _done(worker, "newsflow.store") == 1, message="the article stored")
    done = [e for e in worker.log_events() if e.get("event") == "task_done"]
    assert [e["task_name"] for e in done] == [keys.task_name(s) for s in ("clean", "dedup", "tag", "store")]
    trace_ids = {e["trace_id"] for e in done}
    assert len(trace_ids) == 1
    for event in done:
        assert event["article_id"] == article_id
        assert event["outcome"] == "ok"
        assert isinstance(event["duration_ms"], int)
        assert event["task_id"]
    log_text = worker.log_path.read_text()
    assert "eighteen months after floodwater" not in log_text
    assert "celery@" not in log_text or all(
        line.startswith("{") for line in log_text.splitlines() if line.strip()
    )


def test_near_duplicates_on_several_workers_yield_one_canonical(pipeline_env, start_worker, tmp_path):
    """Copies of one story handled at once by two workers (four processes) form one cluster with one canonical."""
    start_worker(name="w1")
    start_worker(name="w2")
    body = (EXAMPLES / "harbourtimes-wind-farm.txt").read_text()
    swaps = [
        ("Tuesday", "Monday"),
        ("400,000", "410,000"),
        ("two years", "three years"),
        ("Oslo", "the capital"),
    ]
    feed = tmp_path / "copies.jsonl"
    with feed.open("w") as handle:
        for i in range(8):
            old, new = swaps[i % len(swaps)]
            copy = body.replace(old, new) + f"\n\nReprinted by outlet {i}."
            handle.write(
                json.dumps({"source": f"outlet{i}.example", "content_type": "text/plain", "body": copy})
            )
            handle.write("\n")
    result = run_cli(pipeline_env, "enqueue", str(feed))
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    wait_for(lambda: _count(db, "articles") == 8, timeout=180, message="8 stored articles")
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, status, cluster_id FROM articles")).all()
    engine.dispose()
    assert sorted(r.id for r in rows) == sorted(ids)
    assert [r.status for r in rows].count("unique") == 1
    [canonical] = [r.id for r in rows if r.status == "unique"]
    assert {r.cluster_id for r in rows} == {canonical}
