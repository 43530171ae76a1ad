"""Fault injection with real processes: a worker child SIGKILLed mid-task, Redis and PostgreSQL restarted.

Each test starts one real worker, enqueues the sample page and the examples (five articles, one
of them a near-duplicate), breaks something while work is in flight and checks that every article
ends up stored exactly once, with no dead letter and nothing left in the queues.

Tasks are caught in flight deterministically rather than by timing: the test holds a SHARE lock on
`articles` (or an uncommitted `tag` record), so the tasks block inside their upsert, visible in
`pg_stat_activity` as lock waits, until the test lets go. A task that Celery itself reports as
"raised unexpected" escaped newsflow's retry/dead-letter policy and fails the test at once.

The last two tests found real bugs when first written: Celery's default cap of three retries
(a longer PostgreSQL outage lost articles) and the next stage's publish giving up while Redis was
down; both are fixed in `workers/runtime/tasks/base.py` and `workers/runtime/celery_app.py`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import sqlalchemy as sa

from tests.integration.conftest import Worker, check_ledger, run_cli, wait_for
from tests.samples import EXAMPLES, sample_page
from tests.servers import libpq_url
from workers.core import keys
from workers.runtime.pipeline import STAGE_NAMES

pytestmark = pytest.mark.integration

ARTICLES = 5  # the sample page, feed.jsonl (two), the wind-farm text dump and the library page
UNACKED = "unacked"  # kombu's Redis transport: messages delivered and not yet acknowledged
STORE_TIMEOUT_S = 150  # noisy shared machine: spaCy loads in each fresh pool child


# --- helpers --------------------------------------------------------------------------------------


def _scalar(db: str, query: str) -> Any:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar_one()
    finally:
        engine.dispose()


def _stored(db: str) -> int:
    """Stored articles; 0 while the database is unreachable."""
    try:
        return int(_scalar(db, "SELECT count(*) FROM articles"))
    except sa.exc.OperationalError:
        return 0


def _queues_empty(broker_url: str) -> bool:
    try:
        with redis.Redis.from_url(broker_url) as client:
            return all(client.llen(keys.queue_name(s)) == 0 for s in STAGE_NAMES)
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture(autouse=True)
def _small_batches(pipeline_env: dict[str, str]) -> None:
    """Micro-batches of two: the 5 articles travel as 3 messages per stage, so faults hit batches and
    single messages alike, with some in flight and some queued. The tests catch tasks in flight by
    holding a lock they wait for, as long as the test needs: no statement or lock timeout, unless a
    test sets one (the server-enforced timeouts have their own tests, `tests/tasks/test_db_timeouts.py`)."""
    pipeline_env["NEWSFLOW_BATCH_SIZE"] = "2"
    pipeline_env["NEWSFLOW_DB_STATEMENT_TIMEOUT"] = "0"
    pipeline_env["NEWSFLOW_DB_LOCK_TIMEOUT"] = "0"


FREEZE_S = float(os.environ.get("NEWSFLOW_FAULT_FREEZE_S", "6"))
"""How long the frozen-Redis and frozen-PostgreSQL tests keep the server stopped (bench/faults.py: 120)."""


def _enqueue_all(env: dict[str, str]) -> list[str]:
    result = run_cli(env, "enqueue", str(sample_page()), str(EXAMPLES))
    assert result.returncode == 0, result.stderr
    ids = result.stdout.split()
    assert len(set(ids)) == ARTICLES
    return ids


def _events(worker: Worker, event: str, **fields: object) -> list[dict[str, object]]:
    return [
        e
        for e in worker.log_events()
        if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
    ]


def _log_tail(worker: Worker, chars: int = 6000) -> str:
    return worker.log_path.read_text(errors="replace")[-chars:]


def _escaped(worker: Worker) -> list[str]:
    """Tasks that ended outside newsflow's policy (neither done, retried nor dead-lettered): Celery's own failures."""
    return [
        str(e["event"])[:300]
        for e in worker.log_events()
        if e.get("logger") == "celery.app.trace" and " raised unexpected: " in str(e.get("event", ""))
    ]


def _wait_all_stored(env: dict[str, str], worker: Worker, timeout: float = STORE_TIMEOUT_S) -> None:
    """Wait until every article is stored and the queues are empty; fail at once if a task escaped the policy."""
    db, broker = env["NEWSFLOW_DATABASE_URL"], env["NEWSFLOW_BROKER_URL"]

    def stored() -> bool:
        if escaped := _escaped(worker):
            pytest.fail(f"a task failed outside the retry/dead-letter policy, its message acked: {escaped}")
        return _stored(db) == ARTICLES

    try:
        wait_for(stored, timeout=timeout, message=f"{ARTICLES} stored articles")
        wait_for(lambda: _queues_empty(broker), timeout=30, message="the stage queues to drain")
    except pytest.fail.Exception:
        print(_log_tail(worker))
        raise


def assert_stored_exactly_once(db: str, ids: list[str]) -> None:
    """Every enqueued article is stored once, with one record per recorded stage, and nothing was dead-lettered."""
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT id FROM articles")).scalars().all()
            per_stage = dict(
                conn.execute(sa.text("SELECT stage, count(*) FROM stage_results GROUP BY stage")).all()
            )
            raw = conn.execute(sa.text("SELECT count(*) FROM raw_articles")).scalar_one()
            self_dups = conn.execute(
                sa.text("SELECT count(*) FROM articles WHERE duplicate_of = id")
            ).scalar_one()
            dead = conn.execute(sa.text("SELECT stage, reason, message FROM dead_letters")).all()
    finally:
        engine.dispose()
    assert dead == []
    assert sorted(stored) == sorted(ids)
    assert raw == len(ids)
    assert per_stage == dict.fromkeys(("clean", "dedup", "tag"), len(ids))  # store's record is `articles`
    assert self_dups == 0  # a re-run dedup must not find the article's own earlier signature


@contextmanager
def articles_locked(db: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold a SHARE lock on `articles` (reads go on, the store stage's upsert waits) until the block ends."""
    conn = psycopg.connect(libpq_url(db))
    try:
        conn.execute("LOCK TABLE articles IN SHARE MODE")
        yield conn
    finally:
        with suppress(psycopg.OperationalError):  # the server may have been killed meanwhile
            conn.rollback()
        conn.close()


