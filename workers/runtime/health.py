"""Health checks, and a worker that refuses to start broken.

`check_all()` checks what a stage needs: the database answers and its schema is at the Alembic head,
Redis answers (and accepts the password), and, for the tag stage, the tagger model is installed.
`newsflow health [--json]` prints them for probes and exits 1 if any fails.

A worker runs the same checks at start-up, after `-Q` is applied and before its pool forks (Celery's
`celeryd_after_setup` signal); if one fails it logs one `worker_start_refused` line saying which and
why, and exits with code 78 (EX_CONFIG) instead of reporting ready and dead-lettering every article.
A tag worker loads the model there, so its children inherit it instead of loading it each.

Also at start-up, because a worker's first lines are printed before `setup_logging`: logging is set
up at once (Celery's root-privileges warning comes out as JSON), in JSON mode Celery's banner is
replaced by one `worker_starting` line, and a worker left with Celery's default name `celery@HOST`
is named after its queues, `newsflow-clean-dedup@HOST`, so two workers on one host differ.
"""

import importlib.util
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from celery import signals

from workers.core import keys
from workers.core.logging import configure_logging, get_logger, json_output
from workers.core.settings import Settings, get_settings
from workers.runtime.pipeline import STAGE_NAMES

log = get_logger(__name__)

EXIT_REFUSED = 78
"""Exit code of a worker that refused to start (sysexits EX_CONFIG)."""
TIMEOUT_S = 5
_PG_AUTH = ("password authentication failed", "no password supplied", "authentication failed", "pg_hba.conf")
"""PostgreSQL's words for refused credentials (as the CLI's error handling tells them apart)."""


@dataclass(frozen=True)
class Check:
    """One health check: what was checked, whether it passed, and a short explanation."""

    name: str
    ok: bool
    detail: str


def check_database(url: str) -> Check:
    """The database answers and its schema revision is the code's Alembic head."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from workers.db.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    try:
        args = {} if make_url(url).get_backend_name() == "sqlite" else {"connect_timeout": TIMEOUT_S}
        engine = create_engine(url, connect_args=args, poolclass=NullPool)
    except Exception as exc:  # a malformed URL is a failed check, not a traceback
        return Check("database", False, f"bad NEWSFLOW_DATABASE_URL: {exc}")
    try:
        with engine.connect() as conn, _quiet("alembic.runtime.migration"):
            # Reading the revision is not migrating: no "Context impl PostgresqlImpl" info lines.
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # unreachable, refused, bad password: one line says which
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        if any(marker in f"{orig}".lower() for marker in _PG_AUTH):
            return Check("database", False, f"refused the credentials: {first}"[:300])
        return Check("database", False, f"unreachable: {type(exc).__name__}: {first}"[:300])
    finally:
        engine.dispose()
    if current != heads:
        found = ", ".join(sorted(current)) or "none"
        return Check(
            "database",
            False,
            f"schema at revision {found}, code needs {', '.join(sorted(heads))}: run `newsflow db upgrade`",
        )
    return Check("database", True, f"schema at {', '.join(sorted(heads))}")


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Logger `name` says only warnings and errors inside the block."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(logging.WARNING, before))
    try:
        yield
    finally:
        logger.setLevel(before)


def check_redis(url: str) -> Check:
    """The broker answers a PING, with the password in NEWSFLOW_BROKER_URL."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S) as client:
            client.ping()
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.exceptions.AuthenticationError as exc:
        return Check("redis", False, f"refused the credentials: {exc}")
    except redis.exceptions.ResponseError:
        return Check("redis", True, "answers (CONFIG not allowed, eviction policy unknown)")
    except redis.exceptions.RedisError as exc:
        return Check("redis", False, f"unreachable: {type(exc).__name__}: {exc}"[:300])
    if policy != "noeviction":
        return Check("redis", False, f"maxmemory-policy is {policy}: a broker must use noeviction")
    return Check("redis", True, "answers, noeviction")


def check_model(name: str, *, load: bool) -> Check:
    """The tagger model is installed (a package or a model directory); with `load`, it loads with NER."""
    if not load:
        path = Path(name)
        found = (path / "meta.json").is_file() or (
            "/" not in name and importlib.util.find_spec(name.replace("-", "_")) is not None
        )
        return Check("tagger_model", found, f"{name} {'installed' if found else 'not installed'}")
    from workers.core.errors import ModelUnavailable
    from workers.stages import tag as tag_stage

    try:
        nlp = tag_stage.load_model(name)
    except ModelUnavailable as exc:
        return Check("tagger_model", False, str(exc))
    model, version = tag_stage.model_info(nlp)
    return Check("tagger_model", True, f"{model} {version} loaded")


