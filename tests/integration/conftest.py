"""Fixtures that start real Celery worker processes against the private Redis and PostgreSQL."""

from __future__ import annotations

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

    def start(*, queues: str = "clean,dedup,tag,store", concurrency: int = 2, name: str = "w1") -> Worker:
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
                ],
                env=pipeline_env,
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