def _blocked_ports(db: str, table: str = "articles") -> list[int]:
    """Client ports of the connections waiting for a lock to insert into `table` (tasks caught in flight)."""
    with psycopg.connect(libpq_url(db), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client_port FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE %s"
            " ORDER BY query_start",
            (f"INSERT INTO {table}%",),
        ).fetchall()
    return [port for (port,) in rows if port is not None]


def _pid_owning_local_port(port: int) -> int | None:
    """The process holding the TCP socket whose local port is `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            targets = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if targets & inodes:
            return int(entry.name)
    return None


def _parent_pid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


# --- tests ----------------------------------------------------------------------------------------


def _received(worker: Worker, task_name: str) -> list[str]:
    """Task ids of every `Task NAME[ID] received` line, in order (a redelivered task appears twice)."""
    prefix = f"Task {task_name}["
    return [
        str(e["event"])[len(prefix) :].split("]", 1)[0]
        for e in worker.log_events()
        if str(e.get("event", "")).startswith(prefix) and str(e["event"]).endswith("] received")
    ]


def _connected(worker: Worker) -> int:
    """How many times the worker's consumer connected to the broker."""
    return sum(1 for e in worker.log_events() if str(e.get("event", "")).startswith("Connected to redis://"))


def _unacked(broker_url: str) -> int:
    """Messages delivered but not acknowledged (kombu's Redis transport keeps them in the `unacked` hash)."""
    with redis.Redis.from_url(broker_url) as client:
        return int(client.hlen(UNACKED))


