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
