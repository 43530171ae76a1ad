"""What task events cost a worker's main process: CPU per article with events on and off, one run.

Starts a private Redis and PostgreSQL (tests/servers.py) and, per batch, one real prefork worker
(`-c 2`) on all four queues; each batch feeds the 24 GUM news articles
(../shared/benchmarks/gum-ner/gum_news.jsonl) under new sources, so every copy runs all four
stages; ROUNDS pairs of batches. It reads the main process's user+system CPU time from
/proc before and after each batch. Each batch gets a fresh worker whose app has task events on
(as `workers.runtime.celery_app` configures it) or off (`worker_send_task_events` and `task_send_sent_event`
False); batches alternate on, off, on, off in one run. (Celery's `disable_events` control command
is not used: task events kept arriving after it, as the Redis event counter shows.) A counter
subscribed to the event channels proves which batches really sent events.

    .venv/bin/python bench/task_events.py [ROUNDS]
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from celery import Celery  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.servers import PostgresServer, RedisServer  # noqa: E402
from workers.db.engine import upgrade  # noqa: E402

GUM = ROOT.parent / "shared" / "benchmarks" / "gum-ner" / "gum_news.jsonl"


if "BENCH_TASK_EVENTS" in os.environ:  # imported by the bench's worker: `celery -A task_events:app`
    from workers.runtime.celery_app import app

    app.conf.worker_send_task_events = app.conf.task_send_sent_event = os.environ["BENCH_TASK_EVENTS"] == "1"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT count(*) FROM articles")).scalar_one())
    engine.dispose()
    return n


class EventCounter:
    """Counts task event messages on Redis (Celery publishes them on `*celeryev*` channels): proof
    that events really are on or off during a batch."""

    def __init__(self, url: str) -> None:
        self.count = 0
        self.pubsub = redis.Redis.from_url(url).pubsub()
        self.pubsub.psubscribe("*celeryev*")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for message in self.pubsub.listen():
                if message["type"] == "pmessage" and b"task" in message["channel"]:
                    self.count += 1
        except redis.exceptions.ConnectionError:
            return  # the bench's Redis stopped: the run is over


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    docs = [json.loads(line)["text"] for line in GUM.read_text().splitlines()]
    with RedisServer() as redis_server, PostgresServer() as pg:
        db = pg.create_database("bench_events")
        upgrade(db)
        env = {**os.environ, "NEWSFLOW_BROKER_URL": redis_server.url, "NEWSFLOW_DATABASE_URL": db,
               "NEWSFLOW_LOG_FORMAT": "json", "NEWSFLOW_LOG_LEVEL": "WARNING"}  # fmt: skip
        app = Celery(broker=redis_server.url)
        app.conf.update(accept_content=["json"], task_serializer="json", result_serializer="json")
        counter = EventCounter(redis_server.url)
        results: dict[str, list[float]] = {"on": [], "off": []}
        queues = ",".join(f"newsflow.{s}" for s in ("clean", "dedup", "tag", "store"))
        batch = 0
        for events in ["on", "off"] * rounds:
            log = tempfile.NamedTemporaryFile(prefix="bench-worker-", suffix=".log", delete=False)  # noqa: SIM115
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "task_events:app", "worker", "-Q", queues, "-c", "2",
                 "-n", f"bench{batch}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env={**env, "BENCH_TASK_EVENTS": "1" if events == "on" else "0",
                     "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}"},
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 120
                while not app.control.ping(timeout=1):
                    if time.monotonic() > deadline or worker.poll() is not None:
                        raise SystemExit(f"worker did not start, see {log.name}")
                feed = Path(tempfile.mkstemp(suffix=".jsonl")[1])
                feed.write_text(
                    "".join(
                        json.dumps(
                            {
                                "source": f"bench{batch}-{i}.example",
                                "content_type": "text/plain",
                                "body": f"{doc}\n\nBatch {batch}, copy {i}.",
                            }
                        )
                        + "\n"
                        for i, doc in enumerate(docs)
                    )
                )
                before_n, before_cpu, started = stored(db), cpu_seconds(worker.pid), time.monotonic()
                before_events = counter.count
                subprocess.run(
                    [sys.executable, "-m", "workers.cli", "enqueue", str(feed)],
                    env=env, cwd=ROOT, check=True, capture_output=True,
                )  # fmt: skip
                while stored(db) < before_n + len(docs):
                    time.sleep(0.2)
                    if time.monotonic() - started > 600:
                        raise SystemExit("batch did not finish")
                per_article_ms = (cpu_seconds(worker.pid) - before_cpu) / len(docs) * 1000
                seen = counter.count - before_events
                results[events].append(per_article_ms)
                print(
                    f"batch {batch} events {events}: main process {per_article_ms:.2f} ms CPU per article, "
                    f"{seen / len(docs):.1f} task events per article seen on Redis",
                    flush=True,
                )
                batch += 1
                feed.unlink()
            finally:
                worker.terminate()
                worker.wait(timeout=120)
        on = sum(results["on"]) / len(results["on"])
        off = sum(results["off"]) / len(results["off"])
        print(f"articles per batch {len(docs)}, batches {batch}")
        print(
            f"main process CPU per article: events on {on:.2f} ms, off {off:.2f} ms, ratio on/off {on / off:.2f}"
        )
        print(
            f"task events cost {on - off:.2f} ms per article ({(on - off) / on:.0%} of the main process's CPU)"
        )


if __name__ == "__main__":
    main()