def _unacked_articles(broker_url: str) -> list[str]:
    """Article ids of the messages in kombu's `unacked` hash (delivered, not acknowledged)."""
    import json

    from workers.ops.reconcile import _articles_of

    with redis.Redis.from_url(broker_url) as client:
        return [a for raw in client.hvals(UNACKED) for a in _articles_of(json.loads(raw)[0])]


def _delivery_keys(broker_url: str) -> list[bytes]:
    """Delivery counters left in Redis (each is deleted when its task ends)."""
    with redis.Redis.from_url(broker_url) as client:
        return list(client.scan_iter(keys.deliveries_pattern()))


# --- tests ----------------------------------------------------------------------------------------


def test_worker_child_killed_mid_task_is_redelivered_and_stored_once(pipeline_env, start_worker):
    """A pool child SIGKILLed inside a store task: its message is redelivered and every article is stored once."""
    worker = start_worker()
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        wait_for(lambda: bool(_blocked_ports(db)), timeout=STORE_TIMEOUT_S, message="a store task blocked")
        port = _blocked_ports(db)[0]
        child = _pid_owning_local_port(port)
        assert child is not None, f"no process owns local port {port}"
        assert _parent_pid(child) == worker.process.pid  # a pool child of our worker, nobody else's
        in_flight = set(_received(worker, "newsflow.store"))  # none can finish while the lock is held
        os.kill(child, signal.SIGKILL)
        wait_for(
            lambda: "WorkerLostError" in worker.log_path.read_text(errors="replace"),
            timeout=30,
            message="the worker to notice its lost child",
        )
    _wait_all_stored(pipeline_env, worker)
    assert_stored_exactly_once(db, ids)
    received = _received(worker, "newsflow.store")
    [killed] = {task_id for task_id in received if received.count(task_id) == 2}
    assert killed in in_flight
    wait_for(lambda: _delivery_keys(broker) == [], timeout=30, message="delivery counters deleted")
    # The redelivered message either ran again (one article) or, a micro-batch, was split into one
    # message per article so that an article killing workers is found alone.
    finished = _events(worker, "task_done", task_id=killed, outcome="ok")
    split = [e.get("why") for e in _events(worker, "batch_split", task_id=killed)]
    assert len(finished) == 1 or split == ["redelivered"], (finished, split)
    wait_for(lambda: _unacked(broker) == 0, timeout=30, message="every delivered message acknowledged")


KOMBU_582 = ["--include", "workers.runtime.journal,tests.integration.kombu_582"]
"""Worker options that load `tests/integration/kombu_582.py`: kombu's restore raises celery/kombu#582."""


def test_redis_restarted_mid_flight_loses_nothing(pipeline_env, start_worker, redis_server, start_reconciler):
    """Redis SIGKILLed and restarted with tasks in flight and queued, while kombu's restore of the unacknowledged
    messages raises what it raised in the fault campaign (celery/kombu#582, `'NoneType' object has no attribute
    'hostname'`, which Celery calls unrecoverable): the same worker process reconnects, every article is stored
    once, and its liveness probe passes."""
    worker = start_worker(concurrency=2, name="k582", extra=KOMBU_582)
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        # Both pool children blocked inside store tasks: two messages in flight, the rest queued, and
        # no task can finish while Redis is down.
        wait_for(
            lambda: len(_blocked_ports(db)) == 2, timeout=STORE_TIMEOUT_S, message="2 store tasks blocked"
        )
        assert not _queues_empty(broker)
        redis_server.kill()
        time.sleep(2)
        redis_server.restart()
        wait_for(lambda: _connected(worker) >= 2, timeout=60, message="the worker to reconnect to Redis")
    _wait_all_stored(pipeline_env, worker)
    assert_stored_exactly_once(db, ids)
    assert worker.process.poll() is None  # the same worker process, reconnected by itself
    assert _events(worker, "broker_connection_lost", known_issue="celery/kombu#582"), _log_tail(worker)
    assert "Unrecoverable error" not in worker.log_path.read_text()
    # The restore that failed left the messages in flight then in kombu's `unacked` hash (their acks went to
    # the closed channel): the visibility timeout redelivers them; each is of an article stored, so its
    # redelivery changes nothing.
    assert set(_unacked_articles(broker)) <= set(ids)
    live = run_cli(pipeline_env, "health", "--live", "--worker", "k582", "--max-age", "30")
    assert live.returncode == 0, live.stdout + live.stderr


