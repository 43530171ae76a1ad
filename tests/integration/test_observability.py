"""Real workers: metrics on their endpoint and the exporter's, refusal to start broken, JSON-only logs."""

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
import redis

from tests.integration.conftest import WORKER_START_TIMEOUT_S, run_cli, wait_for
from tests.samples import EXAMPLES, ROOT
from tests.servers import free_port
from workers.runtime import health, metrics

pytestmark = pytest.mark.integration

PDF = "%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + "stream\x00\x01binary\x02" * 50
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


@pytest.fixture
def metrics_port() -> int:
    """A spare port for the worker's /metrics."""
    return free_port()


@pytest.fixture
def pipeline_env(pipeline_env, metrics_port):
    """The integration environment, with the worker's /metrics served on a spare port."""
    return {**pipeline_env, "NEWSFLOW_METRICS_PORT": str(metrics_port)}


def scrape(port: int) -> dict[str, float]:
    """Every sample on 127.0.0.1:PORT/metrics, keyed `name{labels}` as printed (labels sorted by the client)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and (found := SAMPLE.match(line)):
            samples[found.group(1) + (found.group(2) or "")] = float(found.group(3))
    return samples


def _feed(tmp_path):
    feed = tmp_path / "poison.jsonl"
    feed.write_text(json.dumps({"source": "broken.example", "content_type": "text/html", "body": PDF}) + "\n")
    return feed


def _try_scrape(port: int) -> dict[str, float]:
    try:
        return scrape(port)
    except OSError:
        return {}


def test_worker_and_exporter_metrics_after_processing(pipeline_env, start_worker, metrics_port, tmp_path):
    """After real processing the worker's endpoint counts tasks per stage, verdicts, entities and the dead
    letter by reason; the exporter shows empty queues, the open dead letter, stored articles and producer counts."""
    start_worker(concurrency=2)
    result = run_cli(pipeline_env, "enqueue", str(EXAMPLES), str(_feed(tmp_path)))
    assert result.returncode == 0, result.stderr
    ok = 'newsflow_tasks_total{outcome="ok",stage="store"}'
    wait_for(lambda: _try_scrape(metrics_port).get(ok) == 4, message="4 stored articles counted")
    dead = 'newsflow_dead_letters_total{reason="not_html",stage="clean"}'
    wait_for(lambda: _try_scrape(metrics_port).get(dead) == 1, message="the dead letter counted")
    samples = scrape(metrics_port)
    assert samples['newsflow_tasks_total{outcome="ok",stage="clean"}'] == 4
    assert samples['newsflow_tasks_total{outcome="dead_letter",stage="clean"}'] == 1
    # Durations are per task: the 4 articles went through tag in one micro-batch or in several.
    assert 1 <= samples['newsflow_task_duration_seconds_count{outcome="ok",stage="tag"}'] <= 4
    assert samples['newsflow_task_duration_seconds_sum{outcome="ok",stage="tag"}'] > 0
    verdicts = {k: v for k, v in samples.items() if k.startswith("newsflow_dedup_verdicts_total")}
    assert sum(verdicts.values()) == 4
    assert (
        verdicts['newsflow_dedup_verdicts_total{verdict="unique"}'] >= 3
    )  # the syndicated copy is a duplicate
    assert samples["newsflow_entities_per_article_count"] >= 3
    assert samples["newsflow_entities_per_article_sum"] > 0
    assert samples.get('newsflow_tasks_in_progress{stage="clean"}') == 0
    for name in samples:  # no ids, hosts or pids in any label
        assert not re.search(r'"[0-9a-f]{32}"|pid=|hostname=', name), name

    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "metrics", "--port", str(port)],
        env=pipeline_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: bool(_try_scrape(port)), timeout=60, message="the exporter")
        gauges = scrape(port)
    finally:
        exporter.terminate()
        exporter.wait(timeout=20)
    assert gauges['newsflow_exporter_up{target="redis"}'] == 1
    assert gauges['newsflow_exporter_up{target="database"}'] == 1
    assert gauges['newsflow_dead_letters_open{reason="not_html",stage="clean"}'] == 1
    assert sum(v for k, v in gauges.items() if k.startswith("newsflow_articles_stored")) == 4
    assert gauges["newsflow_raw_articles"] == 5
    assert gauges['newsflow_producer_enqueued_total{stage="clean"}'] == 5
    for stage in ("clean", "dedup", "tag", "store"):
        for state in metrics.QUEUE_STATES:
            assert gauges[f'newsflow_queue_messages{{stage="{stage}",state="{state}"}}'] == 0


def test_queue_gauges_count_waiting_unacked_and_scheduled(redis_url, postgres_url):
    """The exporter counts a queue's list, and kombu's `unacked` hash split by ETA into running and scheduled."""
    client = redis.Redis.from_url(redis_url)
    client.rpush("newsflow.dedup", "m1", "m2")
    future = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 600))
    past = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 5))
    for tag, eta in (("t1", None), ("t2", future), ("t3", past)):
        message = {"body": "", "headers": {"eta": eta, "task": "newsflow.tag"}, "properties": {}}
        client.hset("unacked", tag, json.dumps([message, "", "newsflow.tag"]))
    client.hset("unacked", "junk", "not json")
    states = metrics._queue_states(client, time.time())
    assert states["dedup", "waiting"] == 2
    assert states["tag", "unacked"] == 2
    assert states["tag", "scheduled"] == 1
    assert states["clean", "waiting"] == 0


def _run_worker(env, queues="clean,dedup,tag,store", timeout=WORKER_START_TIMEOUT_S):
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "worker", "--queues", queues, "--concurrency", "1",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _refusal(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    refused = [e for e in lines if e.get("event") == "worker_start_refused"]
    assert len(refused) == 1, result.stdout + result.stderr
    assert not any(" ready." in str(e.get("event")) for e in lines)
    return refused[0]


def test_tag_worker_refuses_to_start_without_its_model(pipeline_env):
    """A tag worker whose model is missing exits with code 78 and one line naming the model, never ready;
    without --hostname it is named after its queues."""
    result = _run_worker({**pipeline_env, "NEWSFLOW_TAGGER_MODEL": "missing_model"}, queues="tag")
    assert result.returncode == health.EXIT_REFUSED
    refused = _refusal(result)
    assert refused["failed"] == ["tagger_model"]
    assert "missing_model" in str(refused["error"])
    assert str(refused["worker"]).startswith("newsflow-tag@")  # named after its queues, not celery@HOST


def test_worker_refuses_to_start_with_an_unreachable_database(pipeline_env):
    """A worker whose database does not answer exits non-zero with one line saying so."""
    dead_db = f"postgresql+psycopg://newsflow@127.0.0.1:{free_port()}/newsflow"
    result = _run_worker({**pipeline_env, "NEWSFLOW_DATABASE_URL": dead_db}, queues="clean")
    assert result.returncode == health.EXIT_REFUSED
    refused = _refusal(result)
    assert refused["failed"] == ["database"]
    assert "unreachable" in str(refused["error"])


def test_worker_refuses_an_unmigrated_database(redis_url, postgres_url):
    """A worker on a database without the schema refuses to start and says to run `newsflow db upgrade`."""
    env = {
        **os.environ, "NEWSFLOW_BROKER_URL": redis_url, "NEWSFLOW_DATABASE_URL": postgres_url,
        "NEWSFLOW_LOG_FORMAT": "json",
    }  # fmt: skip
    result = _run_worker(env, queues="store")
    assert result.returncode == health.EXIT_REFUSED
    assert "newsflow db upgrade" in str(_refusal(result)["error"])


def test_health_command_passes_and_fails(pipeline_env):
    """`newsflow health --json` exits 0 with every check ok on healthy servers, 1 naming Redis when it is down."""
    good = run_cli(pipeline_env, "health", "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    report = json.loads(good.stdout)
    assert report["ok"] is True
    assert {c["name"] for c in report["checks"]} == {"database", "redis", "tagger_model"}
    bad_env = {**pipeline_env, "NEWSFLOW_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    bad = run_cli(bad_env, "health", "--json", "--queues", "clean")
    assert bad.returncode == 1
    failed = [c for c in json.loads(bad.stdout)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["redis"]


def test_worker_log_is_json_only_with_task_ids_as_fields(pipeline_env, start_worker, tmp_path):
    """Every line a worker prints in JSON mode, from start to shutdown, is JSON; Celery's task lines carry
    task, article and trace ids as fields and no repr of the arguments."""
    worker = start_worker(concurrency=1)
    # Two producer runs, so the article and the poison page travel as two messages (one micro-batch
    # would carry both, and its Celery lines then name no single article).
    result = run_cli(pipeline_env, "enqueue", str(EXAMPLES / "harbourtimes-wind-farm.txt"))
    assert result.returncode == 0, result.stderr
    article = result.stdout.split()[0]
    poison = run_cli(pipeline_env, "enqueue", str(_feed(tmp_path)))
    assert poison.returncode == 0, poison.stderr
    wait_for(
        lambda: sum(e.get("task_event") == "task_succeeded" for e in worker.log_events()) >= 4,
        message="four stages succeeded",
    )
    wait_for(
        lambda: any(e.get("outcome") == "dead_letter" for e in worker.log_events()),
        message="the poison page dead-lettered",
    )
    worker.stop()
    lines = worker.log_path.read_text().splitlines()
    assert lines
    for line in lines:
        json.loads(line)  # raises on the banner, a raw warning or a raw shutdown notice
    events = [json.loads(line) for line in lines]
    names = [e["event"] for e in events]
    assert "worker_starting" in names
    received = [
        e for e in events if e.get("task_event") == "task_received" and e.get("article_id") == article
    ]
    succeeded = [
        e for e in events if e.get("task_event") == "task_succeeded" and e.get("article_id") == article
    ]
    assert (
        {e["stage"] for e in received}
        == {e["stage"] for e in succeeded}
        == {"clean", "dedup", "tag", "store"}
    )
    for event in received + succeeded:
        assert event["task_id"]
        assert event["trace_id"]
        assert "data" not in event
        assert "{" not in event["event"]  # no repr of the message in the text either
    assert any(e.get("task_event") == "task_ignored" or e.get("outcome") == "dead_letter" for e in events)
    assert any(e["event"] == "worker_notice" and "shutdown" in e["message"] for e in events)


def test_flower_lists_a_dead_lettered_task_as_failed(pipeline_env, start_worker, tmp_path):
    """Flower, started by deploy/flower.sh behind basic auth, shows a dead-lettered stage task as FAILURE
    with DeadLettered and its reason (not STARTED forever), and refuses its API without credentials."""
    import base64
    import urllib.error

    start_worker()
    port = free_port()
    env = {
        **pipeline_env,
        "FLOWER_BASIC_AUTH": "ops:flower-test-password",
        "FLOWER_PORT": str(port),
        "FLOWER_DB": str(tmp_path / "flower.db"),
        "FLOWER_WAIT_ATTEMPTS": "6",
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
    }
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as handle:
        flower = subprocess.Popen(
            ["bash", str(ROOT / "deploy" / "flower.sh")], env=env, stdout=handle, stderr=subprocess.STDOUT
        )
    auth = "Basic " + base64.b64encode(b"ops:flower-test-password").decode()

    def get(path: str, *, with_auth: bool = True) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
        if with_auth:
            request.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    try:
        wait_for(lambda: get("/api/workers")[0] == 200, timeout=90, message=f"flower up ({log_path})")
        assert get("/api/tasks", with_auth=False)[0] == 401
        feed = tmp_path / "pdf.jsonl"
        pdf = {
            "source": "flower-test",
            "content_type": "text/html",
            "body": "%PDF-1.4\n1 0 obj <<>> endobj\n" * 20,
        }
        feed.write_text(json.dumps(pdf) + "\n")
        assert run_cli(pipeline_env, "enqueue", str(feed)).returncode == 0

        def failed_tasks() -> list[dict[str, object]]:
            status, body = get("/api/tasks?state=FAILURE")
            return list(json.loads(body).values()) if status == 200 and body else []

        wait_for(lambda: bool(failed_tasks()), timeout=90, message="a FAILURE task in Flower")
        (task,) = failed_tasks()
        assert task["name"] == "newsflow.clean"
        assert task["state"] == "FAILURE"
        assert "DeadLettered" in str(task["exception"])
        assert "not_html" in str(task["exception"])
        time.sleep(0.5)
        status, body = get("/api/tasks?state=STARTED")
        assert status == 200
        assert json.loads(body) == {}
    finally:
        flower.terminate()
        try:
            flower.wait(timeout=10)
        except subprocess.TimeoutExpired:
            flower.kill()


def _all_json(path) -> list[dict[str, object]]:
    """The JSON events of a process's log file; fails on any line that is not JSON."""
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"{path.name}: not a JSON line: {line[:200]!r}")
    return events


