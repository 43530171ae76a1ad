"""The deploy files: scripts keep Redis and Flower behind authentication; every file parses and names
only real commands, settings and metrics."""

import base64
import configparser
import json
import os
import pickle
import re
import shlex
import socket
import subprocess
import sys
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flower.db"], "the state is one file, FLOWER_DB"
    with state.open("rb") as handle:
        assert "events" in pickle.load(handle)  # Flower's own state, written at shutdown


# --- every deploy file parses and names only real commands, settings and metrics ------------------

SCRIPT_VARIABLES = {"NEWSFLOW_QUEUES", "NEWSFLOW_WORKER_NAME", "NEWSFLOW_BIN_DIR", "NEWSFLOW_IMAGE"}
"""NEWSFLOW_* variables read by the deploy scripts and files, not by `Settings` (the settings reference lists them)."""
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
EXPORTER_METRICS = {"redis_memory_used_bytes", "redis_memory_max_bytes", "redis_up", "pg_up"}
"""Series of redis_exporter and postgres_exporter (the compose services and trial sidecars) that alerts read."""


def _deploy_files():
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def _yaml_documents(path):
    yaml = pytest.importorskip("yaml")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _exported_names() -> set[str]:
    from workers.runtime.metrics import METRICS
    from workers.serve.metrics import ServiceMetrics

    names = set(BUILTIN_METRICS) | EXPORTER_METRICS
    for name, (kind, _labels, _doc) in METRICS.items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    # `newsflow serve` (its own registry, with the process's CPU and memory).
    for family in ServiceMetrics().registry.collect():
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ("",)
        )
        names |= {family.name + suffix for suffix in suffixes}
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
                # The program: first, or after compose's CMD (`pg_isready -d newsflow` is no newsflow call).
                if word.rsplit("/", 1)[-1] == "newsflow" and (i == 0 or obj[i - 1] == "CMD"):
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
            if parser.get("Service", "DynamicUser", fallback="no") != "yes":
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
        elif path.suffix == ".py":
            compile(text, str(path), "exec")
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
    """Every NEWSFLOW_* variable in the deploy files is a setting, or a script variable the settings reference documents."""
    from workers.core.settings import Settings

    settings = {f"NEWSFLOW_{name.upper()}" for name in Settings.model_fields}
    named = set()
    for path in _deploy_files():
        named |= set(re.findall(r"NEWSFLOW_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    unknown = named - settings - SCRIPT_VARIABLES
    assert not unknown, f"not settings: {sorted(unknown)}"
    import mkdocs_hooks

    reference = mkdocs_hooks.render("reference/settings.md")
    for variable in SCRIPT_VARIABLES & named:
        assert f"`{variable}`" in reference, f"docs/reference/settings.md does not document {variable}"
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
    """Alerts exist for a stage without live workers (heartbeats, not vanishing `up` series), the reconciler's
    passes stopping, Redis memory near maxmemory, a backlog growing for minutes, the dead-letter rate and
    stage latency; Prometheus sends them to an Alertmanager."""
    docs = _yaml_documents(DEPLOY / "prometheus" / "alerts.yml")
    rules = {r["alert"]: r for d in docs for g in d["groups"] for r in g["rules"]}
    assert "newsflow_workers" in rules["NewsflowWorkerDown"]["expr"]
    assert "up{" not in rules["NewsflowWorkerDown"]["expr"]
    assert "newsflow_reconcile_last_pass_timestamp_seconds" in rules["NewsflowReconcilerStopped"]["expr"]
    assert "redis_memory_max_bytes" in rules["NewsflowRedisMemoryNearMax"]["expr"]
    assert "deriv(" in rules["NewsflowBacklogGrowing"]["expr"]
    assert rules["NewsflowBacklogGrowing"]["for"] == "15m"
    assert "newsflow_dead_letters_total" in rules["NewsflowDeadLetterRate"]["expr"]
    assert "newsflow_task_duration_seconds_bucket" in rules["NewsflowStageSlow"]["expr"]
    (config,) = _yaml_documents(DEPLOY / "prometheus" / "prometheus.yml")
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["rule_files"] == ["alerts.yml"]  # relative to the config: promtool works from a checkout
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"newsflow-workers", "newsflow-exporter", "redis", "postgres"} <= jobs


def test_dashboard_names_article_rates_for_articles():
    """The throughput panels count articles (a micro-batch task finishes several), and say so."""
    dashboard = json.loads((DEPLOY / "grafana" / "newsflow.json").read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert "Throughput by stage (articles/s, ok)" in titles
    assert not [t for t in titles if "tasks/s" in t]


def test_compose_has_a_worker_per_stage_and_safe_services():
    """The compose file runs one worker service per stage queue, the reconciler, Redis with auth, noeviction
    and AOF as a non-root user, a migrate job the workers wait for, Flower with basic auth on loopback, a
    health check fitted to each service, and monitoring (Prometheus, Alertmanager, Grafana, the Redis and
    PostgreSQL exporters) as a profile."""
    (compose,) = _yaml_documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    for stage in ("clean", "dedup", "tag", "store"):
        worker = services[f"worker-{stage}"]
        assert worker["environment"]["NEWSFLOW_QUEUES"] == stage
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert worker["healthcheck"]["test"][1:] == ["newsflow", "health", "--queues", stage]
    assert services["reconciler"]["command"] == ["/opt/newsflow/deploy/reconcile.sh"]
    assert "REDIS_PASSWORD" in services["redis"]["environment"]
    assert services["redis"]["user"] not in ("root", "0")
    conf = (DEPLOY / "redis.conf").read_text()
    assert "maxmemory-policy noeviction" in conf
    assert "appendonly yes" in conf
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    # The image has no HEALTHCHECK (one check cannot fit workers, Flower, the exporter and migrate):
    # every service built from it says what healthy means for it.
    assert re.search(r"^HEALTHCHECK NONE$", (DEPLOY / "Dockerfile").read_text(), re.MULTILINE)
    for name, service in services.items():
        if service.get("image", "").startswith("${NEWSFLOW_IMAGE"):
            check = service.get("healthcheck")
            assert check, f"{name} has no health check of its own"
            assert check.get("disable") is True or check["test"][0] == "CMD", name
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert "/metrics" in " ".join(services["exporter"]["healthcheck"]["test"])
    assert "/healthcheck" in " ".join(services["flower"]["healthcheck"]["test"])
    monitoring = {"prometheus", "alertmanager", "grafana", "redis-exporter", "postgres-exporter"}
    assert {
        name for name, service in services.items() if service.get("profiles") == ["monitoring"]
    } == monitoring


def test_every_variable_compose_requires_is_in_env_example():
    """Compose interpolates every service, profiles included: each `${VAR:?}` it requires is in env.example,
    so a copied env file with the blanks filled starts a plain `up`."""
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "compose.yaml").read_text()))
    example = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (DEPLOY / "env.example").read_text(), re.MULTILINE))
    assert {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert required <= example, f"missing from env.example: {sorted(required - example)}"


def test_compose_file_matches_the_compose_specification_schema(tmp_path):
    """deploy/compose.yaml validates against the Compose Specification JSON schema (the copy check-jsonschema
    ships, so no network), and a wrong type in it fails the same check."""
    import yaml

    checker = _tool("check-jsonschema")

    def check(path):
        return subprocess.run(
            [checker, "--builtin-schema", "vendor.compose-spec", str(path)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    result = check(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    (bad,) = _yaml_documents(DEPLOY / "compose.yaml")
    bad["services"]["redis"]["healthcheck"]["retries"] = ["not", "a", "number"]
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(bad))
    assert check(broken).returncode != 0


MEASURED_PSS_MIB = {"clean": 538, "dedup": 312, "tag": 658, "store": 307}
"""Peak PSS of one worker with --concurrency 2 (main process and children), MiB: clean from issue 20's
walk-through, the others measured on 120 pages of the scrapinghub benchmark (README "Kubernetes").
A limit must leave a quarter above it."""


def _k8s_documents():
    return [d for p in sorted((DEPLOY / "k8s").rglob("*.yaml")) for d in _yaml_documents(p)]


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_kubernetes_manifests_scale_each_stage_and_probe_health():
    """One Deployment per stage queue, non-root, ready when `newsflow health` passes and live while its
    heartbeat is fresh (no database or Redis in liveness), memory above the measured PSS; a KEDA
    ScaledObject on each stage's Redis list, whose Redis a trial manifest creates; the reconciler; a migrate
    Job; PodMonitors for workers and exporters; the Secret only as an example with placeholders."""
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in _k8s_documents()}
    for stage in ("clean", "dedup", "tag", "store"):
        deployment = kinds["Deployment", f"newsflow-worker-{stage}"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert {"name": "NEWSFLOW_QUEUES", "value": stage} in container["env"]
        assert container["readinessProbe"]["exec"]["command"] == ["newsflow", "health", "--queues", stage]
        assert container["livenessProbe"]["exec"]["command"][:3] == ["newsflow", "health", "--live"]
        limit = _mebibytes(container["resources"]["limits"]["memory"])
        assert limit >= MEASURED_PSS_MIB.get(stage, 0) * 1.25, f"{stage}: {limit} MiB leaves no headroom"
        scaled = kinds["ScaledObject", f"newsflow-worker-{stage}"]
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"newsflow-worker-{stage}"
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["listName"] == f"newsflow.{stage}"
        host = trigger["metadata"]["address"].split(".")[0]
        assert ("Service", host) in kinds, f"KEDA points at a Redis no manifest creates: {host}"
    reconciler = kinds["Deployment", "newsflow-reconciler"]["spec"]["template"]["spec"]["containers"][0]
    assert reconciler["command"] == ["/opt/newsflow/deploy/reconcile.sh"]
    assert ("Service", "postgres") in kinds
    for store in ("redis", "postgres"):
        containers = kinds["StatefulSet", store]["spec"]["template"]["spec"]["containers"]
        assert any(port.get("name") == "exporter" for c in containers for port in c.get("ports", []))
    monitors = {name for kind, name in kinds if kind == "PodMonitor"}
    assert {"newsflow-workers", "newsflow-exporter"} <= monitors
    assert kinds["Job", "newsflow-migrate"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "/opt/newsflow/deploy/migrate.sh"
    ]
    secret = kinds["Secret", "newsflow"]
    assert all("CHANGE-ME" in v for v in secret["stringData"].values())


def test_kubernetes_manifests_validate_against_the_api_schemas():
    """kubernetes-validate (strict: unknown fields fail) accepts every manifest of a built-in kind; custom
    resources (KEDA, PodMonitor) have no schema there and are checked by the test above."""
    validate = _tool("kubernetes-validate")
    paths = [str(p) for p in sorted((DEPLOY / "k8s").rglob("*.yaml"))]
    result = subprocess.run(
        [validate, "--strict", *paths], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"passed for resource (\S+)", result.stdout + result.stderr)
    assert len(passed) >= 14, result.stdout
    assert "deployment/newsflow-reconciler" in passed
    assert "statefulset/redis" in passed


def test_prometheus_config_rules_and_alertmanager_pass_their_own_checkers(tmp_path):
    """promtool accepts the config (run from a checkout, rule_files relative) and the rules, and the rule
    unit tests pass (reconciler stopped, a stage without workers, Redis near maxmemory); amtool accepts
    the Alertmanager config."""
    promtool, amtool = _tool("promtool"), _tool("amtool")
    for argv in (
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        [promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        [promtool, "test", "rules", str(DEPLOY / "prometheus" / "alerts.test.yml")],
        [amtool, "check-config", str(DEPLOY / "alertmanager" / "alertmanager.yml")],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"


def test_systemd_units_verify_and_are_hardened(tmp_path):
    """`systemd-analyze verify` accepts every unit without a warning (their /opt/newsflow paths pointed at
    a scratch install of the deploy scripts), and `systemd-analyze security` rates each at most 2.0 (OK);
    no unit orders itself after a `redis.service` the project does not ship."""
    analyze = _tool("systemd-analyze")
    install = tmp_path / "opt"
    (install / "bin").mkdir(parents=True)
    (install / "deploy").mkdir()
    for script in DEPLOY.glob("*.sh"):
        (install / "deploy" / script.name).write_text(script.read_text())
        (install / "deploy" / script.name).chmod(0o755)
    (install / "bin" / "newsflow").write_text("#!/bin/sh\n")
    (install / "bin" / "newsflow").chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    shipped = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {"newsflow-reconcile.service", "newsflow-redis.service"} <= {u.name for u in shipped}
    for unit in shipped:
        text = unit.read_text()
        for after in re.findall(r"^After=(.*)$", text, re.MULTILINE):
            assert "redis.service" not in after.split(), unit.name
        (units / unit.name).write_text(text.replace("/opt/newsflow", str(install)))
    result = subprocess.run(
        [analyze, "verify", *map(str, sorted(units.iterdir()))], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    for unit in sorted(units.iterdir()):
        security = subprocess.run(
            [analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout + security.stderr)
        assert level is not None, security.stdout + security.stderr
        assert float(level.group(1)) <= 2.0, f"{unit.name}: exposure {level.group(1)}"


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


def _ci() -> bool:
    return bool(os.environ.get("CI"))


def _tool(name: str) -> str:
    """The path of a tool the deploy checks need: missing in CI fails (.ci/run installs it), else skips."""
    import shutil

    venv_bin = str(Path(sys.executable).parent)  # pip-installed checkers (the dev extra) live beside python
    found = shutil.which(name, path=f"{venv_bin}:{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if found is None:
        if _ci():
            pytest.fail(f"{name} is missing: .ci/run installs it")
        pytest.skip(f"{name} not installed (CI installs it)")
    return found


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as exc:
            exc.close()
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"{url} did not answer")
            time.sleep(0.3)


def _status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def start_nginx(nginx: str, directory: Path, site: str) -> subprocess.Popen[bytes]:
    """A private nginx (not daemonised, its pid, logs and temp files in `directory`) serving `site`, a
    deploy config's blocks with their ports and paths already pointed at the test's."""
    temps = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    for name in temps:
        (directory / name).mkdir()
    main = (
        f"daemon off; pid {directory}/nginx.pid; error_log {directory}/error.log;\n"
        + ("user nobody nogroup;\n" if os.geteuid() == 0 else "")
        + "events {}\nhttp {\n  access_log off;\n"
        + "".join(f"  {name}_temp_path {directory}/{name};\n" for name in temps)
        + site + "\n}\n"
    )  # fmt: skip
    (directory / "nginx.conf").write_text(main)
    return subprocess.Popen(
        [nginx, "-c", str(directory / "nginx.conf"), "-p", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_nginx_passes_flowers_one_secret_and_guards_its_open_paths(redis_url, tmp_path):
    """Through a real nginx with deploy/nginx-flower.conf: Flower's own credentials pass, none or wrong
    ones get 401 (one secret, FLOWER_BASIC_AUTH); /metrics is refused outside the Prometheus network and
    /healthcheck allowed from loopback. Flower without FLOWER_DB and no writable state directory says its
    history is not kept, and stops without a traceback; everything it prints is a JSON line."""
    nginx = _tool("nginx")
    flower_port, proxy_port = _free_port(), _free_port()
    flower_log = tmp_path / "flower.log"
    with flower_log.open("wb") as handle:
        flower = subprocess.Popen(
            ["bash", str(DEPLOY / "flower.sh")],
            env=_env(
                NEWSFLOW_BROKER_URL=redis_url, FLOWER_BASIC_AUTH="ops:one-secret", FLOWER_WAIT_ATTEMPTS="0",
                FLOWER_PORT=str(flower_port), STATE_DIRECTORY=str(tmp_path / "absent"),
            ),
            stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    site = (DEPLOY / "nginx-flower.conf").read_text()
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{proxy_port};")
    site = site.replace("http://127.0.0.1:5555", f"http://127.0.0.1:{flower_port}")
    proxy = start_nginx(nginx, tmp_path, site)
    base = f"http://127.0.0.1:{proxy_port}"
    try:
        _wait_http(f"http://127.0.0.1:{flower_port}/healthcheck", flower)
        _wait_http(base + "/healthcheck", proxy)
        assert _status(base + "/", "ops:one-secret") == 200
        assert _status(base + "/") == 401
        assert _status(base + "/", "ops:wrong") == 401
        assert _status(base + "/api/workers", "ops:one-secret") == 200
        assert _status(base + "/metrics") == 403
        assert _status(base + "/healthcheck") == 200
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)
        flower.terminate()
        flower.wait(timeout=20)
    log = flower_log.read_text()
    assert "task history is not kept across restarts" in log
    assert "Traceback" not in log, log[-2000:]
    events = [json.loads(line) for line in log.splitlines()]  # JSON only, flower.sh's lines and Flower's
    assert {"flower_state_not_kept"} <= {e["event"] for e in events}
    assert any(e.get("logger", "").startswith("flower") for e in events), events[:5]