def test_postgres_restarted_mid_flight_is_retried_not_dead_lettered(
    pipeline_env, start_worker, postgres_server
):
    """PostgreSQL SIGKILLed for seconds mid-flight: the tasks that hit it are retried, none is lost or dead-lettered, all are stored once."""
    # Retries enough to outlast the outage: each delay is at most NEWSFLOW_RETRY_BACKOFF_MAX (2 s), with full
    # jitter, so 20 retries take about 20 s on average, far more than the 8 s the server is down.
    pipeline_env["NEWSFLOW_MAX_RETRIES"] = "20"
    worker = start_worker(concurrency=2)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        # Both pool children inside store transactions when the server dies; the rest queued behind them.
        wait_for(
            lambda: len(_blocked_ports(db)) == 2, timeout=STORE_TIMEOUT_S, message="2 store tasks blocked"
        )
        postgres_server.kill()
    wait_for(lambda: len(_events(worker, "task_retry")) >= 2, timeout=30, message="the failed tasks retried")
    time.sleep(8)
    postgres_server.restart()
    _wait_all_stored(pipeline_env, worker)
    assert_stored_exactly_once(db, ids)
    retried = _events(worker, "task_retry", task_name="newsflow.store")
    assert len({e["task_id"] for e in retried}) >= 2, retried
    assert all("OperationalError" in str(e["error"]) for e in retried)


def test_stage_finishing_while_redis_is_down_still_continues(
    pipeline_env, start_worker, redis_server, start_reconciler
):
    """A tag task finishing while Redis is down records its result, gives up publishing the next stage after
    a short retry (no pool process blocked for minutes), and the reconciler gets the article stored."""
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    ids = _enqueue_all(pipeline_env)
    # An uncommitted `tag` record per article makes every tag task wait inside its upsert until we roll back.
    with psycopg.connect(libpq_url(db)) as held:
        for article in ids:
            held.execute(
                "INSERT INTO stage_results (article_id, stage, version, output) VALUES (%s, 'tag', 'held', '{}')",
                (article,),
            )
        worker = start_worker(concurrency=2)
        wait_for(
            lambda: len(_blocked_ports(db, "stage_results")) == 2,
            timeout=STORE_TIMEOUT_S,
            message="2 tag tasks blocked",
        )
        redis_server.kill()
        held.rollback()  # both tag tasks finish now, with the broker down
    wait_for(
        lambda: len(_events(worker, "next_stage_not_published", task_name="newsflow.tag")) == 2,
        timeout=30,
        message="both tag tasks to give up publishing the store stage",
    )
    # One line per task: a message of one article ends with `task_done`, a micro-batch with `batch_done`.
    ends = [e for e in _events(worker, "task_done", task_name="newsflow.tag") if "next_published" in e]
    ends += _events(worker, "batch_done", task_name="newsflow.tag")
    assert [e["next_published"] for e in ends] == [False, False]
    redis_server.restart()
    start_reconciler(every=2, older_than=3)
    _wait_all_stored(pipeline_env, worker, timeout=120)
    assert_stored_exactly_once(db, ids)
    assert worker.process.poll() is None


# --- issue 13: outages of any length, a Redis restarted empty, malformed and repeated messages ---------

OUTAGE_S = float(os.environ.get("NEWSFLOW_FAULT_OUTAGE_S", "20"))
"""How long Redis stays down in F3 (20 s in CI; bench/faults.py runs 180 s)."""


