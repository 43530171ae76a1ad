"""Producer throughput: enqueues/s from a JSONL file of small articles, batched vs one article at a time.

    .venv/bin/python bench/producer.py [--articles 5000] [--batch 500]

Private Redis (append-only, fsync every second, like the deploy config) and PostgreSQL (tests/servers.py).
Prints enqueues/s of the batched producer (`workers.ingest.producer.enqueue`: one multi-row insert-if-absent per
batch, one broker connection for the batch's publishes) and of the per-article baseline (one transaction
and one publish per article, the producer before issue 9.4), their ratio, and checks every raw article
was persisted once and published once; a re-run of the same file must publish nothing.
`bench_producer()` is the function `bench/throughput.py` imports.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas import RawArticle, StageMessage  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402


def small_articles(n: int, offset: int = 0) -> list[RawArticle]:
    """`n` small distinct articles (about 300 characters each)."""
    return [
        RawArticle(
            source=f"site{i % 20}.example",
            url=f"https://site{i % 20}.example/news/{i}",
            body=f"<html><body><h1>Story {i}</h1><p>{'Some words of the story. ' * 10}</p></body></html>",
        )
        for i in range(offset, offset + n)
    ]


def write_jsonl(path: Path, articles: list[RawArticle]) -> None:
    """The articles as one JSON object per line."""
    with path.open("w") as f:
        for a in articles:
            f.write(a.model_dump_json(exclude_none=True) + "\n")


def _read(path: Path) -> list[RawArticle]:
    from workers.ingest.archives import read_inputs

    return [r.article for r in read_inputs([str(path)], source="local") if r.article is not None]


def bench_producer(
    broker_url: str, database_url: str, *, articles: int = 5000, batch: int = 500
) -> dict[str, Any]:
    """Enqueue `articles` small articles from a JSONL file with the batched producer into an empty, migrated
    database and an empty Redis; returns {"enqueues_per_s", "seconds", "new", "published", "rerun_published"}."""
    import redis

    from workers.core.settings import Settings
    from workers.ingest.producer import enqueue
    from workers.runtime.celery_app import create_app

    settings = Settings(
        broker_url=broker_url, database_url=database_url, producer_batch=batch, high_water_mark=10 * articles
    )
    app = create_app()
    app.conf.broker_url = broker_url
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.jsonl"
        write_jsonl(path, small_articles(articles))
        started = time.perf_counter()
        report = enqueue(_read(path), settings, app)
        seconds = time.perf_counter() - started
        rerun = enqueue(_read(path), settings, app)
    depth = redis.Redis.from_url(broker_url).llen("newsflow.clean")
    return {
        "enqueues_per_s": articles / seconds,
        "seconds": seconds,
        "new": report.new,
        "published": report.published,
        "queued": depth,
        "rerun_published": rerun.published,
    }


def bench_baseline(broker_url: str, database_url: str, *, articles: int) -> float:
    """Enqueues/s of the per-article producer: one transaction and one publish (own connection) each."""
    from workers.core.ids import article_id, new_trace_id
    from workers.db import repo
    from workers.db.engine import transaction
    from workers.runtime.broker import send
    from workers.runtime.celery_app import create_app

    app = create_app()
    app.conf.broker_url = broker_url
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.jsonl"
        write_jsonl(path, small_articles(articles, offset=10_000_000))
        started = time.perf_counter()
        for raw in _read(path):
            msg = StageMessage(article_id=article_id(raw), trace_id=new_trace_id())
            with transaction(database_url) as session:
                repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
            send(app, msg)
        return articles / (time.perf_counter() - started)


def main() -> None:
    """Run both producers on private servers and print one line each, with the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    from workers.core.logging import configure_logging
    from workers.db.engine import upgrade

    configure_logging("json", "WARNING")
    with RedisServer(appendonly=True, appendfsync="everysec") as rds, PostgresServer() as pg:
        db = pg.create_database("bench_producer")
        upgrade(db)
        fast = bench_producer(rds.url, db, articles=args.articles, batch=args.batch)
        baseline_n = max(args.articles // 5, 200)
        base = bench_baseline(rds.url, db, articles=baseline_n)
    ok = fast["new"] == fast["published"] == fast["queued"] == args.articles and fast["rerun_published"] == 0
    print(
        f"producer batched  {fast['enqueues_per_s']:8.0f} enqueues/s  ({args.articles} articles, batch {args.batch})"
    )
    print(f"producer baseline {base:8.0f} enqueues/s  ({baseline_n} articles, one at a time)")
    print(f"ratio batched/baseline {fast['enqueues_per_s'] / base:.1f}x")
    print(
        "checks: persisted once, published once, re-run publishes nothing: "
        + ("ok" if ok else f"FAILED {json.dumps(fast)}")
    )


if __name__ == "__main__":
    main()
