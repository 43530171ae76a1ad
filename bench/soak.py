"""Soak: find capacity, hold a fraction of it, watch memory and queues, check the ledger; then a burst.

    .venv/bin/python bench/soak.py [--hold 600] [--fraction 0.7] [--burst 50000] [--concurrency 2]

On private Redis (append-only) and PostgreSQL (tests/servers.py) with one real `newsflow worker`:
1. capacity: enqueue a calibration batch at once and time it until stored (articles/s);
2. hold: feed `fraction` of that rate for `--hold` seconds, sampling every 5 s the worker processes'
   RSS (main and children, from /proc), Redis `used_memory` and the stage queue depths;
3. checker: every fed article stored or dead-lettered, none twice (tests/integration/conftest.py);
4. burst: `--burst` small articles at once with a high-water mark: the producer must wait, and Redis
   memory must stay bounded (its peak is printed).
Prints RSS growth over the second half of the hold, Redis memory min/max, the largest queue depth,
the ledger line and the burst figures. Synthetic articles (distinct text per article, so no dedup).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas import RawArticle  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402

WORDS = [
    "council",
    "harbour",
    "ferry",
    "strike",
    "minister",
    "budget",
    "river",
    "library",
    "school",
    "hospital",
    "election",
    "court",
    "market",
    "police",
    "weather",
    "storm",
    "bridge",
    "road",
    "rail",
    "union",
    "workers",
    "farmers",
    "festival",
    "museum",
    "report",
    "vote",
    "mayor",
]


def article(i: int, rng: random.Random) -> RawArticle:
    """A small distinct article with a few capitalised names."""
    names = [
        f"{rng.choice(['Anna', 'Ben', 'Carla', 'David', 'Elif'])} {rng.choice(['Novak', 'Smith', 'Okafor', 'Lindqvist'])}"
        for _ in range(3)
    ]
    sentences = [
        " ".join(rng.choice(WORDS) for _ in range(12)).capitalize()
        + f", said {rng.choice(names)} in Springfield."
        for _ in range(8)
    ]
    body = (
        f"<html><head><title>Story {i}</title></head><body><article><h1>Story {i}: {rng.choice(WORDS)}</h1>"
        + "".join(f"<p>{s} Item {i}-{n}.</p>" for n, s in enumerate(sentences))
        + "</article></body></html>"
    )
    return RawArticle(source=f"soak{i % 10}.example", url=f"https://soak{i % 10}.example/{i}", body=body)


def rss_kib(pid: int) -> int:
    """Resident set of a process and its children, KiB."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