def test_redis_restarted_empty_after_an_outage_ends_with_every_article_stored(
    pipeline_env, start_worker, redis_server, start_reconciler
):
    """F3: Redis down OUTAGE_S seconds and back EMPTY (queued and unacked messages gone) with work in flight:
    the same worker reconnects and the reconciler re-enqueues from the database; every article stored once."""
    worker = start_worker(concurrency=2)
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        wait_for(
            lambda: len(_blocked_ports(db)) == 2, timeout=STORE_TIMEOUT_S, message="2 store tasks blocked"
        )
        with redis.Redis.from_url(broker) as client:
            waiting = {s: client.llen(keys.queue_name(s)) for s in STAGE_NAMES}
            queued = sum(waiting.values()) + client.hlen(UNACKED)
            # The fault hits work in flight: 2 store tasks running (unacknowledged), 1 message waiting.
            assert queued >= 3, (waiting, client.hlen(UNACKED))
            client.flushall()  # the append-only file records the flush: the restart comes back empty
        redis_server.kill()
        time.sleep(OUTAGE_S)
        redis_server.restart()
    with redis.Redis.from_url(broker) as client:
        # Empty but for what the worker itself writes after reconnecting (queue bindings, delivery
        # counters of the tasks that were running): no message survived.
        left = sorted(k.decode() for k in client.scan_iter())
        messages = [k for k in left if k in {keys.queue_name(s) for s in STAGE_NAMES} or k == UNACKED]
        assert all(k.startswith(("_kombu.", "newsflow:deliveries:")) for k in left), left
        assert messages == []
    start_reconciler(every=2, older_than=3)
    _wait_all_stored(pipeline_env, worker, timeout=180)
    ledger = check_ledger(db, ids)
    print(ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)
    assert worker.process.poll() is None  # never exited during the outage
    log_text = worker.log_path.read_text(errors="replace")
    assert log_text.count("Cannot connect to") <= 1  # one line per state change, not one per attempt
    with psycopg.connect(libpq_url(db)) as conn:
        resent = conn.execute("SELECT count(*) FROM reconcile_marks").fetchone()
    assert resent is not None
    assert resent[0] >= 1  # the articles of the message the flush lost came back through the reconciler


def test_same_message_published_ten_times_concurrently_is_stored_once(pipeline_env, start_worker):
    """F5: one clean message published 10 times at once with the same task id, and a backfill of every stage
    over stored articles: stored once, no dead letter (the guard counts deliveries per message), no counters left."""
    import threading

    from schemas import StageMessage
    from workers.runtime.celery_app import create_app

    worker = start_worker(concurrency=2)
    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    ids = _enqueue_all(pipeline_env)
    _wait_all_stored(pipeline_env, worker)
    app = create_app()
    app.conf.broker_url = broker
    msg = StageMessage(article_id=ids[0], trace_id="f5")

    def publish() -> None:
        app.send_task(
            keys.task_name("clean"),
            args=(msg.model_dump(),),
            queue=keys.queue_name("clean"),
            task_id="the-same-task-id",
        )

    threads = [threading.Thread(target=publish) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from workers.runtime.broker import send

    for article in ids:  # a backfill rerun over stored articles, each stage on its own
        for stage in STAGE_NAMES:
            send(app, StageMessage(article_id=article, trace_id="backfill"), stage)
    wait_for(
        lambda: len(_events(worker, "task_done", task_name="newsflow.store")) >= ARTICLES + 10 + ARTICLES * 4,
        timeout=STORE_TIMEOUT_S,
        message="every republished pipeline to finish",
    )
    _wait_all_stored(pipeline_env, worker)
    ledger = check_ledger(db, ids)
    print(ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)
    wait_for(lambda: _delivery_keys(broker) == [], timeout=30, message="delivery counters deleted")


def test_malformed_messages_never_stop_the_worker(pipeline_env, start_worker):
    """A body that is not [args, kwargs, embed], wrong argument counts and an unexpected keyword, queued ahead
    of healthy articles: each is an invalid_message dead letter, the worker stays up and the healthy are stored."""
    from kombu import Connection

    from workers.runtime.celery_app import create_app

    db, broker = pipeline_env["NEWSFLOW_DATABASE_URL"], pipeline_env["NEWSFLOW_BROKER_URL"]
    bodies = [{"not": "a list"}, [1, 2], "text", [[{"article_id": "a" * 32, "trace_id": "t"}], {}, "x"]]
    with Connection(broker) as conn:
        producer = conn.Producer(serializer="json")
        for n, body in enumerate(bodies):
            producer.publish(
                body,
                routing_key=keys.queue_name("clean"),
                headers={"task": keys.task_name("clean"), "id": f"malformed-{n}", "lang": "py"},
            )
    app = create_app()
    app.conf.broker_url = broker
    good = {"article_id": "b" * 32, "trace_id": "t"}
    app.send_task(keys.task_name("clean"), args=(good, good), queue=keys.queue_name("clean"))
    app.send_task(keys.task_name("clean"), args=(), kwargs={"msg": good}, queue=keys.queue_name("clean"))
    app.send_task(keys.task_name("clean"), args=(good,), kwargs={"x": 1}, queue=keys.queue_name("clean"))
    worker = start_worker(concurrency=1)
    ids = _enqueue_all(pipeline_env)
    _wait_all_stored(pipeline_env, worker)
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in worker.log_path.read_text(errors="replace")
    rows = int(_scalar(db, "SELECT count(*) FROM dead_letters WHERE reason = 'invalid_message'"))
    assert rows == len(bodies) + 3
    wait_for(lambda: _unacked(broker) == 0, timeout=30, message="the malformed messages acknowledged")
    ledger = check_ledger(db, ids)
    print(ledger.line())
    assert ledger.clean(), ledger


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, ValueError, IndexError):
                if _parent_pid(int(entry.name)) == pid:
                    out.append(int(entry.name))
    return out