def test_reconciler_and_workers_beat_where_prometheus_sees_them(pipeline_env, start_worker, tmp_path):
    """The exporter shows 0 open dead letters (not an empty series), 0 workers for an unserved stage, the
    live worker's stages, and the reconciler's last pass (0 before its first); the reconciler loop and the
    exporter log JSON only, the exporter's start at info; a worker logs no alembic plugin line."""
    port = free_port()
    exporter_log = tmp_path / "exporter.log"
    with exporter_log.open("wb") as handle:
        exporter = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "metrics", "--port", str(port)],
            env=pipeline_env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    reconciler_log = tmp_path / "reconciler.log"
    reconciler = None
    try:
        wait_for(lambda: bool(_try_scrape(port)), timeout=60, message="the exporter")
        gauges = scrape(port)
        assert gauges["newsflow_reconcile_last_pass_timestamp_seconds"] == 0
        open_letters = {k: v for k, v in gauges.items() if k.startswith("newsflow_dead_letters_open")}
        assert len(open_letters) >= 4 * len(metrics.REASONS)
        assert set(open_letters.values()) == {0}
        assert gauges['newsflow_workers{stage="clean"}'] == 0

        before = time.time()
        worker = start_worker(queues="clean,dedup", env={"NEWSFLOW_HEARTBEAT_FILE": str(tmp_path / "hb")})
        with reconciler_log.open("wb") as handle:
            reconciler = subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "reconcile", "--loop", "--every", "1"],
                env=pipeline_env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(
            lambda: _try_scrape(port).get("newsflow_reconcile_last_pass_timestamp_seconds", 0) > before,
            timeout=60,
            message="a reconciler pass recorded",
        )
        wait_for(lambda: _try_scrape(port).get('newsflow_workers{stage="clean"}') == 1, message="heartbeat")
        gauges = scrape(port)
        assert gauges['newsflow_workers{stage="dedup"}'] == 1
        assert gauges['newsflow_workers{stage="tag"}'] == gauges['newsflow_workers{stage="store"}'] == 0
        worker.stop()
        wait_for(lambda: _try_scrape(port).get('newsflow_workers{stage="clean"}') == 0, message="beat gone")
    finally:
        for process in (reconciler, exporter):
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
    reconciler_events = _all_json(reconciler_log)
    assert reconciler_events[0]["event"] == "reconcile_loop_started"
    assert any(e["event"] == "reconcile_pass_done" for e in reconciler_events)
    serving = [e for e in _all_json(exporter_log) if e["event"] == "metrics_exporter_serving"]
    assert [e["level"] for e in serving] == ["info"]
    worker_events = [json.loads(line) for line in worker.log_path.read_text().splitlines()]
    assert not [e for e in worker_events if str(e.get("logger", "")).startswith("alembic")]
    assert "worker_starting" in [e["event"] for e in worker_events]


