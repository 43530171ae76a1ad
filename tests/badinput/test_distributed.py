"""The bad-input corpus through real workers on the private Redis and PostgreSQL.

One worker pool (prefork, 2 children) serves the whole module. File cases are validated, persisted
and enqueued by the producer (`workers.ingest.producer.enqueue`, what `newsflow enqueue` calls), alone and
next to a healthy article; queue cases publish malformed messages straight onto a stage queue. Each
case must end as its outcome says: nothing lost (every enqueued id stored or dead-lettered), the
healthy neighbour stored promptly, the worker still alive.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from kombu import Connection

from tests.badinput.conftest import MEASUREMENTS
from tests.badinput.corpus import CASES, Case, Result, healthy_record
from tests.integration.conftest import Worker, wait_for
from tests.samples import ROOT
from workers.core import keys
from workers.core.settings import Settings, get_settings
from workers.db import repo
from workers.db.engine import dispose_all, transaction, upgrade
from workers.ingest.archives import read_inputs

HISTORY_TABLES = {"alembic_version", "stage_journal"}
"""Tables that are history, not state: the stage journal gains a row per attempt, by design."""


pytestmark = pytest.mark.integration

SETTLE_S = 60.0
"""Longest wait for a case's articles to be stored or dead-lettered."""


@dataclass
class Pool:
    """The module's worker, its environment, settings and Celery app."""

    env: dict[str, str]
    settings: Settings
    app: Any
    worker: Worker
    tmp: Path

    def ensure_alive(self) -> None:
        """Restart the worker if a case killed it (queues purged first, or it dies again)."""
        if self.worker.process.poll() is None:
            return
        client = redis.Redis.from_url(self.env["NEWSFLOW_BROKER_URL"])
        for stage in ("clean", "dedup", "tag", "store"):
            client.delete(keys.queue_name(stage))
        client.delete("unacked", "unacked_index")
        self.worker = _start_worker(self.env, self.tmp, f"w{uuid.uuid4().hex[:6]}")


def _start_worker(env: dict[str, str], tmp: Path, name: str) -> Worker:
    log_path = tmp / f"worker-{name}.log"
    with log_path.open("wb") as handle:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.cli",
                "worker",
                "--concurrency",
                "2",
                "--hostname",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env=env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(process, log_path)
    wait_for(lambda: " ready." in log_path.read_text(errors="replace"), timeout=90, message="worker ready")
    return worker


