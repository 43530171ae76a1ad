"""Flower and micro-batches with a real worker and a real Flower (issue 20.3), and each article's own
journal row and traceback from a real worker (issue 20.4).

One batch of five: a PDF (not_html), an empty page (no_content) and three healthy articles. Flower must
list each dead-lettered article as its own FAILURE task (`newsflow.clean.article`, its id as argument,
`DeadLettered(stage, reason, id)`), the batch task as SUCCESS, and nothing else as failed: Flower's FAILURE
count equals newsflow's dead-letter count.
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import run_cli, wait_for
from tests.integration.test_batches import _healthy_records
from tests.samples import ROOT
from tests.servers import free_port

pytestmark = pytest.mark.integration

PDF = "%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + "stream\x00\x01binary\x02" * 50
EMPTY = "<!DOCTYPE html><html><head></head><body></body></html>"


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def _get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read().decode() or "null")
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def test_flower_shows_each_dead_letter_of_a_batch_by_id_and_reason_and_no_healthy_failure(
    pipeline_env, start_worker, tmp_path
):
    """Two dead letters in one batch of five: two FAILURE tasks in Flower, one per article (id and reason),
    the batch task SUCCESS with each outcome; each dead letter and journal row has its own traceback."""
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    start_worker()
    port = free_port()
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as handle:
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.runtime.celery_app", "flower", "--address=127.0.0.1",
             f"--port={port}", "--persistent=False"],
            env={**pipeline_env, "FLOWER_UNAUTHENTICATED_API": "true"}, cwd=ROOT, stdout=handle,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: _get(port, "/api/workers")[0] == 200, timeout=90, message=f"flower up ({log_path})")
        time.sleep(2)  # its event receiver is connected
        records = _healthy_records(3)
        records.insert(
            1,
            {
                "source": "flower-batch",
                "url": "https://f.example/pdf",
                "content_type": "text/html",
                "body": PDF,
            },
        )
        records.insert(3, {"source": "flower-batch", "url": "https://f.example/empty", "body": EMPTY})
        feed = tmp_path / "feed.jsonl"
        feed.write_text("".join(json.dumps(r) + "\n" for r in records))
        result = run_cli({**pipeline_env, "NEWSFLOW_BATCH_LINGER_MS": "5000"}, "enqueue", str(feed))
        assert result.returncode == 0, result.stderr
        ids = result.stdout.split()
        pdf_id, empty_id = ids[1], ids[3]
        wait_for(lambda: _rows(db, "SELECT count(*) FROM articles")[0][0] == 3, message="3 stored articles")

        def tasks() -> dict[str, dict[str, Any]]:
            status, body = _get(port, "/api/tasks")
            return body if status == 200 and isinstance(body, dict) else {}

        wait_for(
            lambda: (
                sum(t["state"] == "FAILURE" for t in tasks().values()) == 2
                and sum(t["name"] == "newsflow.store" and t["state"] == "SUCCESS" for t in tasks().values())
                == 1
            ),
            timeout=60,
            message="two FAILURE tasks and the store batch in Flower",
        )
        seen = tasks()
    finally:
        flower.terminate()
        flower.wait(timeout=20)
    failed = sorted((t for t in seen.values() if t["state"] == "FAILURE"), key=lambda t: str(t["args"]))
    dead = dict(_rows(db, "SELECT article_id, reason FROM dead_letters WHERE retried_at IS NULL"))
    assert dead == {pdf_id: "not_html", empty_id: "no_content"}
    assert len(failed) == len(dead)  # Flower's FAILURE count is newsflow's dead-letter count
    by_article = {next(a for a in dead if a in str(t["args"])): t for t in failed}
    for article, reason in dead.items():
        task = by_article[article]
        assert task["name"] == "newsflow.clean.article"
        assert "DeadLettered" in task["exception"]
        assert reason in task["exception"]
    assert ("NotHtml" in by_article[pdf_id]["traceback"], "NoContent" in by_article[pdf_id]["traceback"]) == (
        True,
        False,
    )
    batch = [t for t in seen.values() if t["name"] == "newsflow.clean"]
    assert [t["state"] for t in batch] == ["SUCCESS"]  # the healthy neighbours' task does not look failed
    assert "dead_letter" in batch[0]["result"]
    assert "'ok': 3" in batch[0]["result"]

    # Each article's journal row at clean: its own end and its own error (issue 20.4).
    journal = {
        a: (e, c, tb)
        for a, e, c, tb in _rows(
            db, "SELECT article_id, event, error_class, traceback FROM stage_journal WHERE stage = 'clean'"
        )
    }
    assert journal[pdf_id][:2] == ("dead_letter", "NotHtml")
    assert journal[empty_id][:2] == ("dead_letter", "NoContent")
    assert "NoContent" not in journal[pdf_id][2]
    for healthy in set(ids) - set(dead):
        assert journal[healthy][:3] == ("ok", None, None)
    traced = json.loads(run_cli(pipeline_env, "trace", empty_id, "--json").stdout)
    (letter,) = traced["dead_letters"]
    assert "NoContent" in letter["traceback"]
    assert "NotHtml" not in letter["traceback"]
