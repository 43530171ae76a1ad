"""HTTP intake beside `newsflow enqueue`, on the same files in the same run, then bad input against the
running service.

    nice -n 10 .venv/bin/python -u bench/http_intake.py [--copies 4] [--small 5000] [--clients 1,2] [--slow-seconds 15]

Files: the 181 pages of ../shared/benchmarks/scrapinghub-aeb, each twice (its HTML and its w3m text
dump), repeated --copies times under distinct URLs, written as one JSON-lines file. Private Redis
(append-only, fsync every second) and PostgreSQL (tests/servers.py); one fresh database per run.

Second input: --small generated articles of ~300 characters (bench/producer.py's), where the per-request
and per-article costs show rather than PostgreSQL's storing of large pages.

1. `newsflow enqueue FILE` (the CLI, a child process): articles/s and its CPU seconds.
2. `newsflow serve` (a child process, default settings) fed the same file by `newsflow.Client.submit`
   (batches of 500 records / 8 MiB) from 1 and from N client threads: articles/s and the service
   process's CPU seconds (from /proc), the ratio to enqueue's rate.
3. Bad input against the same service: a malformed JSON array, a 100 MB body, a body sent one byte a
   second, 10,000 records of which half are invalid: the answer to each, that /livez still answers
   meanwhile, the service's resident memory after each and its peak (VmHWM), and that the 5,000 valid
   records are stored.
"""

from __future__ import annotations

import argparse
import gzip
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

import httpx  # noqa: E402

from newsflow import Client  # noqa: E402
from tests.servers import PostgresServer, RedisServer, free_port  # noqa: E402

DATA = ROOT.parent / "shared" / "benchmarks" / "scrapinghub-aeb"
TOKEN = "bench-token-0123456789abcdef0123"
TICKS = os.sysconf("SC_CLK_TCK")


def pages() -> list[dict]:
    """Each AEB page as a raw article twice: its HTML and its w3m text dump."""
    found = []
    with gzip.open(DATA / "textdumps-w3m.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            dump = json.loads(line)
            html_path = DATA / "html" / f"{dump['page_id']}.html.gz"
            body = gzip.decompress(html_path.read_bytes()).decode("utf-8", errors="replace")
            found.append(
                {"source": dump["source"], "url": dump["url"], "body": body, "content_type": "text/html"}
            )
            found.append(
                {
                    "source": dump["source"],
                    "url": dump["url"] + "#w3m",
                    "body": dump["body"],
                    "content_type": "text/plain",
                }
            )
    return found


def write_file(path: Path, copies: int) -> int:
    """The JSON-lines file both intakes read; returns the number of articles."""
    base = pages()
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for copy in range(copies):
            for page in base:
                f.write(json.dumps({**page, "url": f"{page['url']}?copy={copy}"}, ensure_ascii=False) + "\n")
                n += 1
    return n


def write_small(path: Path, n: int) -> int:
    """`n` small distinct articles (bench/producer.py's), as JSON lines; returns `n`."""
    from bench.producer import small_articles, write_jsonl

    write_jsonl(path, small_articles(n))
    return n


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def memory(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, MiB."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def env_for(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "NEWSFLOW_DATABASE_URL": database_url,
        "NEWSFLOW_BROKER_URL": broker_url,
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_LOG_LEVEL": "WARNING",
        "NEWSFLOW_HIGH_WATER_MARK": "1000000",
        **extra,
    }


def stored(database_url: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text("SELECT count(*) FROM raw_articles")).scalar_one())
    engine.dispose()
    return n