def test_worker_main_process_killed_is_recovered_by_the_reconciler_not_the_visibility_timeout(
    pipeline_env, start_worker, start_reconciler
):
    """F2: the worker's main process and its children SIGKILLed with two store tasks in flight; a new worker
    and the reconciler finish every article within seconds, not after the visibility timeout (600 s)."""
    worker = start_worker(concurrency=2)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        wait_for(
            lambda: len(_blocked_ports(db)) == 2, timeout=STORE_TIMEOUT_S, message="2 store tasks blocked"
        )
        children = _children(worker.process.pid)
        assert len(children) >= 2
        os.kill(worker.process.pid, signal.SIGKILL)
        for child in children:
            with suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        worker.process.wait(timeout=10)
    started = time.monotonic()
    replacement = start_worker(concurrency=2, name="w2")
    start_reconciler(every=2, older_than=3)
    _wait_all_stored(pipeline_env, replacement, timeout=120)
    print(f"recovered {time.monotonic() - started:.0f}s after the kill (visibility timeout 600 s)")
    ledger = check_ledger(db, ids)
    print(ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)


def test_sigterm_during_work_and_during_scheduled_retries_loses_nothing(
    pipeline_env, start_worker, postgres_server
):
    """F6: SIGTERM while two store tasks are in flight and others wait as scheduled retries (PostgreSQL
    briefly down): the worker finishes or hands back its messages, a new worker stores every article once."""
    pipeline_env["NEWSFLOW_MAX_RETRIES"] = "20"
    pipeline_env["NEWSFLOW_RETRY_BACKOFF_MAX"] = "8"
    worker = start_worker(concurrency=2)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        wait_for(
            lambda: len(_blocked_ports(db)) == 2, timeout=STORE_TIMEOUT_S, message="2 store tasks blocked"
        )
        postgres_server.kill()
    wait_for(lambda: len(_events(worker, "task_retry")) >= 2, timeout=30, message="tasks waiting to retry")
    worker.process.send_signal(signal.SIGTERM)  # warm shutdown with retries scheduled (ETA messages held)
    worker.process.wait(timeout=60)
    postgres_server.restart()
    replacement = start_worker(concurrency=2, name="w2")
    _wait_all_stored(pipeline_env, replacement, timeout=STORE_TIMEOUT_S)
    ledger = check_ledger(db, ids)
    print(ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)