def test_liveness_is_the_heartbeat_and_needs_no_database(pipeline_env, start_worker, tmp_path):
    """`health --live --worker NAME` reads that worker's own heartbeat, in a private (0700) directory, written
    from its consumer's event loop: it passes while the worker beats, even with the database unreachable;
    fails once the process is frozen (SIGSTOP) past --max-age; fails for another worker's name; and fails
    at once when the worker's process is gone (killed: no 60 s of "ok" after its death)."""
    import signal

    env = {**pipeline_env, "NEWSFLOW_HEARTBEAT_DIR": str(tmp_path / "beats")}
    env.pop("NEWSFLOW_HEARTBEAT_FILE", None)
    worker = start_worker(queues="store", env=env, name="live1")
    beat = tmp_path / "beats" / "live1.alive"
    wait_for(beat.exists, timeout=30, message="the heartbeat file")
    assert (beat.parent.stat().st_mode & 0o777) == 0o700
    assert json.loads(beat.read_text())["state"] == "consuming"
    no_db = {**env, "NEWSFLOW_DATABASE_URL": f"postgresql+psycopg://newsflow@127.0.0.1:{free_port()}/x"}
    live = run_cli(no_db, "health", "--live", "--worker", "live1", "--max-age", "30")
    assert live.returncode == 0, live.stdout + live.stderr
    assert run_cli(no_db, "health", "--queues", "store").returncode == 1
    other = run_cli(env, "health", "--live", "--worker", "newsflow-clean")
    assert other.returncode == 1
    assert "newsflow-clean.alive" in other.stdout
    worker.process.send_signal(signal.SIGSTOP)
    try:
        time.sleep(3)
        stuck = run_cli(env, "health", "--live", "--worker", "live1", "--max-age", "2")
    finally:
        worker.process.send_signal(signal.SIGCONT)
    assert stuck.returncode == 1
    assert "stuck" in stuck.stdout
    worker.process.kill()
    worker.process.wait(timeout=30)
    dead = run_cli(env, "health", "--live", "--worker", "live1", "--max-age", "600")
    assert dead.returncode == 1
    assert "gone" in dead.stdout
    named = run_cli({**env, "NEWSFLOW_WORKER_NAME": "live1"}, "health", "--live")  # the name deploy gives
    assert named.returncode == 1
    assert "gone" in named.stdout


