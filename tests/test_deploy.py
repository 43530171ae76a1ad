"""The deploy files: scripts keep Redis and Flower behind authentication; every file parses and names
only real commands, settings and metrics."""

import base64
import configparser
import json
import os
import re
import shlex
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.samples import ROOT

DEPLOY = ROOT / "deploy"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "FLOWER_"))}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    return {**env, **extra}


@pytest.mark.parametrize("script", ["redis.sh", "flower.sh"])
def test_scripts_refuse_to_start_without_credentials(script, redis_url):
    """Redis without REDIS_PASSWORD and Flower without FLOWER_BASIC_AUTH refuse to start."""
    result = subprocess.run(
        ["bash", str(DEPLOY / script)], env=_env(NEWSFLOW_BROKER_URL=redis_url), capture_output=True,
        text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "REDIS_PASSWORD" in result.stderr or "FLOWER_BASIC_AUTH" in result.stderr


def test_flower_rejects_a_password_less_basic_auth(redis_url):
    """FLOWER_BASIC_AUTH with an empty password is refused."""
    result = subprocess.run(
        ["bash", str(DEPLOY / "flower.sh")], env=_env(NEWSFLOW_BROKER_URL=redis_url, FLOWER_BASIC_AUTH="admin:"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "non-empty password" in result.stderr


def test_redis_from_deploy_requires_the_password(tmp_path):
    """deploy/redis.sh starts a Redis that answers only clients with the password."""
    port = _free_port()
    process = subprocess.Popen(
        ["bash", str(DEPLOY / "redis.sh"), "--port", str(port), "--dir", str(tmp_path), "--appendonly", "no"],
        env=_env(REDIS_PASSWORD="s3cret-for-test"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        authed = redis.Redis(port=port, password="s3cret-for-test")
        deadline = time.monotonic() + 20
        while True:
            try:
                assert authed.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with redis.Redis(port=port) as anonymous, pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
        assert authed.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        authed.close()
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_flower_from_deploy_requires_basic_auth(redis_url, tmp_path):
    """deploy/flower.sh serves Flower's pages only with the configured credentials, keeps its state in
    FLOWER_DB; /metrics and /healthcheck answer without credentials (Flower's choice: hence the nginx rule)."""
    port = _free_port()
    state = tmp_path / "flower.db"
    process = subprocess.Popen(
        ["bash", str(DEPLOY / "flower.sh")],
        env=_env(
            NEWSFLOW_BROKER_URL=redis_url, FLOWER_BASIC_AUTH="ops:pw-for-test", FLOWER_WAIT_ATTEMPTS="0",
            FLOWER_PORT=str(port), FLOWER_DB=str(state),
        ),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        status = None
        while status is None:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    status = 200
            except urllib.error.HTTPError as exc:
                status = exc.code
                exc.close()
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("flower did not start")
                time.sleep(0.3)
        assert status == 401
        token = base64.b64encode(b"ops:pw-for-test").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        for open_path in ("metrics", "healthcheck"):
            with urllib.request.urlopen(url + open_path, timeout=10) as response:
                assert response.status == 200, open_path
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert list(tmp_path.glob("flower.db*")), "persistent Flower saves its state to FLOWER_DB"


# --- every deploy file parses and names only real commands, settings and metrics ------------------

SCRIPT_VARIABLES = {"NEWSFLOW_QUEUES", "NEWSFLOW_WORKER_NAME", "NEWSFLOW_BIN_DIR", "NEWSFLOW_IMAGE"}
"""NEWSFLOW_* variables read by the deploy scripts and files, not by `Settings` (README lists them)."""
DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip
PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "deriv", "histogram_quantile", "by", "without", "and", "or",
    "unless", "on", "ignoring", "group_left", "group_right", "offset", "bool", "max", "min", "avg",
    "count", "absent", "abs", "topk", "delta", "inf", "nan", "time", "vector", "clamp_min",
}  # fmt: skip
BUILTIN_METRICS = {"up"}


def _deploy_files():
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def _yaml_documents(path):
    yaml = pytest.importorskip("yaml")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _exported_names() -> set[str]:
    from workers.metrics import METRICS

    names = set(BUILTIN_METRICS)
    for name, (kind, _labels, _doc) in METRICS.items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def _promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers left once strings, label matchers, ranges and
    grouping clauses are taken out, that are neither functions nor keywords nor numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group()
        if word in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        found.add(word)
    return found


def _promql_expressions() -> list[tuple[str, str]]:
    exprs = []
    for doc in _yaml_documents(DEPLOY / "prometheus" / "alerts.yml"):
        for group in doc["groups"]:
            exprs += [(rule["alert"], rule["expr"]) for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "newsflow.json").read_text())
    for panel in dashboard["panels"]:
        exprs += [(panel["title"], target["expr"]) for target in panel["targets"]]
    return exprs


def _commands(obj):
    """Every argv list in a parsed YAML/JSON tree whose program is `newsflow`."""
    if isinstance(obj, dict):
        for value in obj.values():
            yield from _commands(value)
    elif isinstance(obj, list):
        if obj and all(isinstance(x, str) for x in obj):
            for i, word in enumerate(obj):
                if word.rsplit("/", 1)[-1] == "newsflow":
                    yield obj[i + 1 :]
                    break
        for value in obj:
            yield from _commands(value)


def _newsflow_argvs() -> list[tuple[str, list[str], bool]]:
    """(file, argv after `newsflow`, whether the argv is whole) for every newsflow command line the
    deploy files run or quote; scripts and prose give the command and its options without values."""
    found = []
    for path in _deploy_files():
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            found += [(path.name, argv, True) for doc in _yaml_documents(path) for argv in _commands(doc)]
        elif path.name == "Dockerfile":
            for line in re.findall(r"^(?:CMD|HEALTHCHECK.*?CMD)\s+(\[.*\])$", text, re.MULTILINE):
                found += [(path.name, argv, True) for argv in _commands(json.loads(line))]
        elif path.suffix == ".service":
            for line in re.findall(r"^ExecStart=(.*)$", text, re.MULTILINE):
                found += [(path.name, argv, True) for argv in _commands(shlex.split(line))]
        elif path.suffix == ".sh":
            for line in re.findall(r'exec "\$bin/newsflow"([^\n]*)', text):
                argv = [w for w in shlex.split(line) if not w.startswith("$") and w != "\\"]
                found.append((path.name, argv, False))
        # Commands quoted for people, in comments and alert descriptions: `newsflow retry --stage ...`.
        for quoted in re.findall(r"`newsflow ([^`]+)`", text):
            argv = [w for w in quoted.split() if "{" not in w]
            found.append((path.name, argv, False))
    return found


def test_every_deploy_file_parses():
    """Each deploy file parses as what it is: YAML, JSON, systemd INI, Dockerfile, shell, env, nginx."""
    checked = 0
    for path in _deploy_files():
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            assert _yaml_documents(path), path
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".service":
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.optionxform = str  # systemd keys are case-sensitive
            parser.read_string(text)
            assert parser.has_option("Service", "ExecStart"), path
            assert parser.get("Service", "User") != "root", path
            for line in re.findall(r"^ExecStart=(\S+)", text, re.MULTILINE):
                if line.startswith("/opt/newsflow/deploy/"):
                    assert (DEPLOY / line.removeprefix("/opt/newsflow/deploy/")).is_file(), line
        elif path.name == "Dockerfile":
            joined = re.sub(r"\\\n", " ", text)
            for line in joined.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    assert line.split()[0] in DOCKERFILE_INSTRUCTIONS, line
            assert re.search(r"^USER (?!root|0\b)", joined, re.MULTILINE), "the image must not run as root"
            assert "--require-hashes -r /src/requirements.lock" in joined
        elif path.suffix == ".sh":
            subprocess.run(["bash", "-n", str(path)], check=True)
        elif path.suffix == ".env" or path.name == "env.example":
            for line in text.splitlines():
                if line.strip() and not line.startswith("#"):
                    assert re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", line), line
        elif path.suffix == ".conf" and "nginx" in path.name:
            assert text.count("{") == text.count("}"), path
        elif path.name in ("redis.conf", "newsflow.sysusers.conf"):
            pass
        else:
            pytest.fail(f"{path}: no parser for this kind of deploy file; add one here")
        checked += 1
    assert checked >= 20


def test_deploy_files_name_only_real_commands():
    """Every `newsflow` command line in the deploy files is a real command with real options."""
    import typer.main

    from workers.cli import app

    cli = typer.main.get_command(app)
    argvs = _newsflow_argvs()
    assert {"health", "metrics", "db", "worker", "retry"} <= {argv[0] for _, argv, _ in argvs}
    for origin, argv, whole in argvs:
        name, *rest = argv
        assert name in cli.commands, f"{origin}: newsflow {name} does not exist"
        command = cli.commands[name]
        if name == "db":
            assert rest[0] in command.commands, f"{origin}: newsflow db {rest[0]} does not exist"
            command, rest = command.commands[rest[0]], rest[1:]
        if whole:  # parse the whole command line as the CLI would, without running it
            command.make_context(name, list(rest), resilient_parsing=False)
            continue
        options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        if name == "worker":  # further options go to `celery worker`
            from celery.bin.worker import worker as celery_worker

            options |= {opt for param in celery_worker.params for opt in param.opts + param.secondary_opts}
        for word in rest:
            if word.startswith("-"):
                assert word.split("=")[0] in options, f"{origin}: newsflow {name} has no option {word}"


def test_deploy_files_name_only_real_settings():
    """Every NEWSFLOW_* variable in the deploy files is a setting, or a script variable the README documents."""
    from workers.settings import Settings

    settings = {f"NEWSFLOW_{name.upper()}" for name in Settings.model_fields}
    named = set()
    for path in _deploy_files():
        named |= set(re.findall(r"NEWSFLOW_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    unknown = named - settings - SCRIPT_VARIABLES
    assert not unknown, f"not settings: {sorted(unknown)}"
    readme = (ROOT / "README.md").read_text()
    for variable in SCRIPT_VARIABLES & named:
        assert f"`{variable}`" in readme, f"README does not document {variable}"
    assert {"NEWSFLOW_METRICS_PORT", "NEWSFLOW_BROKER_URL", "NEWSFLOW_DATABASE_URL"} <= named


def test_dashboards_and_alerts_use_only_exported_metrics():
    """Every metric the alert rules and the Grafana dashboard query is one newsflow (or Prometheus) exports."""
    exported = _exported_names()
    exprs = _promql_expressions()
    assert len(exprs) >= 20
    used = set()
    for origin, expr in exprs:
        names = _promql_metric_names(expr)
        assert names, f"{origin}: no metric found in {expr!r}"
        assert names <= exported, f"{origin}: {sorted(names - exported)} not exported"
        used |= names
    for path in _deploy_files():  # metric names in prose and annotations too
        for name in re.findall(r"\bnewsflow_[a-z_]+[a-z]\b", path.read_text()):
            if not name.startswith("newsflow_worker_"):
                assert name in exported, f"{path.name}: {name} is not exported"
    assert {"up", "newsflow_tasks_total", "newsflow_queue_messages", "newsflow_dead_letters_total"} <= used


def test_promql_parser_finds_metric_names():
    """The PromQL scan returns metric names and skips functions, labels, ranges and grouping clauses."""
    expr = 'histogram_quantile(0.95, sum by (stage, le) (rate(foo_bucket{outcome="ok", x=~"a|b"}[5m]))) / on(stage) bar > 3'
    assert _promql_metric_names(expr) == {"foo_bucket", "bar"}


def test_alert_rules_cover_the_issue():
    """Alerts exist for worker down, a backlog growing for minutes, the dead-letter rate and stage latency."""
    docs = _yaml_documents(DEPLOY / "prometheus" / "alerts.yml")
    rules = {r["alert"]: r for d in docs for g in d["groups"] for r in g["rules"]}
    assert "up{" in rules["NewsflowWorkerDown"]["expr"]
    assert "deriv(" in rules["NewsflowBacklogGrowing"]["expr"]
    assert rules["NewsflowBacklogGrowing"]["for"] == "15m"
    assert "newsflow_dead_letters_total" in rules["NewsflowDeadLetterRate"]["expr"]
    assert "newsflow_task_duration_seconds_bucket" in rules["NewsflowStageSlow"]["expr"]


def test_compose_has_a_worker_per_stage_and_safe_services():
    """The compose file runs one worker service per stage queue, Redis with auth, noeviction and AOF,
    a migrate job the workers wait for, Flower with basic auth on loopback, and monitoring as a profile."""
    (compose,) = _yaml_documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    for stage in ("clean", "dedup", "tag", "store"):
        worker = services[f"worker-{stage}"]
        assert worker["environment"]["NEWSFLOW_QUEUES"] == stage
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert worker["healthcheck"]["test"][1:] == ["newsflow", "health", "--queues", stage]
    assert "REDIS_PASSWORD" in services["redis"]["environment"]
    conf = (DEPLOY / "redis.conf").read_text()
    assert "maxmemory-policy noeviction" in conf
    assert "appendonly yes" in conf
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]


def test_compose_config_validates(tmp_path):
    """`docker compose config` accepts the compose file (skipped where docker compose is missing)."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"docker compose not available: {probe.stderr.strip()[:100]}")
    env = {**os.environ, "REDIS_PASSWORD": "x", "POSTGRES_PASSWORD": "x", "FLOWER_BASIC_AUTH": "a:b",
           "GRAFANA_ADMIN_PASSWORD": "x"}  # fmt: skip
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "--profile", "monitoring", "config", "-q"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_kubernetes_manifests_scale_each_stage_and_probe_health():
    """One Deployment per stage queue, non-root, probed with `newsflow health`; a KEDA ScaledObject on each
    stage's Redis list; a migrate Job; the Secret only as an example with placeholders."""
    docs = [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in _yaml_documents(p)]
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for stage in ("clean", "dedup", "tag", "store"):
        deployment = kinds["Deployment", f"newsflow-worker-{stage}"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert {"name": "NEWSFLOW_QUEUES", "value": stage} in container["env"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"] == ["newsflow", "health", "--queues", stage]
        scaled = kinds["ScaledObject", f"newsflow-worker-{stage}"]
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"newsflow-worker-{stage}"
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == f"newsflow.{stage}"
    assert kinds["Job", "newsflow-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "/opt/newsflow/deploy/migrate.sh"
    ]
    secret = kinds["Secret", "newsflow"]
    assert all("CHANGE-ME" in v for v in secret["stringData"].values())


def test_migrate_script_works_without_the_venv_on_path(tmp_path):
    """deploy/migrate.sh finds newsflow beside the checkout with only /usr/bin:/bin on PATH, and migrates."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "NEWSFLOW_DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}",
    }
    result = subprocess.run(
        ["bash", str(DEPLOY / "migrate.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stderr
    missing = subprocess.run(
        ["bash", str(DEPLOY / "migrate.sh")], env={**env, "NEWSFLOW_BIN_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert missing.returncode == 127
    assert "no newsflow executable" in missing.stderr


@pytest.fixture
def fake_bin():
    """A bin directory (readable by any user) whose `newsflow` prints its arguments: worker.sh's command
    line, without Celery."""
    with tempfile.TemporaryDirectory(prefix="newsflow-fake-bin-") as directory:
        bin_dir = Path(directory)
        bin_dir.chmod(0o755)
        fake = bin_dir / "newsflow"
        fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
        fake.chmod(0o755)
        yield bin_dir


def test_worker_script_names_workers_by_queues_and_refuses_root(fake_bin):
    """deploy/worker.sh names a worker newsflow-QUEUES@%h (or NEWSFLOW_WORKER_NAME@%h) and refuses to run as root."""
    bin_dir = fake_bin
    env = {"PATH": "/usr/bin:/bin", "NEWSFLOW_BIN_DIR": str(bin_dir), "NEWSFLOW_BROKER_URL": "redis://x",
           "NEWSFLOW_DATABASE_URL": "sqlite://"}  # fmt: skip
    as_user = {"user": 65534, "group": 65534} if os.geteuid() == 0 else {}

    def run(**extra):
        return subprocess.run(
            ["bash", str(DEPLOY / "worker.sh")], env={**env, **extra}, capture_output=True, text=True,
            timeout=30, check=False, cwd=bin_dir, **as_user,
        )  # fmt: skip

    tag = run(NEWSFLOW_QUEUES="tag,store")
    assert tag.returncode == 0, tag.stderr
    args = tag.stdout.split()
    assert args[args.index("--hostname") + 1] == "newsflow-tag-store@%h"
    assert args[args.index("--queues") + 1] == "tag,store"
    named = run(NEWSFLOW_QUEUES="tag", NEWSFLOW_WORKER_NAME="tag2").stdout.split()
    assert named[named.index("--hostname") + 1] == "tag2@%h"
    if os.geteuid() == 0:
        root = subprocess.run(
            ["bash", str(DEPLOY / "worker.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert root.returncode == 2
        assert "refusing to run as root" in root.stderr


def test_redis_script_takes_port_dir_and_bind_from_the_environment(tmp_path):
    """deploy/redis.sh starts Redis on REDIS_PORT, in REDIS_DIR, bound to REDIS_BIND, with AOF and noeviction."""
    port = _free_port()
    process = subprocess.Popen(
        ["bash", str(DEPLOY / "redis.sh")],
        env=_env(REDIS_PASSWORD="pw-for-test", REDIS_PORT=str(port), REDIS_DIR=str(tmp_path), REDIS_BIND="127.0.0.1"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = redis.Redis(port=port, password="pw-for-test")
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        config = client.config_get("*")
        assert config["port"] == str(port)
        assert config["dir"] == str(tmp_path)
        assert config["bind"] == "127.0.0.1"
        assert config["appendonly"] == "yes"
        assert config["maxmemory-policy"] == "noeviction"
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
