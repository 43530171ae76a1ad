"""Fixtures that start real Celery worker processes against the private Redis and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.samples import ROOT
from workers.db.engine import upgrade

WORKER_START_TIMEOUT_S = 90


@dataclass
class Worker:
    """A running `newsflow worker` process and the file its JSON log lines go to."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_events(self) -> list[dict[str, object]]:
        """Every JSON log line the worker printed so far."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return events

    def stop(self) -> None:
        """Stop the worker (warm shutdown, then SIGKILL if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def pipeline_env(redis_url: str, postgres_url: str) -> dict[str, str]:
    """Environment for producers and workers of one test: its own Redis DB and PostgreSQL database, migrated."""
    upgrade(postgres_url)
    return {
        **os.environ,
        "NEWSFLOW_BROKER_URL": redis_url,
        "NEWSFLOW_DATABASE_URL": postgres_url,
        "NEWSFLOW_LOG_FORMAT": "json",
        "NEWSFLOW_MAX_RETRIES": "2",
        "NEWSFLOW_RETRY_BACKOFF_MAX": "2",
    }


@pytest.fixture
def start_worker(pipeline_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start real `newsflow worker` processes (prefork) and wait until each reports ready."""
    workers: list[Worker] = []

    def start(
        *,
        queues: str = "clean,dedup,tag,store",
        concurrency: int = 2,
        name: str = "w1",
        env: dict[str, str] | None = None,
        extra: list[str] | None = None,
    ) -> Worker:
        log_path = tmp_path / f"worker-{name}.log"
        with log_path.open("wb") as handle:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workers.cli",
                    "worker",
                    "--queues",
                    queues,
                    "--concurrency",
                    str(concurrency),
                    "--hostname",
                    f"{name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    *(extra or []),
                ],
                env={**pipeline_env, **(env or {})},
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, log_path)
        workers.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"worker exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if " ready." in log_path.read_text(errors="replace"):
                return worker
            time.sleep(0.2)
        pytest.fail(f"worker not ready after {WORKER_START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")

    yield start
    for worker in workers:
        worker.stop()


def run_cli(env: dict[str, str], *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run `newsflow ARGS` as a subprocess with the test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", *args],
        env=env,
        cwd=ROOT,
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for(condition: Callable[[], bool], *, timeout: float = 90, message: str = "condition") -> None:
    """Poll until `condition()` holds; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout}s waiting for {message}")


# --- the fault checker: the ledger of enqueued ids against durable rows ------------------------------


@dataclass(frozen=True)
class Ledger:
    """What the database says about a set of enqueued article ids after a fault."""

    enqueued: int
    stored: int
    dead_lettered: int
    lost: list[str]
    duplicated: list[str]
    entity_mismatch: list[str]
    foreign: list[str]
    stored_and_dead_lettered: list[str] = dataclasses.field(default_factory=list)

    def clean(self) -> bool:
        """Nothing lost, nothing duplicated, every stored article's entities exactly its tag record's, and no
        article both stored and with an open dead letter."""
        return not (
            self.lost
            or self.duplicated
            or self.entity_mismatch
            or self.foreign
            or self.stored_and_dead_lettered
        )

    def line(self) -> str:
        """One line of figures for the test output."""
        return (
            f"ledger: enqueued={self.enqueued} stored={self.stored} dead_lettered={self.dead_lettered}"
            f" lost={len(self.lost)} duplicated={len(self.duplicated)}"
            f" entity_mismatch={len(self.entity_mismatch)} foreign={len(self.foreign)}"
            f" stored_and_dead_lettered={len(self.stored_and_dead_lettered)}"
        )


def check_ledger(db: str, ids: list[str]) -> Ledger:
    """Compare enqueued ids with stored rows, stage records and open dead letters.

    lost: enqueued, neither stored nor with an open dead letter. duplicated: an id with more than one
    stored row, raw row or open dead letter. entity_mismatch: a stored article whose entity or mention
    rows differ in number from its `tag` record (a double write or a partial one). foreign: stored rows
    for ids never enqueued.
    """
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT id FROM articles")).scalars().all()
            raw = conn.execute(sa.text("SELECT id FROM raw_articles")).scalars().all()
            dead = (
                conn.execute(sa.text("SELECT article_id FROM dead_letters WHERE retried_at IS NULL"))
                .scalars()
                .all()
            )
            entities = dict(
                conn.execute(sa.text("SELECT article_id, count(*) FROM entities GROUP BY article_id")).all()
            )
            mentions = dict(
                conn.execute(sa.text("SELECT article_id, count(*) FROM mentions GROUP BY article_id")).all()
            )
            tags = dict(
                conn.execute(
                    sa.text("SELECT article_id, output FROM stage_results WHERE stage = 'tag'")
                ).all()
            )
    finally:
        engine.dispose()
    wanted = set(ids)
    mismatch = []
    for article in stored:
        tagged = json.loads(tags.get(article) or "{}")
        found = tagged.get("entities") or []
        want_entities = len(found)
        want_mentions = len({m["start"] for e in found for m in e.get("mentions", [])})
        if (entities.get(article, 0), mentions.get(article, 0)) != (want_entities, want_mentions):
            mismatch.append(article)
    counts: dict[str, int] = {}
    for article in [*stored, *raw, *dead]:
        counts[article] = counts.get(article, 0) + 1
    duplicated = sorted(a for a in wanted if counts.get(a, 0) > 2 or stored.count(a) > 1 or raw.count(a) > 1)
    return Ledger(
        enqueued=len(wanted),
        stored=len(set(stored) & wanted),
        dead_lettered=len(set(dead) & wanted),
        lost=sorted(wanted - set(stored) - set(dead)),
        duplicated=duplicated,
        entity_mismatch=sorted(mismatch),
        foreign=sorted(set(stored) - wanted),
        stored_and_dead_lettered=sorted(set(stored) & set(dead)),
    )


@pytest.fixture
def start_reconciler(
    pipeline_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `newsflow reconcile --loop` as its own process (stopped at the end of the test)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*, every: int = 2, older_than: int = 3) -> subprocess.Popen[bytes]:
        log_path = tmp_path / f"reconciler-{len(procs)}.log"
        with log_path.open("wb") as handle:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "reconcile", "--loop", "--every", str(every),
                 "--older-than", str(older_than)],
                env=pipeline_env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