def check_alive(max_age: float, worker: str | None = None) -> Check:
    """Worker `worker` (its name, default the one this environment starts: `metrics.worker_name`) beat
    from its consumer's event loop at most `max_age` seconds ago and its process exists (liveness)."""
    from workers.runtime.metrics import heartbeat_file

    path = heartbeat_file(worker)
    try:
        age = time.time() - path.stat().st_mtime
        beat = json.loads(path.read_text() or "{}")
    except OSError:
        return Check("alive", False, f"no heartbeat file {path}: the worker is not running (or not yet)")
    except ValueError:
        beat = {}
    pid = beat.get("pid") if isinstance(beat, dict) else None
    if isinstance(pid, int) and not _process_exists(pid):
        return Check("alive", False, f"the worker's process {pid} is gone (last heartbeat {age:.0f}s ago)")
    state = beat.get("state", "consuming") if isinstance(beat, dict) else "consuming"
    if age > max_age:
        return Check(
            "alive", False, f"last heartbeat {age:.0f}s ago (limit {max_age:.0f}s): the worker is stuck"
        )
    return Check("alive", True, f"last heartbeat {age:.0f}s ago ({state})")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, run by another user
    return True


def check_all(
    settings: Settings, stages: Iterable[str] = STAGE_NAMES, *, load_model: bool = False
) -> list[Check]:
    """Every check the given stages need: database, Redis, and the model when `tag` is among them."""
    checks = [check_database(settings.database_url), check_redis(settings.broker_url.unicode_string())]
    if "tag" in stages:
        checks.append(check_models(settings.tagger_model_map, load=load_model))
    return checks


def check_models(models: dict[str, str], *, load: bool) -> Check:
    """Every language's tagger model is installed; with `load`, the English (default) one loads too
    (the others load on the first article in their language)."""
    default = check_model(models["en"], load=load)
    others = [(lang, check_model(name, load=False)) for lang, name in sorted(models.items()) if lang != "en"]
    if not others:
        return default
    detail = "; ".join([f"en: {default.detail}", *(f"{lang}: {c.detail}" for lang, c in others)])
    return Check("tagger_model", default.ok and all(c.ok for _, c in others), detail)


def report(checks: list[Check], *, as_json: bool) -> tuple[str, int]:
    """The text `newsflow health` prints and its exit code (0 all passed, 1 otherwise)."""
    ok = all(c.ok for c in checks)
    if as_json:
        text = json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]})
    else:
        text = "\n".join(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in checks)
    return text, 0 if ok else 1


def stages_of(queues: Iterable[str]) -> list[str]:
    """Stage names of the newsflow queues among `queues` (others are ignored)."""
    by_queue = {keys.queue_name(s): s for s in STAGE_NAMES}
    return [by_queue[q] for q in queues if q in by_queue]


# --- worker start-up ------------------------------------------------------------------------------


def _name_and_banner(sender: str | None = None, instance: Any = None, options: Any = None, **_: Any) -> None:
    """Set logging up before Celery's first warning (it asks only later, in `setup_logging`); name a
    default-named worker after its queues; in JSON mode, no banner."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    if instance is None:
        return
    if isinstance(sender, str) and sender.startswith("celery@"):
        queues = (options or {}).get("queues") or [keys.queue_name(s) for s in STAGE_NAMES]
        if isinstance(queues, str):
            queues = queues.split(",")
        stages = stages_of(queues) or ["all"]
        instance.hostname = f"{keys.PREFIX}-{'-'.join(stages)}@{sender.split('@', 1)[1]}"
    if json_output():
        instance.quiet = True
        _json_notices()


def _json_notices() -> None:
    """Celery writes its shutdown notices raw to stdout; in JSON mode, write them as JSON lines."""
    from celery.apps import worker as celery_worker

    def say(msg: str, f: Any = sys.__stderr__) -> None:
        line = json.dumps(
            {
                "event": "worker_notice",
                "message": str(msg).strip(),
                "level": "warning",
                "logger": "celery.apps.worker",
                "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
        )
        try:
            os.write(f.fileno(), line.encode() + b"\n")  # a raw write, as Celery's: safe in a signal handler
        except (OSError, AttributeError, ValueError):
            return

    celery_worker.safe_say = say


def _refuse_if_broken(sender: str | None = None, instance: Any = None, **_: Any) -> None:
    """After -Q is applied, before the pool forks: check what the queues need; exit on a failure."""
    queues = list(instance.app.amqp.queues.consume_from) if instance is not None else []
    stages = stages_of(queues)
    started = time.perf_counter()
    checks = check_all(get_settings(), stages, load_model=True)
    failed = [c for c in checks if not c.ok]
    if failed and not get_settings().startup_checks:
        log.warning(
            "worker_start_checks_failed", worker=sender, failed=[c.name for c in failed], starting="anyway"
        )
        failed = []
    if failed:
        log.critical(
            "worker_start_refused",
            worker=sender,
            failed=[c.name for c in failed],
            error="; ".join(f"{c.name}: {c.detail}" for c in failed),
        )
        raise SystemExit(EXIT_REFUSED)
    log.info(
        "worker_starting",
        worker=sender,
        queues=sorted(queues),
        concurrency=getattr(instance, "concurrency", None),
        pool=getattr(getattr(instance, "pool_cls", None), "__name__", None),
        checks={c.name: c.detail for c in checks},
        checks_ms=round((time.perf_counter() - started) * 1000),
    )


for _signal, _handler in (
    (signals.celeryd_init, _name_and_banner),
    (signals.celeryd_after_setup, _refuse_if_broken),
):
    _signal.connect(_handler, weak=False)