@pytest.fixture(scope="module")
def pool(redis_server: Any, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    """One worker pool for every distributed case, on its own PostgreSQL database."""
    redis_server.start()
    postgres_server.start()
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    name = f"badinput_{uuid.uuid4().hex[:12]}"
    db = postgres_server.create_database(name)
    upgrade(db)
    tmp = tmp_path_factory.mktemp("pool")
    env = {
        **os.environ,
        "NEWSFLOW_BROKER_URL": redis_server.url,
        "NEWSFLOW_DATABASE_URL": db,
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_MAX_RETRIES": "2",
        "NEWSFLOW_RETRY_BACKOFF_MAX": "2",
        "NEWSFLOW_TAG_DUPLICATES": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            if key.startswith("NEWSFLOW_"):
                mp.setenv(key, value)
        get_settings.cache_clear()
        from workers.runtime.celery_app import create_app

        settings = get_settings()
        app = create_app()
        worker = _start_worker(env, tmp, "w1")
        state = Pool(env, settings, app, worker, tmp)
        try:
            yield state
        finally:
            state.worker.stop()
            app.close()
            get_settings.cache_clear()
            dispose_all()
            postgres_server.drop_database(name)


def _settled(db: str, ids: list[str]) -> bool:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            done = {
                r[0]
                for r in conn.execute(
                    sa.text(
                        "SELECT id FROM articles WHERE id = ANY(:ids) UNION "
                        "SELECT article_id FROM dead_letters WHERE article_id = ANY(:ids)"
                    ),
                    {"ids": ids},
                )
            }
    finally:
        engine.dispose()
    return done >= set(ids)


def _dump(db: str) -> str:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t not in HISTORY_TABLES]
            return "\n".join(repr(list(conn.execute(sa.text(f"SELECT * FROM {t}")))) for t in tables)
    finally:
        engine.dispose()


def _healthy(tmp: Path) -> Path:
    path = tmp / "healthy.jsonl"
    path.write_text(healthy_record(uuid.uuid4().int % 10**9) + "\n")
    return path


def _produce(pool: Pool, paths: list[str]) -> tuple[list[str], list[str]]:
    """Read, validate, persist and enqueue like `newsflow enqueue`: (sent ids, rejected lines)."""
    from workers.ingest.producer import enqueue

    rejected: list[str] = []
    # The module shares one database: a per-run source gives each run's articles their own ids, so a
    # case run twice (alone, then next to the neighbour) is processed twice, not found already stored
    # (the second run is a duplicate of the first, hence NEWSFLOW_TAG_DUPLICATES in the pool).
    run = uuid.uuid4().hex[:8]

    def valid() -> Iterator[Any]:
        for record in read_inputs(paths, source="badinput"):
            if record.article is not None:
                yield record.article.model_copy(update={"source": f"{record.article.source}-{run}"})
            else:
                rejected.extend(f"{record.origin}: {p.field}: {p.reason}" for p in record.problems)

    report = enqueue(valid(), pool.settings, pool.app)
    return report.sent, rejected


def _file_params() -> Iterator[object]:
    for case in CASES:
        if not case.distributed:
            continue
        for neighbour in (False, True):
            marks = (
                [pytest.mark.xfail(strict=True, reason=case.xfail_distributed)]
                if case.xfail_distributed
                else []
            )
            yield pytest.param(
                case, neighbour, id=f"{case.name}-{'neighbour' if neighbour else 'alone'}", marks=marks
            )


@pytest.mark.parametrize(("case", "with_neighbour"), list(_file_params()))
def test_bad_input_through_workers(case: Case, with_neighbour: bool, pool: Pool, tmp_path: Path) -> None:
    """The case ends as its outcome says through real workers; nothing lost, the neighbour stored, the worker alive."""
    pool.ensure_alive()
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = [str(p) for p in case.build(inputs)]
    neighbour_ids: list[str] = []
    started = time.perf_counter()
    sent, rejected = _produce(pool, paths)
    if with_neighbour:
        neighbour_ids, _ = _produce(pool, [str(_healthy(tmp_path))])
    db = pool.env["NEWSFLOW_DATABASE_URL"]
    wait_for(
        lambda: _settled(db, sent + neighbour_ids),
        timeout=SETTLE_S,
        message="every id stored or dead-lettered",
    )
    seconds = time.perf_counter() - started
    with transaction(db) as session:
        stored = [a for a in (repo.fetch_article(session, i) for i in sent) if a is not None]
        failures = [(d.stage, d.reason) for d in repo.open_dead_letters(session) if d.article_id in sent]
    result = Result(
        rejected=[line.replace(str(inputs) + "/", "") for line in rejected],
        stored=stored,
        failures=failures,
        valid=len(sent),
        leak_texts=[_dump(db), pool.worker.log_path.read_text(errors="replace")],
    )
    outcome = "rejected" if rejected else "dead-lettered" if failures else "stored" if stored else "-"
    MEASUREMENTS.append(
        f"workers  {case.name:32s} {'neighbour' if with_neighbour else 'alone    '} {outcome:13s} {seconds:6.2f} s"
    )
    case.check(result)
    assert len(set(sent)) == len({a.id for a in stored}) + len(failures)
    assert pool.worker.process.poll() is None, "the worker died"


def _backfill(pool: Pool, paths: list[str]) -> tuple[list[str], list[str]]:
    """Read, validate, persist and enqueue like `newsflow backfill` (checkpoints and all): (ids, rejected lines)."""
    from workers.core.ids import article_id
    from workers.ingest.backfill import Feeder, backfill

    rejected: list[str] = []
    backfill(
        paths,
        Feeder(pool.settings, pool.app),
        source="badinput",
        on_rejected=lambda item: rejected.extend(
            f"{item.origin}: {p.field}: {p.reason}" for p in item.problems
        ),
    )
    ids = [article_id(r.article) for r in read_inputs(paths, source="badinput") if r.article is not None]
    return ids, rejected


def _backfill_params() -> Iterator[object]:
    for case in CASES:
        if case.backfill:
            for neighbour in (False, True):
                yield pytest.param(case, neighbour, id=f"{case.name}-{'neighbour' if neighbour else 'alone'}")


@pytest.mark.parametrize(("case", "with_neighbour"), list(_backfill_params()))
def test_bad_input_through_backfill(case: Case, with_neighbour: bool, pool: Pool, tmp_path: Path) -> None:
    """The input case ends as its outcome says through `backfill` and real workers; the neighbour stored."""
    pool.ensure_alive()
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = [str(p) for p in case.build(inputs)]
    neighbour_ids: list[str] = []
    started = time.perf_counter()
    sent, rejected = _backfill(pool, paths)
    if with_neighbour:
        neighbour_ids, _ = _backfill(pool, [str(_healthy(tmp_path))])
    db = pool.env["NEWSFLOW_DATABASE_URL"]
    wait_for(
        lambda: _settled(db, sent + neighbour_ids),
        timeout=SETTLE_S,
        message="every id stored or dead-lettered",
    )
    seconds = time.perf_counter() - started
    with transaction(db) as session:
        stored = [a for a in (repo.fetch_article(session, i) for i in set(sent)) if a is not None]
        failures = [(d.stage, d.reason) for d in repo.open_dead_letters(session) if d.article_id in sent]
    result = Result(
        rejected=[line.replace(str(inputs) + "/", "") for line in rejected],
        stored=stored,
        failures=failures,
        valid=len(set(sent)),
    )
    MEASUREMENTS.append(
        f"backfill {case.name:32s} {'neighbour' if with_neighbour else 'alone    '} {seconds:6.2f} s"
    )
    case.check(result)
    assert pool.worker.process.poll() is None, "the worker died"


# --- malformed queue messages -------------------------------------------------------------------


class _Marker:
    """Unpickling this creates a file: proof of deserialization if the file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (str(self.path), "w"))


def _publish(pool: Pool, body: bytes, *, content_type: str, task: str | None = None) -> str:
    """Put one raw message on the clean queue, as a broken or hostile producer would."""
    task_id = str(uuid.uuid4())
    with Connection(pool.env["NEWSFLOW_BROKER_URL"]) as conn:
        conn.Producer().publish(
            body,
            routing_key=keys.queue_name("clean"),
            exchange="",
            content_type=content_type,
            content_encoding="binary" if content_type != "application/json" else "utf-8",
            headers={"task": task or keys.task_name("clean"), "id": task_id, "lang": "py", "retries": 0},
            declare=[],
        )
    return task_id


def _valid_message(article: str = "0" * 32) -> bytes:
    return json.dumps(
        [[{"article_id": article, "trace_id": "t1"}], {}, {"callbacks": None, "chain": None}]
    ).encode()


@dataclass(frozen=True)
class QueueCase:
    """A malformed message and how it must end: a dead letter with a reason, or a logged discard."""

    name: str
    body: Callable[[Path], bytes]
    content_type: str
    outcome: str
    dead_letter: str | None
    task: str | None = None
    xfail: str | None = None


RUNTIME = "needs malformed-message handling in workers/runtime/tasks/base.py and workers/runtime/celery_app.py (owner: runtime)"

QUEUE_CASES = [
    QueueCase(
        "pickle_message",
        lambda tmp: pickle.dumps(_Marker(tmp / "unpickled")),
        "application/x-python-serialize",
        "refused and discarded, never deserialized (the marker file is never created)",
        None,
    ),
    QueueCase(
        "wrong_message_schema",
        lambda tmp: json.dumps([[{"article_id": "not-hex", "trace_id": "t"}], {}, {}]).encode(),
        "application/json",
        "dead-lettered invalid_message",
        "invalid_message",
    ),
    QueueCase(
        "unknown_task_name",
        lambda tmp: _valid_message(),
        "application/json",
        "discarded with a logged error naming the task; the worker lives",
        None,
        task="newsflow.no_such_task",
    ),
    QueueCase(
        "wrong_argument_count",
        lambda tmp: json.dumps([[], {"unexpected": 1}, {}]).encode(),
        "application/json",
        "dead-lettered invalid_message (today acknowledged with no record)",
        "invalid_message",
    ),
    QueueCase(
        "malformed_json_message",
        lambda tmp: b'[[{"article_id": "0000',
        "application/json",
        "a dead letter invalid_message or a logged discard; the worker lives",
        None,
    ),
    QueueCase(
        "json_not_celery_list",
        lambda tmp: b'{"article_id": "00000000000000000000000000000000"}',
        "application/json",
        "a dead letter invalid_message or a logged discard; the worker lives (today it exits)",
        "invalid_message",
    ),
]


def _queue_params() -> Iterator[object]:
    for case in QUEUE_CASES:
        for neighbour in (False, True):
            marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
            yield pytest.param(
                case, neighbour, id=f"{case.name}-{'neighbour' if neighbour else 'alone'}", marks=marks
            )


def _dead_letters_with(db: str, reason: str) -> int:
    with transaction(db) as session:
        return len(repo.open_dead_letters(session, reason=reason))


@pytest.mark.parametrize(("case", "with_neighbour"), list(_queue_params()))
def test_malformed_message(case: QueueCase, with_neighbour: bool, pool: Pool, tmp_path: Path) -> None:
    """A malformed message ends as a dead letter or a logged discard; the worker lives and the neighbour is stored."""
    pool.ensure_alive()
    db = pool.env["NEWSFLOW_DATABASE_URL"]
    before = _dead_letters_with(db, case.dead_letter) if case.dead_letter else 0
    log_before = len(pool.worker.log_path.read_text(errors="replace"))
    started = time.perf_counter()
    _publish(pool, case.body(tmp_path), content_type=case.content_type, task=case.task)
    neighbour_ids: list[str] = []
    if with_neighbour:
        neighbour_ids, _ = _produce(pool, [str(_healthy(tmp_path))])
    client = redis.Redis.from_url(pool.env["NEWSFLOW_BROKER_URL"])
    wait_for(
        lambda: client.llen(keys.queue_name("clean")) == 0 or pool.worker.process.poll() is not None,
        timeout=30,
        message="the message consumed",
    )
    if neighbour_ids:
        wait_for(lambda: _settled(db, neighbour_ids), timeout=SETTLE_S, message="the neighbour stored")
    time.sleep(1.0)  # a worker that dies on the message does so within milliseconds
    seconds = time.perf_counter() - started
    log = pool.worker.log_path.read_text(errors="replace")[log_before:]
    MEASUREMENTS.append(
        f"workers  {case.name:32s} {'neighbour' if with_neighbour else 'alone    '} {seconds:6.2f} s"
    )
    assert pool.worker.process.poll() is None, f"the worker died:\n{log[-2000:]}"
    assert not (tmp_path / "unpickled").exists(), "the pickle was deserialized"
    if case.dead_letter:
        assert _dead_letters_with(db, case.dead_letter) == before + 1
    elif case.task:
        assert case.task in log, log[-2000:]  # "Received unregistered task of type ..."
    else:
        # Celery acknowledges (discards) a body it cannot decode and logs "Can't decode message body".
        words = ("disallowed", "refusing", "discard", "can't decode message body")
        assert any(word in log.lower() for word in words), log[-2000:]
    if neighbour_ids:
        with transaction(db) as session:
            assert repo.fetch_article(session, neighbour_ids[0]) is not None


# --- issue 30: a message above the size limit, and backfill's printed names, long paths and symlinks ----


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_message_above_the_size_limit_is_dead_lettered_by_its_size_before_it_is_parsed(
    pool: Pool, tmp_path: Path
) -> None:
    """Issue 30.7: a 40 MB stage message (a hostile producer's) is dead-lettered `invalid_message` by its size in
    the worker's main process, never parsed (its dead letter says so and keeps 300 characters of it); the main
    process grows by less than five copies of it (redis-py's reading of the reply; 6.3 copies when it was
    parsed whole); the worker lives and the next message is stored."""
    from schemas.limits import MAX_MESSAGE_BYTES

    pool.ensure_alive()
    db = pool.env["NEWSFLOW_DATABASE_URL"]
    before = _dead_letters_with(db, "invalid_message")
    pid = pool.worker.process.pid
    peak_before = _peak_rss_mb(pid)
    size = 40 * 1024 * 1024
    body = json.dumps(
        [
            [{"article_id": "0" * 32, "trace_id": "t1", "pad": "x" * size}],
            {},
            {"callbacks": None, "chain": None},
        ]
    ).encode()
    _publish(pool, body, content_type="application/json")
    del body
    neighbour_ids, _ = _produce(pool, [str(_healthy(tmp_path))])
    wait_for(lambda: _settled(db, neighbour_ids), timeout=SETTLE_S, message="the neighbour stored")
    wait_for(
        lambda: _dead_letters_with(db, "invalid_message") == before + 1, timeout=30, message="a dead letter"
    )
    growth = _peak_rss_mb(pid) - peak_before
    MEASUREMENTS.append(f"workers  {'message_40mb':32s} main-process peak growth {growth:6.0f} MB")
    with transaction(db) as session:
        letter = repo.open_dead_letters(session, reason="invalid_message")[-1]
    assert "refused before it was parsed" in letter.message, letter.message
    assert f"the limit of {MAX_MESSAGE_BYTES} bytes" in letter.message
    assert len(letter.payload) < 1000
    assert pool.worker.process.poll() is None, "the worker died"
    assert growth < 5 * size / 2**20, growth


def _backfill_cli(pool: Pool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "backfill", *args],
        env=pool.env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_backfill_long_paths_escaped_names_and_symlinks_out_of_the_directory(
    pool: Pool, tmp_path: Path
) -> None:
    """Issue 30.3-5 through `newsflow backfill`: a file whose path is over 1,000 characters is read and
    checkpointed (by hash), and neither stops the backfill nor `--restart`; a file name with escape bytes
    and a newline is printed escaped in the "already done" line; symlinks out of the input directory (to
    /proc/self/environ, to an env file) are skipped and said, never read into a payload, unless
    --follow-symlinks."""
    from tests.badinput.corpus import article_html

    root = tmp_path / "in"
    deep = root
    for n in range(5):
        deep = deep / (f"{n}" * 230)
    deep.mkdir(parents=True)
    long_file = deep / "page.html"
    long_file.write_text(article_html(title=f"Deep harbour {uuid.uuid4().hex[:6]}"))
    assert len(str(long_file.resolve())) > 1000
    evil = root / "evil\x1b[2J\nrejected forged: x.html"
    evil.write_text(article_html(title=f"Evil name {uuid.uuid4().hex[:6]}"))
    secret = tmp_path / "prod.env.html"
    secret.write_text(f"NEWSFLOW_BROKER_URL=redis://:{SECRET_WORD}@redis:6379/0\n")
    (root / "settings.html").symlink_to(secret)
    (root / "environ.html").symlink_to("/proc/self/environ")

    first = _backfill_cli(pool, str(root))
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert "symlink_outside 2" in first.stderr, first.stderr
    assert first.stderr.count("outside the input directory: not followed") == 2, first.stderr
    assert "\x1b" not in first.stderr + first.stdout
    second = _backfill_cli(pool, str(root))
    assert second.returncode == 0, second.stderr
    done_lines = [line for line in second.stderr.splitlines() if "already done" in line]
    assert len(done_lines) == 2, second.stderr
    assert "\x1b" not in second.stderr
    assert not [line for line in second.stderr.splitlines() if line.startswith("rejected forged")]
    assert any("evil\\x1b[2J\\x0arejected forged" in line for line in done_lines), done_lines
    restart = _backfill_cli(pool, "--restart", str(root))
    assert restart.returncode == 0, restart.stderr
    assert "already stored" in restart.stderr
    db = pool.env["NEWSFLOW_DATABASE_URL"]
    wait_for(
        lambda: SECRET_WORD not in _dump(db) and _stored_titles(db) >= 2, timeout=SETTLE_S, message="stored"
    )
    assert SECRET_WORD not in _dump(db)
    assert "NEWSFLOW_BROKER_URL" not in _dump(db)


SECRET_WORD = "s3cr3t-broker-password-4b1d"


def _stored_titles(db: str) -> int:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM articles WHERE title LIKE 'Deep harbour%' OR title LIKE 'Evil name%'"
            )
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()
