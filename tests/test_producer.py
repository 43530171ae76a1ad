"""Producer backpressure against a real Redis."""

import threading
import time

import redis

from workers.core import keys
from workers.runtime.broker import queue_depth, wait_below_high_water


def test_producer_waits_while_the_first_queue_is_above_high_water(redis_url):
    """wait_below_high_water blocks while the clean queue is over the mark and returns once it drains."""
    client = redis.Redis.from_url(redis_url)
    client.rpush(keys.queue_name("clean"), *[b"m"] * 12)

    def drain() -> None:
        time.sleep(0.6)
        client.ltrim(keys.queue_name("clean"), 0, 4)

    drainer = threading.Thread(target=drain)
    drainer.start()
    started = time.monotonic()
    waited = wait_below_high_water(client, high_water=10, poll_s=0.1)
    drainer.join()
    assert waited > 0
    assert time.monotonic() - started >= 0.5
    assert queue_depth(client) == 5


def test_producer_does_not_wait_below_high_water(redis_url):
    """Below the mark the producer goes on at once."""
    client = redis.Redis.from_url(redis_url)
    client.rpush(keys.queue_name("clean"), b"m")
    assert wait_below_high_water(client, high_water=10, poll_s=0.1) == 0.0


# --- the batched producer against real Redis and PostgreSQL ------------------------------------------

import json  # noqa: E402 -- the section's own imports
import threading as _threading  # noqa: E402

import pytest  # noqa: E402

from schemas import RawArticle  # noqa: E402
from workers.core.settings import Settings  # noqa: E402
from workers.db.engine import upgrade  # noqa: E402
from workers.ingest.producer import enqueue  # noqa: E402
from workers.runtime.celery_app import create_app  # noqa: E402


def _articles(n: int, start: int = 0) -> list[RawArticle]:
    return [
        RawArticle(source="bench.example", url=f"https://bench.example/{i}", body=f"Small article {i}. " * 10)
        for i in range(start, start + n)
    ]


@pytest.fixture
def producer_env(redis_url: str, postgres_url: str) -> tuple[Settings, object]:
    """Settings and a Celery app pointed at this test's Redis and migrated PostgreSQL."""
    upgrade(postgres_url)
    settings = Settings(broker_url=redis_url, database_url=postgres_url, producer_batch=100)
    app = create_app()
    app.conf.broker_url = redis_url
    return settings, app


def _raw_count(db: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text("SELECT count(*) FROM raw_articles")).scalar_one())
    engine.dispose()
    return n