def run_enqueue(path: Path, database_url: str, broker_url: str) -> tuple[float, float]:
    """Seconds and CPU seconds of `newsflow enqueue FILE`."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "enqueue", str(path)],
        env=env_for(database_url, broker_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"newsflow enqueue failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    return seconds, usage.ru_utime + usage.ru_stime


def start_server(database_url: str, broker_url: str, port: int, **extra: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "serve", "--port", str(port)],
        env=env_for(database_url, broker_url, NEWSFLOW_SERVE_TOKENS=f"bench submit,read {TOKEN}", **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("newsflow serve did not start")


def run_http(path: Path, url: str, pid: int, clients: int) -> tuple[float, float, int]:
    """Seconds, service CPU seconds and errors of submitting the file from `clients` threads."""
    lines = [
        line for line in path.read_text(encoding="utf-8").split("\n") if line
    ]  # not splitlines: U+2028 is inside strings
    parts = [lines[i::clients] for i in range(clients)]
    errors = [0]

    def submit(part: list[str]) -> None:
        with Client(url, TOKEN) as client:
            result = client.submit(json.loads(line) for line in part)
        errors[0] += len(result.errors)

    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=submit, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, cpu_seconds(pid) - cpu, errors[0]


def slow_body(url: str, seconds: float) -> tuple[str, float, bool]:
    """Send a body one byte a second; the status line answered, after how long, and whether /livez
    answered every time meanwhile."""
    from tests.test_http import send_slowly

    live = [True]

    def check() -> None:
        live[0] = live[0] and httpx.get(f"{url}/livez", timeout=2).status_code == 200

    answer, took = send_slowly(url, TOKEN, every=1.0, at_most=seconds * 3, meanwhile=check)
    return answer.split(b"\r\n", 1)[0].decode(), took, live[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--small", type=int, default=5000, help="small articles in the second input")
    parser.add_argument("--clients", default="1,2")
    parser.add_argument(
        "--slow-seconds", type=float, default=15.0, help="NEWSFLOW_SERVE_BODY_TIMEOUT for part 3"
    )
    args = parser.parse_args()
    from workers.core.logging import configure_logging
    from workers.db.engine import dispose_all, upgrade

    configure_logging("json", "WARNING")
    counts = [int(c) for c in args.clients.split(",")]
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(appendonly=True, appendfsync="everysec") as rds,
        PostgresServer() as pg,
    ):
        import redis

        flush = redis.Redis.from_url(rds.url).flushdb
        aeb = Path(tmp) / "aeb.jsonl"
        small = Path(tmp) / "small.jsonl"
        empty = Path(tmp) / "empty.jsonl"
        empty.write_text("")
        inputs = [
            (aeb, write_file(aeb, args.copies), f"{args.copies} copies of 181 AEB pages, HTML and w3m text"),
            (small, write_small(small, args.small), "small generated articles, ~300 characters each"),
        ]
        for number, (path, n, what) in enumerate(inputs):
            print(f"input: {n} articles, {path.stat().st_size / 2**20:.0f} MiB ({what})")
            flush()
            db = pg.create_database(f"bench_enqueue_{number}")
            upgrade(db)
            seconds, cpu = run_enqueue(path, db, rds.url)
            base_rate = n / seconds
            seconds_enqueue = seconds
            # The CLI's own start (imports, connections) is in its time; the server started before its clock.
            start_s, start_cpu = run_enqueue(empty, db, rds.url)
            print(
                f"  newsflow enqueue        {base_rate:7.0f} articles/s  {seconds:6.1f} s  CPU {cpu:5.1f} s  "
                f"stored {stored(db)}  (of which start-up {start_s:.1f} s, CPU {start_cpu:.1f} s: "
                f"{n / max(seconds - start_s, 1e-9):.0f} articles/s without it)"
            )
            for clients in counts:
                flush()
                db = pg.create_database(f"bench_http_{number}_{clients}")
                upgrade(db)
                port = free_port()
                proc = start_server(db, rds.url, port)
                try:
                    seconds, cpu, errors = run_http(path, f"http://127.0.0.1:{port}", proc.pid, clients)
                    _, peak = memory(proc.pid)
                finally:
                    proc.terminate()
                    proc.wait(30)
                rate = n / seconds
                print(
                    f"  HTTP, {clients} client(s)      {rate:7.0f} articles/s  {seconds:6.1f} s  service CPU {cpu:5.1f} s  "
                    f"stored {stored(db)}  refused {errors}  peak RSS {peak:.0f} MiB  "
                    f"ratio to enqueue {rate / base_rate:.2f} ({rate / (n / max(seconds_enqueue - start_s, 1e-9)):.2f} "
                    "without its start-up)"
                )
            dispose_all()

        # 3. bad input
        flush()
        db = pg.create_database("bench_http_bad")
        upgrade(db)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(db, rds.url, port, NEWSFLOW_SERVE_BODY_TIMEOUT=str(args.slow_seconds))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            rss0, _ = memory(proc.pid)
            print(f"service at rest: RSS {rss0:.0f} MiB")
            r = httpx.post(
                f"{url}/v1/articles", content=b'[{"source": "a", "body": "x"}, {"sou', headers=auth
            )
            print(
                f"malformed JSON array        -> {r.status_code} {r.json()['error'][:70]!r}; RSS {memory(proc.pid)[0]:.0f} MiB"
            )

            def hundred_mb():
                chunk = b"x" * 2**20
                for _ in range(100):
                    yield chunk

            started = time.monotonic()
            try:
                r = httpx.post(f"{url}/v1/articles", content=hundred_mb(), headers=auth, timeout=60)
                answer = str(r.status_code)
            except httpx.TransportError as exc:  # the server closed the connection after its answer
                answer = f"connection closed ({type(exc).__name__})"
            print(
                f"100 MB body (chunked)       -> {answer} after {time.monotonic() - started:.1f} s; "
                f"RSS {memory(proc.pid)[0]:.0f} MiB; /livez {httpx.get(f'{url}/livez').status_code}"
            )
            status, took, live = slow_body(url, args.slow_seconds)
            print(
                f"one byte a second           -> {status!r} after {took:.1f} s (deadline {args.slow_seconds:g} s); "
                f"/livez answered throughout: {live}; RSS {memory(proc.pid)[0]:.0f} MiB"
            )
            records = [
                {"source": "bad.example", "url": f"https://bad.example/{i}", "body": f"Story {i}. " * 40}
                if i % 2 == 0
                else {"source": "bad.example", "body": ""}
                for i in range(10_000)
            ]
            body = "".join(json.dumps(r) + "\n" for r in records).encode()
            started = time.monotonic()
            r = httpx.post(f"{url}/v1/articles", content=body, headers=auth, timeout=120)
            data = r.json()
            print(
                f"10,000 records, half bad    -> {r.status_code} accepted {data['accepted']} rejected {data['rejected']} "
                f"in {time.monotonic() - started:.1f} s; stored {stored(db)}; RSS {memory(proc.pid)[0]:.0f} MiB"
            )
            rss, peak = memory(proc.pid)
            print(
                f"service after bad input: RSS {rss:.0f} MiB, peak {peak:.0f} MiB; /livez {httpx.get(f'{url}/livez').status_code}"
            )
        finally:
            proc.terminate()
            proc.wait(30)
            dispose_all()


if __name__ == "__main__":
    main()
