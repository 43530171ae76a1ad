"""Redis SIGKILLed and restarted again and again under load: the worker keeps consuming (or exits and its
liveness probe fails within 60 s), and nothing is lost (issue 30.1).

    nice -n 10 .venv/bin/python bench/redis_kills.py [--kills 20] [--gap 8 15] [--rate 4] [--inject-582]

On a private Redis (append-only, `appendfsync everysec`: a kill may lose the last second of writes) and
PostgreSQL (tests/servers.py): one `newsflow worker -c 2` (its heartbeat in a private directory) and
`newsflow reconcile --loop` as deployed, a producer feeding `--rate` articles/s (it waits out each
outage). Redis is SIGKILLed `--kills` times, each kill a random 8-15 s after the previous restart, and
restarted 1 s later. Every second the bench asks `health --live`'s check (`check_alive(60)`) and
whether the worker process runs. `--inject-582` loads `tests/integration/kombu_582.py` into the worker:
kombu's first restore of unacknowledged messages raises celery/kombu#582, as in the fault campaign.

Prints: kills, the worker's exit (none, or its code and when), the seconds from that exit to the
first failed liveness check, the longest liveness failure while the worker ran, how many times the
consumer reconnected and survived kombu#582, and the ledger (every fed article stored or dead-lettered,
none twice) after the feed stops and the reconciler finishes what the kills lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.soak import article  # noqa: E402
from bench.throughput import _stop  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402


def main() -> int:
    """Run the kills and print the figures; 0 when nothing was lost and liveness told the truth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--gap", type=float, nargs=2, default=(8.0, 15.0), metavar=("MIN", "MAX"))
    parser.add_argument("--rate", type=float, default=4.0, help="Articles fed per second.")
    parser.add_argument("--inject-582", action="store_true", help="kombu's first restore raises kombu#582.")
    parser.add_argument(
        "--drain", type=float, default=600.0, help="Longest wait for the ledger after the kills."
    )
    args = parser.parse_args()

    import redis
    import sqlalchemy as sa

    from tests.integration.conftest import check_ledger
    from workers.core.logging import configure_logging
    from workers.core.settings import Settings
    from workers.db.engine import upgrade
    from workers.ingest.producer import enqueue
    from workers.runtime.celery_app import create_app

    configure_logging("json", "ERROR")
    rng = random.Random(30)
    beats = Path(tempfile.mkdtemp(prefix="newsflow-bench-beats-"))
    os.environ["NEWSFLOW_HEARTBEAT_DIR"] = str(beats)
    from workers.runtime.health import check_alive

    with RedisServer(appendonly=True, appendfsync="everysec") as rds, PostgresServer() as pg:
        db = pg.create_database("kills")
        upgrade(db)
        env = {**os.environ, "NEWSFLOW_BROKER_URL": rds.url, "NEWSFLOW_DATABASE_URL": db,
               "NEWSFLOW_LOG_FORMAT": "json", "NEWSFLOW_HEARTBEAT_DIR": str(beats),
               "NEWSFLOW_MAX_RETRIES": "8", "NEWSFLOW_RETRY_BACKOFF_MAX": "10"}  # fmt: skip
        include = (
            ["--include", "workers.runtime.journal,tests.integration.kombu_582"] if args.inject_582 else []
        )
        worker_log = Path(tempfile.gettempdir()) / "newsflow-bench-kills-worker.log"
        with worker_log.open("wb") as handle:
            worker = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "worker", "-c", "2", "--hostname", "bench@%h",
                 "--without-gossip", "--without-mingle", *include],
                env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        with (Path(tempfile.gettempdir()) / "newsflow-bench-kills-reconciler.log").open("wb") as handle:
            reconciler = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "reconcile", "--loop", "--every", "10", "--older-than", "60"],
                env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        while " ready." not in worker_log.read_text(errors="replace"):
            if worker.poll() is not None:
                print(worker_log.read_text()[-3000:])
                return 1
            time.sleep(0.5)
        settings = Settings(broker_url=rds.url, database_url=db, producer_batch=10)
        app = create_app()
        app.conf.broker_url = rds.url
        ids: list[str] = []
        stop = threading.Event()

        def feed() -> None:
            n = 0
            while not stop.is_set():
                batch = [article(n + i, rng) for i in range(max(1, int(args.rate)))]
                n += len(batch)
                try:
                    ids.extend(enqueue(batch, settings, app, on_wait=lambda _line: None).sent)
                except Exception as exc:  # the producer waits out outages; anything else is a finding
                    print(f"producer error: {type(exc).__name__}: {exc}")
                time.sleep(1.0)

        checks: list[tuple[float, bool, bool]] = []  # (time, worker running, liveness ok)

        def watch() -> None:
            while not stop.is_set():
                checks.append((time.monotonic(), worker.poll() is None, check_alive(60, "bench").ok))
                time.sleep(1.0)

        feeder = threading.Thread(target=feed, daemon=True)
        watcher = threading.Thread(target=watch, daemon=True)
        feeder.start()
        watcher.start()
        time.sleep(10)
        started = time.monotonic()
        for k in range(args.kills):
            time.sleep(rng.uniform(*args.gap))
            rds.kill()
            time.sleep(1.0)
            rds.restart()
            print(
                f"kill {k + 1}/{args.kills} at {time.monotonic() - started:.0f}s; worker running: {worker.poll() is None}"
            )
        time.sleep(20)
        stop.set()
        feeder.join(timeout=120)
        engine = sa.create_engine(db)

        def finished() -> int:
            with engine.connect() as conn:
                query = (
                    "SELECT count(*) FROM raw_articles r WHERE EXISTS (SELECT 1 FROM articles a WHERE a.id = r.id)"
                    " OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.article_id = r.id AND d.retried_at IS NULL)"
                )
                return int(conn.execute(sa.text(query)).scalar_one())

        deadline = time.monotonic() + args.drain
        while finished() < len(set(ids)) and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(2)
        watcher.join(timeout=5)
        events = []
        for line in worker_log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        reconnects = sum(1 for e in events if str(e.get("event", "")).startswith("Connected to redis://"))
        survived = sum(1 for e in events if e.get("event") == "broker_connection_lost")
        unrecoverable = sum(1 for e in events if "Unrecoverable error" in str(e.get("event", "")))
        dead_at = next((t for t, running, _ in checks if not running), None)
        failed_after = (
            next((t - dead_at for t, _, ok in checks if t >= dead_at and not ok), None) if dead_at else None
        )
        gap = run = 0.0
        for (t0, running, ok), (t1, _, _) in pairwise(checks):
            run = run + (t1 - t0) if running and not ok else 0.0
            gap = max(gap, run)
        ledger = check_ledger(db, sorted(set(ids)))
        with redis.Redis.from_url(rds.url) as client:
            left = sum(int(client.llen(f"newsflow.{s}")) for s in ("clean", "dedup", "tag", "store"))
        print(
            f"kills {args.kills} (gaps {args.gap[0]:.0f}-{args.gap[1]:.0f} s, appendfsync everysec); fed {len(set(ids))} "
            f"articles at {args.rate:g}/s; consumer reconnects {reconnects}; kombu#582 survived {survived}; "
            f"'Unrecoverable error' {unrecoverable}"
        )
        if dead_at is None:
            print(f"worker: running throughout; longest liveness failure while running {gap:.0f} s")
        else:
            print(
                f"worker: exited with {worker.returncode}; liveness failed "
                f"{'never' if failed_after is None else f'{failed_after:.0f} s after the exit'}"
            )
        print(ledger.line(), "clean" if ledger.clean() else "NOT CLEAN", f"queued at the end {left}")
        if dead_at is not None:
            print("(with the worker gone, `lost` counts articles persisted and queued but not yet processed)")
        for proc in (reconciler, worker):
            _stop(proc)
        engine.dispose()
        ok = ledger.clean() and (dead_at is None or (failed_after is not None and failed_after <= 60))
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