def main() -> None:
    """Run the soak and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hold", type=float, default=600)
    parser.add_argument("--fraction", type=float, default=0.7)
    parser.add_argument("--calibrate", type=int, default=100)
    parser.add_argument("--burst", type=int, default=50_000)
    parser.add_argument("--burst-high-water", type=int, default=2000)
    parser.add_argument("--burst-seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--reconcile-older-than",
        type=float,
        default=0,
        help="Run `newsflow reconcile --loop --every 5` with this deadline during the hold (0: none) and print "
        "its re-sends per article (issue 30.2; with --fraction above 1 a backlog builds in the slowest stage).",
    )
    parser.add_argument("--skip-burst", action="store_true", help="End after the hold and its ledger.")
    parser.add_argument(
        "--drain", type=float, default=300, help="Longest wait after the hold for the ledger."
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

    configure_logging("json", "WARNING")
    rng = random.Random(13)
    with RedisServer(appendonly=True, appendfsync="everysec") as rds, PostgresServer() as pg:
        db = pg.create_database("soak")
        upgrade(db)
        env = {**os.environ, "NEWSFLOW_BROKER_URL": rds.url, "NEWSFLOW_DATABASE_URL": db, "NEWSFLOW_LOG_FORMAT": "json",
               "NEWSFLOW_LOG_LEVEL": "WARNING"}  # fmt: skip
        log = Path("/tmp/newsflow-soak-worker.log").open("wb")  # noqa: SIM115 -- closed at the end
        worker = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "-c", str(args.concurrency), "--without-gossip",
             "--without-mingle", "--loglevel", "WARNING"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        settings = Settings(broker_url=rds.url, database_url=db, producer_batch=50)
        app = create_app()
        app.conf.broker_url = rds.url
        client = redis.Redis.from_url(rds.url)
        engine = sa.create_engine(db)

        def finished() -> int:
            with engine.connect() as conn:
                return int(
                    conn.execute(
                        sa.text(
                            "SELECT (SELECT count(*) FROM articles) + (SELECT count(*) FROM dead_letters"
                            " WHERE retried_at IS NULL)"
                        )
                    ).scalar_one()
                )

        def depth() -> int:
            return sum(int(client.llen(f"newsflow.{s}")) for s in ("clean", "dedup", "tag", "store"))

        ids: list[str] = []
        n = 0

        def feed(count: int, s: Settings = settings) -> None:
            nonlocal n
            batch = [article(n + i, rng) for i in range(count)]
            n += count
            ids.extend(enqueue(batch, s, app, on_wait=lambda _line: None).sent)

        # 1. capacity (the first articles also pay the model load in each child; a warm-up batch first)
        feed(10)
        while finished() < len(ids):
            time.sleep(0.5)
        started = time.monotonic()
        feed(args.calibrate)
        while finished() < len(ids):
            time.sleep(0.5)
        capacity = args.calibrate / (time.monotonic() - started)
        rate = capacity * args.fraction
        print(
            f"capacity {capacity:.1f} articles/s; holding {rate:.1f}/s ({args.fraction:.0%}) for {args.hold:.0f}s"
        )

        # 2. hold
        samples: list[tuple[float, int, int, int, dict[str, int]]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(5):
                info = client.info("memory")
                by_stage = {s: int(client.llen(f"newsflow.{s}")) for s in ("clean", "dedup", "tag", "store")}
                samples.append(
                    (time.monotonic(), rss_kib(worker.pid), int(info["used_memory"]), depth(), by_stage)
                )

        sampler = threading.Thread(target=sample)
        sampler.start()
        reconciler = None
        if args.reconcile_older_than:
            reconciler = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "reconcile", "--loop", "--every", "5",
                 "--older-than", str(args.reconcile_older_than)],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        begin = time.monotonic()
        while time.monotonic() - begin < args.hold:
            due = int((time.monotonic() - begin) * rate) - (len(ids) - 10 - args.calibrate)
            if due > 0:
                feed(min(due, 50))
            time.sleep(0.2)
        deadline = time.monotonic() + args.drain
        while finished() < len(ids) and time.monotonic() < deadline:
            time.sleep(1)
        stop.set()
        sampler.join()
        half = [s for s in samples if s[0] - begin >= args.hold / 2]
        if len(half) >= 2:
            growth = (half[-1][1] - half[0][1]) / half[0][1]
            print(
                f"worker RSS {half[0][1] / 1024:.0f} -> {half[-1][1] / 1024:.0f} MiB over the second half ({growth:+.1%})"
            )
        mem = [s[2] for s in samples]
        print(
            f"redis used_memory min {min(mem) / 1e6:.1f} MB max {max(mem) / 1e6:.1f} MB; max queue depth {max(s[3] for s in samples)}"
        )
        ledger = check_ledger(db, ids)
        print(ledger.line(), "clean" if ledger.clean() else "NOT CLEAN")
        if reconciler is not None:
            reconciler.terminate()
            reconciler.wait(timeout=60)
            resent_sql = "SELECT coalesce(sum(times), 0) FROM reconcile_marks"
            runs_sql = "SELECT stage, count(*) FROM stage_journal WHERE event = 'ok' GROUP BY stage"
            with engine.connect() as conn:
                resent = int(conn.execute(sa.text(resent_sql)).scalar_one())
                runs = {stage: int(n) for stage, n in conn.execute(sa.text(runs_sql))}
            depths = {
                s: max(d.get(s, 0) for _, _, _, _, d in samples) for s in ("clean", "dedup", "tag", "store")
            }
            print(
                f"reconciler (deadline {args.reconcile_older_than:g} s, every 5 s): {resent} re-sends for {len(ids)} "
                f"articles = {resent / max(len(ids), 1):.3f} per article; stage runs per article "
                + ", ".join(f"{k} {v / max(len(ids), 1):.2f}" for k, v in sorted(runs.items()))
                + "; max queue depth by stage "
                + ", ".join(f"{k} {v}" for k, v in depths.items())
            )
        if args.skip_burst:
            engine.dispose()
            log.close()
            rds.stop()
            pg.stop()
            os._exit(0)

        # 3. burst with the workers stopped (the worst case): the producer must stop at the high-water mark
        # and wait, Redis memory must stay bounded. Bounded in time: the producer is left waiting.
        worker.terminate()
        worker.wait(timeout=60)
        burst_settings = Settings(
            broker_url=rds.url, database_url=db, producer_batch=500, high_water_mark=args.burst_high_water
        )
        waits: list[str] = []
        peak = [0]
        published: list[int] = []

        def burst() -> None:
            report = enqueue(
                (article(10_000_000 + i, rng) for i in range(args.burst)),
                burst_settings,
                app,
                on_wait=waits.append,
            )
            published.append(report.published)

        producer = threading.Thread(target=burst, daemon=True)
        t0 = time.monotonic()
        producer.start()
        while producer.is_alive() and time.monotonic() - t0 < args.burst_seconds:
            peak[0] = max(peak[0], int(client.info("memory")["used_memory"]))
            time.sleep(1)
        state = (
            "finished"
            if published
            else f"waiting after {args.burst_seconds:.0f}s (as it should with no workers)"
        )
        print(
            f"burst {args.burst} with workers stopped: producer {state}; queue depth {depth()} "
            f"(high-water {args.burst_high_water}); {len(waits)} wait message(s); "
            f"redis peak used_memory {peak[0] / 1e6:.1f} MB"
        )
        engine.dispose()
        log.close()
        rds.stop()
        pg.stop()
        os._exit(0)  # the producer thread is still waiting on purpose: end without joining it


if __name__ == "__main__":
    main()
