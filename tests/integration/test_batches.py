"""Micro-batched stage messages with real workers: a batch travels together, a failure stays one article's."""

import json
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import Worker, check_ledger, run_cli, wait_for
from tests.samples import EXAMPLES

pytestmark = pytest.mark.integration


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def _healthy_records(n: int) -> list[dict[str, str]]:
    """`n` distinct plain-text articles (distinct enough that dedup keeps each one)."""
    base = (EXAMPLES / "harbourtimes-wind-farm.txt").read_text()
    words = ["harbour", "council", "ferry", "school", "library", "market", "bridge", "clinic"]
    records = []
    for i in range(n):
        lead = f"Story {i}: the {words[i % len(words)]} committee met on day {i} and voted {i * 7} to {i}."
        body = "\n\n".join(
            [
                f"Headline number {i} about the {words[i % len(words)]}",
                lead,
                *[
                    f"Paragraph {k} of story {i} says the {words[(i + k) % len(words)]} plan costs {i * 1000 + k} pounds "
                    f"and that residents of ward {k} asked {i} questions about it at the meeting."
                    for k in range(8)
                ],
            ]
        )
        records.append({"source": "batch-test", "url": f"https://batch.example/{i}", "body": body})
    assert base  # the examples exist; the bodies above are our own so each is unique
    return records


def _events(worker: Worker, event: str) -> list[dict[str, Any]]:
    return [e for e in worker.log_events() if e.get("event") == event]


def test_a_batch_travels_together_and_a_bad_article_fails_alone(pipeline_env, start_worker, tmp_path):
    """Six articles enqueued together go through every stage as one message; a PDF among them is
    dead-lettered alone (not_html) and the five others are stored."""
    env = {**pipeline_env, "NEWSFLOW_BATCH_LINGER_MS": "5000"}
    worker = start_worker()
    records = _healthy_records(5)
    records.insert(
        2,
        {
            "source": "batch-test",
            "url": "https://batch.example/pdf",
            "content_type": "text/html",
            "body": "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" * 20,
        },
    )
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run_cli(env, "enqueue", str(feed))
    assert result.returncode == 0, result.stderr
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    wait_for(lambda: _rows(db, "SELECT count(*) FROM articles")[0][0] == 5, message="5 stored articles")
    wait_for(
        lambda: any(e.get("stage") == "store" for e in _events(worker, "batch_done")), message="store batch"
    )
    dead = _rows(db, "SELECT stage, reason FROM dead_letters")
    assert dead == [("clean", "not_html")]
    batches = {e["stage"]: (e["articles"], e["ok"]) for e in _events(worker, "batch_done")}
    assert batches == {"clean": (6, 5), "dedup": (5, 5), "tag": (5, 5), "store": (5, 5)}
    # One task_done line per article and stage, each with its own article id.
    done = [e for e in _events(worker, "task_done") if e.get("stage") == "store"]
    assert len({e["article_id"] for e in done}) == 5


def test_a_batch_that_hits_its_time_limit_is_split_and_its_healthy_articles_stored(
    pipeline_env, start_worker, tmp_path
):
    """F7, a poison article queued ahead of healthy ones: it makes its batch hit the soft time limit, the
    batch is split, the poison article is dead-lettered `timeout` on its own attempt, and the healthy
    ones behind it are stored promptly; the ledger is clean."""
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    line = " ".join(f"Word{i} alpha beta gamma delta." for i in range(20))
    slow = {
        "source": "batch-test",
        "url": "https://batch.example/slow",
        "content_type": "text/plain",
        "body": "Slow page title\n\n" + "\n\n".join(f"{line} {k}" for k in range(20000)),
    }
    records = [slow, *_healthy_records(4)]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in records))
    limits = {"NEWSFLOW_TASK_SOFT_TIME_LIMIT": "4", "NEWSFLOW_TASK_TIME_LIMIT": "8"}
    cleaner = start_worker(queues="clean", concurrency=1, name="cleaner", env=limits)
    start_worker(queues="dedup,tag,store", concurrency=1, name="rest")
    result = run_cli({**pipeline_env, "NEWSFLOW_BATCH_LINGER_MS": "5000"}, "enqueue", str(feed))
    assert result.returncode == 0, result.stderr
    wait_for(
        lambda: _rows(db, "SELECT count(*) FROM articles")[0][0] == 4,
        timeout=120,
        message="4 healthy articles stored",
    )
    wait_for(
        lambda: _rows(db, "SELECT count(*) FROM dead_letters")[0][0] == 1,
        timeout=60,
        message="the slow article dead-lettered",
    )
    assert _rows(db, "SELECT stage, reason FROM dead_letters") == [("clean", "timeout")]
    splits = _events(cleaner, "batch_split")
    assert [(e["why"], e["articles"]) for e in splits] == [("SoftTimeLimitExceeded", 5)]
    ledger = check_ledger(db, result.stdout.split())
    print(ledger.line())
    assert ledger.enqueued == 5
    assert ledger.clean(), ledger.line()
