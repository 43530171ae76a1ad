"""Page kind in distributed mode: real Redis, PostgreSQL and a Celery worker process."""

import json

import pytest
import redis

from tests.integration.conftest import run_cli, wait_for
from tests.test_page_kind import URLS, rows_of, write_pages
from workers.core import keys

pytestmark = pytest.mark.integration


def test_workers_end_listing_and_product_not_article(pipeline_env, start_worker, tmp_path):
    """Through real workers the listing and product pages end `not_article` at clean (a `not_articles` row, no
    dead letter, nothing sent to dedup), the news article is stored; `status` and `report` count them, and
    cleaning them again changes no row."""
    start_worker(concurrency=1)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    pages = write_pages(tmp_path / "pages.jsonl")
    result = run_cli(pipeline_env, "enqueue", str(pages))
    assert result.returncode == 0, result.stderr

    def settled() -> bool:
        counts = rows_of(db, "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM not_articles)")
        return counts == [(1, 2)]

    wait_for(settled, message="one article stored, two pages not articles")
    assert rows_of(db, "SELECT url FROM articles") == [(URLS["article"],)]
    kinds = dict(
        rows_of(db, "SELECT r.url, n.kind FROM not_articles n JOIN raw_articles r ON r.id = n.article_id")
    )
    assert kinds[URLS["product"]] == "product"
    assert kinds[URLS["listing"]] in ("listing", "collection")
    assert rows_of(db, "SELECT count(*) FROM dead_letters") == [(0,)]
    wait_for(
        lambda: redis.Redis.from_url(pipeline_env["NEWSFLOW_BROKER_URL"]).llen(keys.queue_name("store")) == 0,
        message="queues drained",
    )
    # No later stage ran for the two pages: dedup, tag and store records exist for the article only.
    assert rows_of(db, "SELECT count(DISTINCT article_id) FROM stage_results WHERE stage != 'clean'") == [
        (1,)
    ]
    status = run_cli(pipeline_env, "status", "--json")
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    assert sum(figures["not_articles"].values()) == 2
    report = run_cli(pipeline_env, "report", "--json")
    assert report.returncode == 0, report.stderr
    (period,) = json.loads(report.stdout)["sources"]["gazette"]
    assert period["not_article_rate"] == pytest.approx(2 / 3, abs=1e-3)
    # A redelivered clean message (here: the two pages sent again from clean) changes nothing.
    before = rows_of(
        db, "SELECT article_id, kind, confidence, model, decided_at FROM not_articles ORDER BY 1"
    )
    ids = "\n".join(str(row[0]) for row in before) + "\n"
    again = run_cli(pipeline_env, "reprocess", "-", stdin=ids.encode())
    assert again.returncode == 0, again.stderr
    wait_for(
        lambda: (
            rows_of(db, "SELECT count(*) FROM stage_journal WHERE stage = 'clean' AND event = 'ok'")[0][0]
            >= 5
        ),
        message="the pages cleaned again",
    )
    assert (
        rows_of(db, "SELECT article_id, kind, confidence, model, decided_at FROM not_articles ORDER BY 1")
        == before
    )
    assert rows_of(db, "SELECT count(*) FROM articles") == [(1,)]
    assert rows_of(db, "SELECT count(*) FROM dead_letters") == [(0,)]