# --- frozen servers, paused workers, hard kills (issue 19) -------------------------------------------


def _freeze(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)


def _thaw(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _journal(db: str, event: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT article_id, stage FROM stage_journal WHERE event = :e"), {"e": event}
            ).all()
    finally:
        engine.dispose()
    return [(a, s) for a, s in rows]


def _clean_stored(db: str) -> int:
    try:
        return int(_scalar(db, "SELECT count(*) FROM stage_results WHERE stage = 'clean'"))
    except sa.exc.OperationalError:
        return 0


def _long_outage_env(env: dict[str, str]) -> None:
    """Retries enough to outlast a freeze of FREEZE_S seconds (each delay is at most 2 s)."""
    env["NEWSFLOW_MAX_RETRIES"] = str(max(20, int(FREEZE_S)))


def test_frozen_redis_loses_nothing(pipeline_env, start_worker, redis_server, start_reconciler):
    """Redis frozen (SIGSTOP, as a VM pause) with work in flight, then thawed, the reconciler running as
    deployed: every article stored once, no dead letter, none both stored and dead-lettered."""
    if redis_server.pid is None:
        pytest.skip("an external Redis cannot be frozen")
    _long_outage_env(pipeline_env)
    worker = start_worker(concurrency=2)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    ids = _enqueue_all(pipeline_env)
    wait_for(lambda: _clean_stored(db) >= 1, timeout=STORE_TIMEOUT_S, message="work in flight")
    start_reconciler(every=2, older_than=10)
    _freeze([redis_server.pid])
    try:
        time.sleep(FREEZE_S)
    finally:
        _thaw([redis_server.pid])
    _wait_all_stored(pipeline_env, worker, timeout=STORE_TIMEOUT_S + 2 * FREEZE_S)
    ledger = check_ledger(db, ids)
    print(f"frozen redis {FREEZE_S:g}s " + ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)


def test_frozen_postgres_loses_nothing(pipeline_env, start_worker, postgres_server, start_reconciler):
    """PostgreSQL frozen (its postmaster and every backend SIGSTOPped) with work in flight, then thawed, the
    reconciler running as deployed: every article stored once, no dead letter, none both stored and
    dead-lettered."""
    if postgres_server.pid is None:
        pytest.skip("an external PostgreSQL cannot be frozen")
    _long_outage_env(pipeline_env)
    worker = start_worker(concurrency=2)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    ids = _enqueue_all(pipeline_env)
    wait_for(lambda: _clean_stored(db) >= 1, timeout=STORE_TIMEOUT_S, message="work in flight")
    start_reconciler(every=2, older_than=10)
    pids = [postgres_server.pid, *_children(postgres_server.pid)]
    _freeze(pids)
    try:
        time.sleep(FREEZE_S)
    finally:
        _thaw([postgres_server.pid, *_children(postgres_server.pid)])
    _wait_all_stored(pipeline_env, worker, timeout=STORE_TIMEOUT_S + 2 * FREEZE_S)
    ledger = check_ledger(db, ids)
    print(f"frozen postgres {FREEZE_S:g}s " + ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)


def test_a_task_killed_at_the_hard_time_limit_is_journaled_and_retried(pipeline_env, start_worker):
    """Issue 19.3: a store task whose process stops responding (SIGSTOP) is killed at the hard time limit;
    the kill is journaled (`killed`) and the article retried, so every article is stored, with no
    reconciler and no dead letter (before: acknowledged and forgotten)."""
    pipeline_env.update(
        # A soft limit long enough for a fresh pool child's first clean (it loads its models then).
        {"NEWSFLOW_BATCH_SIZE": "1", "NEWSFLOW_TASK_SOFT_TIME_LIMIT": "8", "NEWSFLOW_TASK_TIME_LIMIT": "10"}
    )
    worker = start_worker(concurrency=1)
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        wait_for(
            lambda: len(_blocked_ports(db)) == 1, timeout=STORE_TIMEOUT_S, message="a store task blocked"
        )
        child = _pid_owning_local_port(_blocked_ports(db)[0])
        assert child is not None
        os.kill(child, signal.SIGSTOP)  # stuck where no soft time limit reaches it
        wait_for(lambda: bool(_journal(db, "killed")), timeout=30, message="the kill journaled")
    _wait_all_stored(pipeline_env, worker)
    assert [stage for _, stage in _journal(db, "killed")] == ["store"]
    assert _events(worker, "hard_kill_retry")
    ledger = check_ledger(db, ids)
    print("hard kill " + ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)


PAUSE_S = float(os.environ.get("NEWSFLOW_FAULT_PAUSE_S", "0"))
"""Extra seconds the paused-worker test keeps the worker stopped after its article was stored elsewhere."""


def test_a_worker_paused_past_the_soft_limit_never_leaves_an_article_stored_and_dead_lettered(
    pipeline_env, start_worker, start_reconciler
):
    """Issue 19.1: a worker paused (SIGSTOP, as a VM pause) inside a store task past its soft time limit,
    while the reconciler re-sends the article and another worker stores it; resumed, its stale attempt
    ends without a dead letter: every article stored once, none both stored and dead-lettered."""
    pipeline_env.update(
        {
            "NEWSFLOW_BATCH_SIZE": "1",
            "NEWSFLOW_TASK_SOFT_TIME_LIMIT": "8",
            "NEWSFLOW_TASK_TIME_LIMIT": "300",
            "NEWSFLOW_DB_IDLE_IN_TRANSACTION_TIMEOUT": "9",
        }
    )
    first = start_worker(concurrency=1, name="w1")
    second = start_worker(concurrency=1, name="w2")
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    with articles_locked(db):
        ids = _enqueue_all(pipeline_env)
        wait_for(
            lambda: len(_blocked_ports(db)) >= 1, timeout=STORE_TIMEOUT_S, message="a store task blocked"
        )
        child = _pid_owning_local_port(_blocked_ports(db)[0])
        assert child is not None
        main = _parent_pid(child)
        paused, other = (first, second) if main == first.process.pid else (second, first)
        pids = [main, *_children(main)]
        _freeze(pids)
    started = time.monotonic()
    try:
        start_reconciler(every=1, older_than=2)
        _wait_all_stored(pipeline_env, other, timeout=STORE_TIMEOUT_S)
        time.sleep(max(0.0, 9 - (time.monotonic() - started)) + PAUSE_S)  # past the soft limit
    finally:
        _thaw(pids)
    print(f"worker paused {time.monotonic() - started:.0f}s")
    wait_for(
        lambda: any(str(e.get("event", "")).startswith("Soft time limit") for e in paused.log_events()),
        timeout=30,
        message="the resumed worker's soft time limit",
    )
    time.sleep(3)  # its stale attempt ends (quietly, or as a retry that finds the work done)
    ledger = check_ledger(db, ids)
    print("paused worker " + ledger.line())
    assert ledger.clean(), ledger
    assert_stored_exactly_once(db, ids)


def test_articles_persisted_and_sent_but_not_stored_are_not_called_already_stored(pipeline_env):
    """Issue 30.8 / 31.4: a second `enqueue` of the same inputs, before any worker ran, says the articles are
    in the pipeline, not "already stored" (nothing is stored); the same for `backfill --restart`."""
    first = run_cli(pipeline_env, "enqueue", str(sample_page()), str(EXAMPLES))
    assert first.returncode == 0, first.stderr
    again = run_cli(pipeline_env, "enqueue", str(sample_page()), str(EXAMPLES))
    assert again.returncode == 0, again.stderr
    assert f"already stored 0, in the pipeline {ARTICLES} (not sent again)" in again.stderr, again.stderr
    backfill = run_cli(pipeline_env, "backfill", "--restart", str(EXAMPLES))
    assert backfill.returncode == 0, backfill.stderr
    assert "already stored 0, in the pipeline" in backfill.stderr, backfill.stderr
    assert _stored(pipeline_env["NEWSFLOW_DATABASE_URL"]) == 0