def _queued_articles(client: redis.Redis) -> list[str]:
    """Article ids in the clean queue's messages (a micro-batch message carries several)."""
    import base64

    ids: list[str] = []
    for raw in client.lrange(keys.queue_name("clean"), 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        ids += (
            [a["article_id"] for a in args[0]["articles"]]
            if "articles" in args[0]
            else [args[0]["article_id"]]
        )
    return ids


def test_batched_producer_persists_once_and_publishes_only_new_articles(producer_env):
    """350 articles (one repeated in the input) give 349 raw rows and 349 articles queued, in micro-batch
    messages of NEWSFLOW_BATCH_SIZE; re-running the same input publishes nothing and still reports every id
    in input order."""
    settings, app = producer_env
    articles = _articles(349)
    articles.insert(10, articles[3])
    sent: list[str] = []
    report = enqueue(articles, settings, app, on_sent=sent.append)
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    assert (report.new, report.published, len(report.sent)) == (349, 349, 350)
    assert sent == report.sent
    assert _raw_count(settings.database_url) == 349
    queued = _queued_articles(client)
    assert sorted(queued) == sorted(set(report.sent))  # each new article queued exactly once
    # In micro-batch messages: full ones of batch_size, fewer when the input's linger cut a batch short.
    assert -(-349 // settings.batch_size) <= queue_depth(client) < 349
    bodies = [json.loads(m) for m in client.lrange(keys.queue_name("clean"), 0, -1)]
    assert len({b["headers"]["id"] for b in bodies}) == queue_depth(client)
    again = enqueue(articles, settings, app)
    assert (again.new, again.published) == (0, 0)
    assert len(_queued_articles(client)) == 349


def test_producer_waits_out_a_redis_outage_and_publishes_everything(producer_env, redis_server, capsys):
    """Redis killed while the producer runs: it says it waits (one line), resumes after the restart and
    every article is persisted and published once."""
    settings, app = producer_env
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    redis_server.kill()
    reports = []
    # The producer runs in a thread; the server is restarted from the main thread (a server started from a
    # thread gets its parent-death signal when that thread ends).
    producer = _threading.Thread(target=lambda: reports.append(enqueue(_articles(250), settings, app)))
    producer.start()
    time.sleep(3.0)
    redis_server.restart()
    producer.join(timeout=60)
    [report] = reports
    err = capsys.readouterr().err
    assert err.count("Redis unreachable") == 1
    assert "reachable again" in err
    assert report.outage_s > 1
    assert _raw_count(settings.database_url) == 250
    assert sorted(_queued_articles(client)) == sorted(set(report.sent))


def test_producer_applies_backpressure_with_a_visible_message(producer_env, capsys):
    """Above the high-water mark the producer waits and says why, then goes on once workers drain the queue."""
    settings, app = producer_env
    # One article per message, so the high-water mark (in messages) is reached by 400 articles.
    settings = Settings(**{**settings.model_dump(), "high_water_mark": 150, "batch_size": 1})
    client = redis.Redis.from_url(settings.broker_url.unicode_string())

    done = _threading.Event()
    most: list[int] = []

    def drain() -> None:  # a slow worker: starts after 1 s (so the first batches fill the queue whatever the
        # machine's load), then takes 90 messages every 0.5 s
        done.wait(1.0)
        while not done.wait(0.5):
            most.append(queue_depth(client))
            client.ltrim(keys.queue_name("clean"), 90, -1)

    drainer = _threading.Thread(target=drain)
    drainer.start()
    report = enqueue(_articles(400), settings, app)
    done.set()
    drainer.join()
    assert report.waited_s > 0
    assert max(most) <= 150  # never above the high-water mark
    assert "waiting for the workers" in capsys.readouterr().err
    assert report.published == 400


# --- the CLI's counts and messages (issue 20.7) ---------------------------------------------------------


def _cli_env(redis_url: str, postgres_url: str) -> dict[str, str]:
    import os

    upgrade(postgres_url)
    return {
        **os.environ,
        "NEWSFLOW_BROKER_URL": redis_url,
        "NEWSFLOW_DATABASE_URL": postgres_url,
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_BATCH_SIZE": "1",
    }


import subprocess  # noqa: E402 -- the section's own import


def test_enqueue_json_counts_the_files_and_high_water_states_the_mark(redis_url, postgres_url, tmp_path):
    """`enqueue --json` reports the files it read (it said 0); `--high-water 2` waits saying "above 2
    messages" (it said "above 0"); the drained queue lets it finish."""
    env = _cli_env(redis_url, postgres_url)
    for n in range(3):
        (tmp_path / f"f{n}.jsonl").write_text(
            json.dumps({"source": "cli.example", "body": f"Article {n}. " * 20}) + "\n"
        )
    (tmp_path / "notes.md").write_text("not an input")
    client = redis.Redis.from_url(redis_url)
    client.rpush(keys.queue_name("clean"), *[b"m"] * 5)
    import sys

    from tests.samples import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "enqueue", str(tmp_path), "--json", "--high-water", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the producer waits (5 queued > 2) until the queue is drained
    client.delete(keys.queue_name("clean"))
    out, rest = proc.communicate(timeout=120)
    assert proc.returncode == 0, first + rest
    summary = json.loads(out)
    assert summary["files"] == 3
    assert summary["skipped"] == {"unsupported_file": 1}
    assert "queue newsflow.clean above 2 messages: waiting for the workers" in first
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, first + rest)
    assert "above 0 messages" not in result.stderr


def test_rejections_move_the_producer_rejected_counter(redis_url, postgres_url, tmp_path):
    """`enqueue` and `backfill` count each rejected record by field in `newsflow_producer_rejected_total`
    (the producers' Redis hash the exporter reads); it never moved before."""
    import sys

    from tests.samples import ROOT
    from workers.runtime.metrics import PRODUCER_COUNTS_KEY

    env = _cli_env(redis_url, postgres_url)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        "\n".join(
            [
                json.dumps({"source": "s", "body": "x", "url": "javascript:alert(1)"}),
                json.dumps({"source": "s" * 300, "body": "x"}),
                "not json",
                json.dumps({"source": "ok.example", "body": "A healthy article. " * 10}),
            ]
        )
        + "\n"
    )
    for command in ("enqueue", "backfill"):
        result = subprocess.run(
            [sys.executable, "-m", "workers.cli", command, str(feed)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
    counts = {
        k.decode(): int(v) for k, v in redis.Redis.from_url(redis_url).hgetall(PRODUCER_COUNTS_KEY).items()
    }
    assert {k: v for k, v in counts.items() if k.startswith("rejected:")} == {
        "rejected:url": 2,
        "rejected:source": 2,
        "rejected:record": 2,
    }
