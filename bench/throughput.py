"""Throughput against the compute floor, every mode in one run, one table (issue 9).

    .venv/bin/python bench/throughput.py            # full: 301 articles, ~10 minutes on 2 cores
    .venv/bin/python bench/throughput.py --quick    # smoke: a few articles, one worker (a test runs it)

Modes, all on the same corpus in the same run:
  floor       the pure stage functions in a plain loop, in-process, no database (an in-memory dedup index);
  embedded    `newsflow run`'s path (workers.runtime.embedded.run) into SQLite, and into PostgreSQL;
  worker -c N `newsflow worker -c N` (N = 1, 2) on a private Redis (append-only, fsync every second) and
              PostgreSQL (durable defaults: fsync and full-page writes on), fed by workers.ingest.producer.enqueue;
  producer    `newsflow enqueue` on 5,000 small JSON lines, no workers running.
CPU is read from /proc for every process (this one, worker main and children, Redis, PostgreSQL's
postmaster and backends, the producer), so CPU ms per article counts all of them. Database statements and
transactions per article come from SQLAlchemy events in-process and from pg_stat_statements for workers
(BEGIN/COMMIT are statements there: they are round trips). Latency p50/p99 is measured with one worker
fed at half the capacity it just showed. Ratios are against the floor measured in this run.

Corpus: the 181 AEB pages (../shared/benchmarks/scrapinghub-aeb/html), 100 text dumps of them
(textdumps-w3m.jsonl.gz) and 20 syndicated copies (an AEB page under another source and URL, with a
distribution line added).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from schemas import RawArticle, StageMessage  # noqa: E402
from tests.servers import PostgresServer, RedisServer  # noqa: E402
from workers.core.ids import article_id  # noqa: E402

AEB = ROOT.parent / "shared" / "benchmarks" / "scrapinghub-aeb"
TICK = os.sysconf("SC_CLK_TCK")
STAGES = ("clean", "dedup", "tag", "store")


# ---------------------------------------------------------------------------------------------- corpus


def repo_corpus() -> list[RawArticle]:
    """The pages the repository ships (examples/, tests/pages/, the clean stage's golden dump) and a
    syndicated copy of each: a smoke corpus that needs nothing outside the checkout."""
    from workers.ingest.archives import read_inputs

    paths = [
        ROOT / "examples",
        ROOT / "tests" / "pages",
        ROOT / "tests" / "stages" / "golden" / "harbour-ferry-strike.txt",
    ]
    found = [r.article for r in read_inputs([str(p) for p in paths], source="repo.example") if r.article]
    copies = [
        a.model_copy(
            update={
                "source": "wire.example",
                "url": f"https://wire.example/story/{n}",
                "body": a.body + "\n\nDistributed by Example Wire Service.",
            }
        )
        for n, a in enumerate(found)
    ]
    return found + copies


def corpus(quick: bool) -> list[RawArticle]:
    """The AEB pages, text dumps of 100 of them and 20 syndicated copies (a few of each with --quick)."""
    with gzip.open(AEB / "textdumps-w3m.jsonl.gz", "rt") as handle:
        dumps = [json.loads(line) for line in handle]
    meta = {d["page_id"]: d for d in dumps}
    pages = sorted((AEB / "html").glob("*.html.gz"))
    n_pages, n_dumps, n_copies = (8, 4, 2) if quick else (181, 100, 20)
    out: list[RawArticle] = []
    html: list[tuple[str, str]] = []
    for path in pages[:n_pages]:
        page_id = path.name.removesuffix(".html.gz")
        body = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        info = meta.get(page_id, {})
        html.append((page_id, body))
        out.append(
            RawArticle(
                source=info.get("source", "aeb.example"),
                url=info.get("url"),
                content_type="text/html",
                body=body,
            )
        )
    out += [
        RawArticle(source=d["source"], url=d["url"], content_type="text/plain", body=d["body"])
        for d in dumps[:n_dumps]
    ]
    for page_id, body in html[:n_copies]:
        copy = body.replace("</body>", "<p>Distributed by Example Wire Service.</p></body>", 1)
        out.append(
            RawArticle(
                source="wire.example",
                url=f"https://wire.example/story/{page_id[:12]}",
                content_type="text/html",
                body=copy,
            )
        )
    return out


# ------------------------------------------------------------------------------------------------- /proc


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 'state' on (3rd field of proc(5))


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(int(st[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cpu_s(pids: list[int]) -> float:
    """CPU seconds of these processes and their reaped children (utime+stime+cutime+cstime)."""
    total = 0
    for pid in pids:
        st = _stat(pid)
        if st is not None:
            total += sum(int(v) for v in st[11:15])
    return total / TICK


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of one process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def self_cpu() -> float:
    return time.process_time()


# ------------------------------------------------------------------------------------------------ servers


class DurablePostgres(PostgresServer):
    """The tests' private PostgreSQL with durable defaults (fsync, full-page writes) and pg_stat_statements."""

    def _argv(self) -> list[str]:
        argv = super()._argv()
        argv = [
            a.replace("fsync=off", "fsync=on").replace("full_page_writes=off", "full_page_writes=on")
            for a in argv
        ]
        return [
            *argv,
            "-c",
            "shared_preload_libraries=pg_stat_statements",
            "-c",
            "pg_stat_statements.track=all",
        ]


def _pg(url: str) -> Any:
    import psycopg

    from tests.servers import libpq_url

    return psycopg.connect(libpq_url(url), autocommit=True)


# ------------------------------------------------------------------------------------------------- result


@dataclass
class Row:
    """One line of the table."""

    mode: str
    articles: int
    wall_s: float
    cpu: dict[str, float]  # process group -> CPU seconds
    stage_ms: dict[str, float] = field(default_factory=dict)
    statements: float | None = None  # client round trips per article (statements + BEGIN + COMMIT)
    server_statements: float | None = None  # per article, pg_stat_statements (an executemany row counts)
    transactions: float | None = None  # per article
    stage_round_trips: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    unit: str = "articles"

    @property
    def rate(self) -> float:
        return self.articles / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * sum(self.cpu.values()) / self.articles if self.articles else 0.0


# -------------------------------------------------------------------------------------------------- floor


def floor(articles: list[RawArticle], settings: Any) -> Row:
    """The stage functions in a plain loop: clean, dedup against an in-memory index, tag, assemble."""
    from schemas import DedupVerdict
    from workers.runtime.pipeline import _skip_tagging, dedup_params
    from workers.stages import clean as clean_stage
    from workers.stages import store as store_stage
    from workers.stages import tag as tag_stage
    from workers.stages.dedup import VERSION, Candidate, fingerprint, verify

    nlp = tag_stage.load_model(settings.tagger_model)
    params = dedup_params(settings)

    def run(batch: list[RawArticle], spent: dict[str, float]) -> None:
        texts: dict[str, str] = {}
        bands: dict[int, list[Candidate]] = {}
        for raw in batch:
            aid = article_id(raw)
            t = time.perf_counter()
            clean_stage.line_keys(raw)
            cleaned = clean_stage.clean(raw, aid)
            t1 = time.perf_counter()
            fp = fingerprint(cleaned, params)
            kind, dup = "unique", None
            if fp.text_key in texts:
                kind, dup = "exact_duplicate", texts[fp.text_key]
            else:
                cands = {c.article_id: c for b in fp.bands for c in bands.get(b, ())}
                matches = [m for c in cands.values() if (m := verify(fp, c, params)) is not None]
                if matches:
                    kind, dup = "near_duplicate", max(matches, key=lambda m: m.similarity).article_id
                texts[fp.text_key] = aid
                me = Candidate(aid, fp.signature, fp.shingles)
                for b in fp.bands:
                    bands.setdefault(b, []).append(me)
            verdict = DedupVerdict(
                article_id=aid, version=VERSION, kind=kind, duplicate_of=dup, cluster_id=dup or aid,
                similarity=None, reason="floor", canonical_url=fp.canonical_url, text_key=fp.text_key,
                params=params.as_record(),
            )  # fmt: skip
            t2 = time.perf_counter()
            tagged = None if _skip_tagging(verdict, settings) else tag_stage.tag(cleaned, nlp)
            t3 = time.perf_counter()
            store_stage.assemble(raw, cleaned, verdict, tagged)
            t4 = time.perf_counter()
            for name, dt in zip(STAGES, (t1 - t, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[name] = spent.get(name, 0.0) + dt

    run(articles[:3], {})  # warm-up: lazy imports and first-call caches
    spent: dict[str, float] = {}
    c0, w0 = self_cpu(), time.perf_counter()
    run(articles, spent)
    wall, cpu = time.perf_counter() - w0, self_cpu() - c0
    n = len(articles)
    return Row(
        "floor (stage functions, no DB)",
        n,
        wall,
        {"bench": cpu},
        stage_ms={k: 1000 * v / n for k, v in spent.items()},
        rss_mb={"bench": peak_rss_mb(os.getpid())},
    )


# ----------------------------------------------------------------------------------------------- embedded


class StatementCounter:
    """Counts what an engine sends: statements (cursor executes), BEGINs and COMMIT/ROLLBACKs, by stage."""

    def __init__(self) -> None:
        self.stage = "other"
        self.statements: dict[str, int] = {}
        self.transactions: dict[str, int] = {}
        self.begins: dict[str, int] = {}

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", lambda *a, **k: self._bump(self.statements))
        event.listen(engine, "begin", lambda *a: self._bump(self.begins))
        event.listen(engine, "commit", lambda *a: self._bump(self.transactions))
        event.listen(engine, "rollback", lambda *a: self._bump(self.transactions))

    def _bump(self, counts: dict[str, int]) -> None:
        counts[self.stage] = counts.get(self.stage, 0) + 1

    def round_trips(self, stage: str) -> int:
        # psycopg sends BEGIN before a transaction's first statement, COMMIT at the end: both are round trips
        return self.statements.get(stage, 0) + self.begins.get(stage, 0) + self.transactions.get(stage, 0)


def embedded(articles: list[RawArticle], settings: Any, url: str, label: str, servers: list[int]) -> Row:
    """workers.runtime.embedded.run over the corpus into `url`; `servers` are database server pids to charge."""
    import workers.runtime.embedded as emb
    from workers.db.engine import get_engine, upgrade
    from workers.runtime.pipeline import Context

    upgrade(url)
    counter = StatementCounter()
    counter.attach(get_engine(url))
    spent: dict[str, float] = {}
    real = emb.run_step

    def timed(stage: str, ctx: Any, msg: StageMessage) -> Any:
        counter.stage = stage
        t = time.perf_counter()
        try:
            return real(stage, ctx, msg)
        finally:
            spent[stage] = spent.get(stage, 0.0) + time.perf_counter() - t
            counter.stage = "other"

    real_batch = emb.run_batch

    def timed_batch(stage: str, ctx: Any, msgs: Any) -> Any:
        counter.stage = stage
        t = time.perf_counter()
        try:
            return real_batch(stage, ctx, msgs)
        finally:
            spent[stage] = spent.get(stage, 0.0) + time.perf_counter() - t
            counter.stage = "other"

    emb.run_step = timed  # type: ignore[assignment]
    emb.run_batch = timed_batch  # type: ignore[assignment]
    ctx = Context(settings.model_copy(update={"database_url": url}))
    pids = [p for s in servers for p in tree(s)]
    c0, s0, w0 = self_cpu(), cpu_s(pids), time.perf_counter()
    try:
        report = emb.run(articles, ctx)
    finally:
        emb.run_step = real  # type: ignore[assignment]
        emb.run_batch = real_batch  # type: ignore[assignment]
    wall = time.perf_counter() - w0
    cpu = {"bench": self_cpu() - c0}
    if servers:
        cpu["postgres"] = cpu_s([p for s in servers for p in tree(s)]) - s0
    n = len(articles)
    if report.failures:
        print(f"  {label}: {len(report.failures)} failure(s): {report.failures[:3]}", file=sys.stderr)
    total_stmts = sum(counter.statements.values()) + sum(counter.begins.values())
    return Row(
        label,
        n,
        wall,
        cpu,
        stage_ms={k: 1000 * v / n for k, v in spent.items()},
        statements=total_stmts / n + sum(counter.transactions.values()) / n,
        transactions=sum(counter.transactions.values()) / n,
        stage_round_trips={s: counter.round_trips(s) / n for s in STAGES},
        rss_mb={"bench": peak_rss_mb(os.getpid())},
    )


# -------------------------------------------------------------------------------------------- distributed


@dataclass
class Cluster:
    redis: RedisServer
    postgres: DurablePostgres
    url: str  # the workers' (role newsflow: pg_stat_statements counts only theirs)
    admin_url: str  # the producer's and the bench's polls (role postgres), same database
    env: dict[str, str]


def _reset(cluster: Cluster) -> None:
    import redis

    with _pg(cluster.admin_url) as conn:
        conn.execute(
            "TRUNCATE raw_articles, stage_results, articles, entities, mentions, duplicates, dedup_keys,"
            " dedup_signatures, dedup_bands, source_lines, dead_letters CASCADE"
        )
    with redis.Redis.from_url(cluster.redis.url) as client:
        client.flushdb()


def _start_worker(cluster: Cluster, concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "-c", str(concurrency),
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=cluster.env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited: {log.read_text()[-2000:]}")
        if " ready." in log.read_text(errors="replace"):
            # children load the model on their first task; give them one article first (see warm-up)
            return process
        time.sleep(0.2)
    raise RuntimeError("worker not ready")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _done(conn: Any) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM articles) + (SELECT count(DISTINCT article_id) FROM dead_letters)"
    ).fetchone()
    return int(row[0])


def _wait_done(conn: Any, target: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _done(conn) < target:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_done(conn)} of {target} articles finished")
        time.sleep(0.1)


def _statements(conn: Any) -> tuple[int, int]:
    """(statements, COMMITs+ROLLBACKs) the workers' user ran so far, from pg_stat_statements."""
    row = conn.execute(
        "SELECT coalesce(sum(calls), 0), coalesce(sum(calls) FILTER (WHERE query IN ('COMMIT', 'ROLLBACK')), 0)"
        " FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'newsflow'"
    ).fetchone()
    return int(row[0]), int(row[1])


def _task_ms(log: Path) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"task_done"' in line:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("stage") in STAGES and "duration_ms" in event:
                found.setdefault(event["stage"], []).append(float(event["duration_ms"]))
    return found


def distributed(
    cluster: Cluster, articles: list[RawArticle], concurrency: int, workdir: Path
) -> tuple[Row, subprocess.Popen[bytes], Path]:
    """Feed the corpus to `newsflow worker -c N` and time it until every article is stored (or dead)."""
    from celery import Celery

    from workers.core.settings import Settings
    from workers.ingest import producer

    _reset(cluster)
    log = workdir / f"worker-c{concurrency}.log"
    worker = _start_worker(cluster, concurrency, log)
    settings = Settings(database_url=cluster.admin_url, broker_url=cluster.redis.url)
    app = Celery(broker=cluster.redis.url)
    # Warm-up: every child loads its model and connects on its first tasks; not counted.
    warm = [a.model_copy(update={"source": "warmup.example"}) for a in articles[: 2 * concurrency]]
    with _pg(cluster.admin_url) as conn:
        producer.enqueue(warm, settings, app)
        _wait_done(conn, len({article_id(a) for a in warm}), 300)
        _reset(cluster)
        log.write_bytes(b"")
        conn.execute("SELECT pg_stat_statements_reset()")
        time.sleep(0.5)
        n = len({article_id(a) for a in articles})
        wpids, rpids, ppids = tree(worker.pid), tree(cluster.redis.pid or 0), tree(cluster.postgres.pid or 0)
        w0, r0, p0 = cpu_s(wpids), cpu_s(rpids), cpu_s(ppids)
        start, c0 = time.perf_counter(), self_cpu()
        producer.enqueue(articles, settings, app)
        produce_cpu = self_cpu() - c0
        _wait_done(conn, n, 1800)
        wall = time.perf_counter() - start
        wpids, rpids, ppids = tree(worker.pid), tree(cluster.redis.pid or 0), tree(cluster.postgres.pid or 0)
        cpu = {
            "worker": cpu_s(wpids) - w0,
            "redis": cpu_s(rpids) - r0,
            "postgres": cpu_s(ppids) - p0,
            "producer": produce_cpu,
        }
        statements, transactions = _statements(conn)
    ms = _task_ms(log)
    rss = {"worker main": peak_rss_mb(worker.pid)}
    rss["worker child (max)"] = max((peak_rss_mb(p) for p in wpids if p != worker.pid), default=0.0)
    rss["redis"] = peak_rss_mb(cluster.redis.pid or 0)
    rss["postgres (max)"] = max((peak_rss_mb(p) for p in ppids), default=0.0)
    row = Row(
        f"newsflow worker -c {concurrency} (Redis + PostgreSQL)",
        n,
        wall,
        cpu,
        stage_ms={k: statistics.fmean(v) for k, v in ms.items()},
        server_statements=statements / n,
        transactions=transactions / n,
        rss_mb=rss,
    )
    return row, worker, log


def latency(cluster: Cluster, articles: list[RawArticle], rate: float) -> dict[str, float]:
    """Feed articles one at a time at `rate`/s to the running worker; end-to-end p50/p99 seconds
    (from just before enqueue to the store transaction's time)."""
    from celery import Celery

    from workers.core.settings import Settings
    from workers.ingest import producer

    _reset(cluster)
    settings = Settings(database_url=cluster.admin_url, broker_url=cluster.redis.url)
    app = Celery(broker=cluster.redis.url)
    sent: dict[str, float] = {}
    start = time.time()
    for i, raw in enumerate(articles):
        delay = start + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[article_id(raw)] = time.time()
        producer.enqueue([raw], settings, app)
    with _pg(cluster.admin_url) as conn:
        _wait_done(conn, len(sent), 600)
        rows = conn.execute("SELECT id, extract(epoch FROM stored_at) FROM articles").fetchall()
    lat = sorted(float(stored) - sent[aid] for aid, stored in rows if aid in sent)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    return {"rate": rate, "p50": statistics.median(lat), "p99": q[98], "n": len(lat)}


def producer_row(cluster: Cluster, n: int, workdir: Path) -> Row:
    """`newsflow enqueue` on `n` small JSON lines (no workers): enqueues per second, CPU of all processes."""
    import resource

    _reset(cluster)
    path = workdir / "small.jsonl"
    with path.open("w") as handle:
        for i in range(n):
            body = f"Small article number {i}. The council met on Tuesday and agreed the budget."
            handle.write(
                json.dumps({"source": "small.example", "body": body, "content_type": "text/plain"}) + "\n"
            )
    rpids, ppids = tree(cluster.redis.pid or 0), tree(cluster.postgres.pid or 0)
    r0, p0 = cpu_s(rpids), cpu_s(ppids)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", "enqueue", str(path)],
        env={**cluster.env, "NEWSFLOW_HIGH_WATER_MARK": str(10 * n)},
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"enqueue failed: {done.stderr[-2000:]}")
    cpu = {
        "producer": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "redis": cpu_s(tree(cluster.redis.pid or 0)) - r0,
        "postgres": cpu_s(tree(cluster.postgres.pid or 0)) - p0,
    }
    _reset(cluster)
    return Row(f"newsflow enqueue, {n} small JSONL articles", n, wall, cpu, unit="enqueues")


# ------------------------------------------------------------------------------------------------- report


def _fmt_cpu(row: Row) -> str:
    return ", ".join(f"{k} {1000 * v / row.articles:.1f}" for k, v in row.cpu.items())


def table(rows: list[Row], base: Row, lat: dict[str, float] | None) -> str:
    """The markdown table (and the per-stage lines) the README quotes."""
    lines = [
        "| mode | per s | × floor | CPU ms/article (all processes) | × floor | CPU by process, ms/article"
        " | DB round trips/article (client) | statements/article (server) | transactions/article | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.rate / base.rate:.2f}" if row.unit == "articles" else "-"
        cpu_ratio = f"{row.cpu_ms / base.cpu_ms:.2f}" if row.unit == "articles" else "-"
        trips = "-" if row.statements is None else f"{row.statements:.1f}"
        server = "-" if row.server_statements is None else f"{row.server_statements:.1f}"
        txs = "-" if row.transactions is None else f"{row.transactions:.1f}"
        rss = ", ".join(f"{k} {v:.0f}" for k, v in row.rss_mb.items()) or "-"
        lines.append(
            f"| {row.mode} | {row.rate:.2f} {row.unit} | {ratio} | {row.cpu_ms:.1f} | {cpu_ratio} |"
            f" {_fmt_cpu(row)} | {trips} | {server} | {txs} | {rss} |"
        )
    lines.append("")
    lines.append(
        "per-stage ms per article (floor: the stage function; embedded: the step; workers: the task):"
    )
    for row in rows:
        if row.stage_ms:
            stages = ", ".join(f"{s} {row.stage_ms.get(s, 0.0):.1f}" for s in STAGES)
            lines.append(f"- {row.mode}: {stages}")
    for row in rows:
        if row.stage_round_trips:
            trips = ", ".join(f"{s} {row.stage_round_trips[s]:.1f}" for s in STAGES)
            lines.append(f"- {row.mode}, DB round trips per article by stage step (client side): {trips}")
    one = next((r for r in rows if "-c 1" in r.mode), None)
    two = next((r for r in rows if "-c 2" in r.mode), None)
    if one and two:
        lines.append(f"- 2 worker processes vs 1: {two.rate / one.rate:.2f}×")
    if lat:
        lines.append(
            f"- end-to-end latency with 1 worker process fed at {lat['rate']:.2f} articles/s (half its capacity),"
            f" {lat['n']:.0f} articles: p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: a few articles, one worker process")
    parser.add_argument("--json", action="store_true", help="also print the rows as one JSON object")
    parser.add_argument(
        "--repo-corpus",
        action="store_true",
        help="use the pages the repository ships instead of AEB (the smoke test: no ../shared needed)",
    )
    parser.add_argument("--producer-articles", type=int, default=None, help="default 5000 (200 with --quick)")
    parser.add_argument(
        "--latency-articles",
        type=int,
        default=100,
        help="articles fed at half capacity for the latency figure",
    )
    args = parser.parse_args(argv)
    if not args.repo_corpus and not AEB.exists():
        print(f"benchmark data not found at {AEB}", file=sys.stderr)
        return 2

    os.environ.setdefault("NEWSFLOW_LOG_LEVEL", "WARNING")
    from workers.core.logging import configure_logging
    from workers.core.settings import Settings

    configure_logging("json", "WARNING")
    articles = repo_corpus() if args.repo_corpus else corpus(args.quick)
    settings = Settings()
    rows: list[Row] = []
    lat = None
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        print(f"corpus: {len(articles)} articles", file=sys.stderr)
        base = floor(articles, settings)
        rows.append(base)
        print(f"floor: {base.rate:.2f}/s", file=sys.stderr)
        rows.append(
            embedded(articles, settings, f"sqlite:///{workdir / 'embedded.db'}", "newsflow run (SQLite)", [])
        )
        print(f"embedded: {rows[-1].rate:.2f}/s", file=sys.stderr)
        with RedisServer(appendonly=True, appendfsync="everysec") as rds, DurablePostgres() as pg:
            with _pg(pg.url) as conn:
                conn.execute("CREATE ROLE newsflow LOGIN SUPERUSER")
                conn.execute("CREATE DATABASE newsflow OWNER newsflow")
            url = pg.url.replace("postgres@", "newsflow@").rsplit("/", 1)[0] + "/newsflow"
            with _pg(url) as conn:
                conn.execute("CREATE EXTENSION pg_stat_statements")
            from workers.db.engine import upgrade

            upgrade(url)
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "NEWSFLOW_BROKER_URL": rds.url,
                "NEWSFLOW_DATABASE_URL": url,
                "NEWSFLOW_LOG_FORMAT": "json",
                "NEWSFLOW_LOG_LEVEL": "INFO",
            }
            cluster = Cluster(rds, pg, url, pg.url.rsplit("/", 1)[0] + "/newsflow", env)
            if not args.quick:
                emb_url = pg.create_database("embedded")
                rows.append(embedded(articles, settings, emb_url, "newsflow run (PostgreSQL)", [pg.pid or 0]))
                print(f"embedded pg: {rows[-1].rate:.2f}/s", file=sys.stderr)
            for concurrency in (1,) if args.quick else (1, 2):
                row, worker, _ = distributed(cluster, articles, concurrency, workdir)
                rows.append(row)
                print(f"worker -c {concurrency}: {row.rate:.2f}/s", file=sys.stderr)
                if concurrency == 1 and not args.quick:
                    lat = latency(cluster, articles[: args.latency_articles], row.rate / 2)
                    print(f"latency: {lat}", file=sys.stderr)
                _stop(worker)
            rows.append(
                producer_row(cluster, args.producer_articles or (200 if args.quick else 5000), workdir)
            )
    print(f"\n`bench/throughput.py{' --quick' if args.quick else ''}`, {len(articles)} articles:\n")
    print(table(rows, base, lat))
    if args.json:
        print(
            json.dumps(
                {
                    "rows": [
                        {
                            "mode": r.mode,
                            "rate": r.rate,
                            "rate_vs_floor": r.rate / base.rate,
                            "cpu_ms": r.cpu_ms,
                            "cpu_vs_floor": r.cpu_ms / base.cpu_ms,
                            "cpu_s": r.cpu,
                            "stage_ms": r.stage_ms,
                            "round_trips": r.statements,
                            "server_statements": r.server_statements,
                            "transactions": r.transactions,
                            "stage_round_trips": r.stage_round_trips,
                            "rss_mb": r.rss_mb,
                            "unit": r.unit,
                        }
                        for r in rows
                    ],
                    "latency": lat,
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