@pytest.fixture
def password_role(postgres_server, postgres_url) -> str:
    """A role of the private cluster that must log in with a password (scram), on the test's database."""
    from sqlalchemy import create_engine, text

    from tests.servers import PostgresServer

    if not isinstance(postgres_server, PostgresServer):
        pytest.skip("needs the private cluster's pg_hba.conf")
    role = "newsflow_password_test"
    hba = postgres_server.data_dir / "pg_hba.conf"
    rule = f"host all {role} 127.0.0.1/32 scram-sha-256\n"
    if rule not in hba.read_text():
        hba.write_text(rule + hba.read_text())  # first match wins: only this role needs a password
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
            conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD 'right-password'"))
        conn.execute(text("SELECT pg_reload_conf()"))
    engine.dispose()
    return role


def test_health_rejects_an_unknown_stage_and_names_refused_credentials(
    pipeline_env, postgres_url, password_role
):
    """`health --queues bogus` is a usage error (exit 2); a wrong database password is reported as refused
    credentials by `health` and by a refusing worker, not as unreachable."""
    bogus = run_cli(pipeline_env, "health", "--queues", "bogus")
    assert bogus.returncode == 2
    assert "bogus" in bogus.stderr
    from sqlalchemy.engine import make_url

    wrong = make_url(postgres_url).set(username=password_role, password="wrong-password")
    env = {**pipeline_env, "NEWSFLOW_DATABASE_URL": wrong.render_as_string(hide_password=False)}
    checked = run_cli(env, "health", "--json", "--queues", "clean")
    assert checked.returncode == 1
    (database,) = [c for c in json.loads(checked.stdout)["checks"] if c["name"] == "database"]
    assert database["detail"].startswith("refused the credentials"), database
    result = _run_worker(env, queues="clean")
    assert result.returncode == health.EXIT_REFUSED
    assert "refused the credentials" in str(_refusal(result)["error"])
