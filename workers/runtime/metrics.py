"""Prometheus metrics: stage counters and latencies from the workers, pipeline gauges from an exporter.

Two sources, two scrape jobs (README "Metrics" lists every series):

- **Workers** count what their tasks do, through Celery's task signals (no task code involved):
  tasks by stage and outcome, dead letters by stage and reason, durations, dedup verdicts and
  entities per tagged article. The prefork pool runs tasks in child processes, so prometheus-client
  runs in multiprocess mode: each child writes its samples to files in `PROMETHEUS_MULTIPROC_DIR`
  (a fresh temporary directory per worker unless set), and the worker's main process serves their
  sum on `NEWSFLOW_METRICS_PORT`.
- **`newsflow metrics --port`** reads the shared state on each scrape: queue depth (waiting,
  unacknowledged, scheduled retries) from Redis, open dead letters and stored articles from the
  database, and the producers' counts, which live in one Redis hash because producers are often
  short-lived CLI runs.

Every label value comes from a closed set (stage, outcome, reason, verdict, state): no ids, no
host names, no pids, so the number of series does not grow with traffic or with restarts.
"""

import contextlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from celery import signals

from workers.core import errors, keys
from workers.core.logging import add_event_hook, get_logger
from workers.core.settings import PAGE_KINDS, Settings, get_settings
from workers.runtime.pipeline import STAGE_NAMES

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from workers.ingest.readers import Record

log = get_logger(__name__)

PRODUCER_COUNTS_KEY = f"{keys.PREFIX}:metrics:producer"
"""Redis hash of the producers' counters (`enqueued:STAGE`, `rejected:FIELD`); read by the exporter."""
RECONCILE_KEY = f"{keys.PREFIX}:metrics:reconcile"
"""Redis hash of the reconciler's passes (`last_pass` Unix time, `resent` total); read by the exporter."""
WORKER_KEY_PREFIX = f"{keys.PREFIX}:worker:"
"""`newsflow:worker:HOSTNAME`: a worker's heartbeat (its stages), expiring HEARTBEAT_TTL_S after the last beat."""
HEARTBEAT_EVERY_S = 10.0
HEARTBEAT_TTL_S = 60
HEARTBEAT_SUFFIX = ".alive"
"""A worker's heartbeat file is `heartbeat_dir() / (NAME + HEARTBEAT_SUFFIX)`, NAME its node name before
the `@` (`newsflow-clean`); written from its consumer's event loop (`workers.runtime.consumer`)."""

OUTCOMES = ("ok", "retry", "dead_letter", "failed", "ignored", "split")
VERDICTS = ("unique", "exact_duplicate", "near_duplicate", "revision")
_RUN_REASONS = ("invalid_message", "worker_lost", "retries_exhausted", "timeout", "unexpected")


def _error_reasons(cls: type[errors.NewsflowError]) -> set[str]:
    found = {cls.reason}
    for sub in cls.__subclasses__():
        found |= _error_reasons(sub)
    return found


REASONS = frozenset(_RUN_REASONS) | _error_reasons(errors.NewsflowError)
"""Every dead-letter reason the code can record; anything else is counted as `other`."""
REJECT_FIELDS = frozenset({"record", "source", "body", "url", "fetched_at", "content_type", "title"})
QUEUE_STATES = ("waiting", "unacked", "scheduled")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 90.0)
ENTITY_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200)

WORKER_METRICS = {
    "newsflow_tasks_total": ("counter", ("stage", "outcome"), "Stage tasks finished, by outcome."),
    "newsflow_dead_letters_total": ("counter", ("stage", "reason"), "Dead letters recorded by workers."),
    "newsflow_task_duration_seconds": (
        "histogram",
        ("stage", "outcome"),
        "Wall time of a stage task, from start to outcome.",
    ),
    "newsflow_tasks_in_progress": ("gauge", ("stage",), "Stage tasks running now."),
    "newsflow_dedup_verdicts_total": ("counter", ("verdict",), "Dedup verdicts decided."),
    "newsflow_entities_per_article": ("histogram", (), "Entities found per tagged (not skipped) article."),
    "newsflow_tag_languages_total": (
        "counter",
        ("language", "tagged"),
        "Articles the tag stage saw (duplicates skipped aside), by language and whether a model tagged them.",
    ),
}
EXPORTER_METRICS = {
    "newsflow_queue_messages": (
        "gauge",
        ("stage", "state"),
        "Messages of a stage queue: waiting in the list, unacked (delivered, running or prefetched), "
        "scheduled (retries held by a worker until their ETA).",
    ),
    "newsflow_dead_letters_open": ("gauge", ("stage", "reason"), "Dead letters not yet retried."),
    "newsflow_articles_stored": ("gauge", ("verdict",), "Stored articles by dedup verdict."),
    "newsflow_raw_articles": ("gauge", (), "Raw articles persisted by producers."),
    "newsflow_not_articles": (
        "gauge",
        ("kind",),
        "Pages that ended not_article at clean (never stored), by kind.",
    ),
    "newsflow_producer_enqueued_total": (
        "counter",
        ("stage",),
        "Pipelines started by producers and replays, by first stage.",
    ),
    "newsflow_producer_rejected_total": ("counter", ("field",), "Input records rejected, by field."),
    "newsflow_exporter_up": ("gauge", ("target",), "1 when the exporter could read redis / database."),
    "newsflow_workers": (
        "gauge",
        ("stage",),
        "Workers consuming a stage whose heartbeat (every 10 s, in Redis) is younger than 60 s.",
    ),
    "newsflow_reconcile_last_pass_timestamp_seconds": (
        "gauge",
        (),
        "Unix time of the reconciler's last finished pass (0: none recorded).",
    ),
    "newsflow_reconcile_resent_total": ("counter", (), "Articles the reconciler re-sent."),
}
METRICS = {**WORKER_METRICS, **EXPORTER_METRICS}
"""Every metric newsflow exports: name → (type, labels, help). Dashboards and alerts may use only these."""


def bounded(value: Any, allowed: Iterable[str], other: str = "other") -> str:
    """`value` if it is one of `allowed`, else `other`: label values stay a closed set."""
    return value if isinstance(value, str) and value in allowed else other


@cache
def _languages() -> frozenset[str]:
    """Language label values: the ISO 639-1 codes (pycountry's table), a closed set."""
    import pycountry

    return frozenset(str(lang.alpha_2) for lang in pycountry.languages if hasattr(lang, "alpha_2"))


# --- worker side ----------------------------------------------------------------------------------

_STAGE_OF = {keys.task_name(s): s for s in STAGE_NAMES}


class _WorkerMetrics:
    """The worker's metric objects, created after the multiprocess directory is chosen."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        def spec(name: str) -> tuple[str, list[str]]:
            _, labels, doc = WORKER_METRICS[name]
            return doc, list(labels)

        self.tasks = Counter("newsflow_tasks", *spec("newsflow_tasks_total"))
        self.dead_letters = Counter("newsflow_dead_letters", *spec("newsflow_dead_letters_total"))
        self.duration = Histogram(
            "newsflow_task_duration_seconds",
            *spec("newsflow_task_duration_seconds"),
            buckets=DURATION_BUCKETS,
        )
        self.in_progress = Gauge(
            "newsflow_tasks_in_progress", *spec("newsflow_tasks_in_progress"), multiprocess_mode="livesum"
        )
        self.verdicts = Counter("newsflow_dedup_verdicts", *spec("newsflow_dedup_verdicts_total"))
        self.entities = Histogram(
            "newsflow_entities_per_article", *spec("newsflow_entities_per_article"), buckets=ENTITY_BUCKETS
        )
        self.languages = Counter("newsflow_tag_languages", *spec("newsflow_tag_languages_total"))


_metrics: _WorkerMetrics | None = None
_lock = threading.Lock()
_started: dict[str, float] = {}
_summaries: dict[str, list[dict[str, Any]]] = {}
"""The `task_done` lines of each running task: one for a message of one article, one per article of a
micro-batch (so verdicts, entities and dead letters are counted per article)."""
_own_dir: Path | None = None


def worker_metrics() -> _WorkerMetrics:
    """The worker's metric objects (created once per process tree, on first use)."""
    global _metrics  # noqa: PLW0603 -- one registry per process tree
    with _lock:
        if _metrics is None:
            _metrics = _WorkerMetrics()
        return _metrics


def _remember_summary(event: MutableMapping[str, Any]) -> None:
    """Keep the facts of a task's `task_done` line (verdict, entities, dead-letter reason) for its postrun."""
    if event.get("event") != "task_done":
        return
    import structlog

    task_id = structlog.contextvars.get_contextvars().get("task_id")
    if isinstance(task_id, str):
        _summaries.setdefault(task_id, []).append(
            {
                k: event.get(k)
                for k in ("outcome", "reason", "verdict", "entities", "skipped", "language", "untagged")
            }
        )


add_event_hook(_remember_summary)


def _choose_multiprocess_dir(**_: Any) -> None:
    """In the worker's main process, before the pool forks: a clean directory for the children's samples."""
    global _own_dir  # noqa: PLW0603 -- removed again at worker shutdown
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # samples of a previous run would be summed in
            stale.unlink()
    else:
        _own_dir = directory = Path(tempfile.mkdtemp(prefix="newsflow-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from prometheus_client import values

    # prometheus-client picks its value class when imported; choose again now the directory is set.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def _serve_worker_metrics(**_: Any) -> None:
    """Serve the children's summed samples on NEWSFLOW_METRICS_PORT (0: not served)."""
    settings = get_settings()
    if not settings.metrics_port:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(settings.metrics_port, addr=settings.metrics_address, registry=registry)
    log.info("metrics_serving", port=settings.metrics_port, address=settings.metrics_address)


def heartbeat_dir() -> Path:
    """The user's private directory of heartbeat files: `NEWSFLOW_HEARTBEAT_DIR`, else
    `$XDG_RUNTIME_DIR/newsflow` or `$TMPDIR/newsflow-UID`, created with mode 0700 (one per user: workers
    of other users on the host neither write nor read it)."""
    configured = os.environ.get("NEWSFLOW_HEARTBEAT_DIR")
    if configured:
        return Path(configured)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "newsflow"
    return Path(tempfile.gettempdir()) / f"newsflow-{os.getuid()}"


def worker_name(nodename: str | None = None) -> str:
    """A worker's name for its heartbeat: its node name before the `@`; without one, the name
    `deploy/worker.sh` gives it (NEWSFLOW_WORKER_NAME, else `newsflow-` and its NEWSFLOW_QUEUES)."""
    if nodename:
        return nodename.split("@", 1)[0]
    queues = os.environ.get("NEWSFLOW_QUEUES") or "clean,dedup,tag,store"
    return os.environ.get("NEWSFLOW_WORKER_NAME") or f"{keys.PREFIX}-{queues.replace(',', '-')}"


def heartbeat_file(name: str | None = None) -> Path:
    """The heartbeat file of worker `name` (see `worker_name`); NEWSFLOW_HEARTBEAT_FILE, if set, names
    one file for a host that runs one worker."""
    explicit = os.environ.get("NEWSFLOW_HEARTBEAT_FILE")
    if explicit:
        return Path(explicit)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in worker_name(name)) or "worker"
    return heartbeat_dir() / (safe.lstrip(".") + HEARTBEAT_SUFFIX)


def _private_dir(path: Path) -> None:
    """Create the heartbeat file's directory (0700); refuse one another user owns."""
    if os.environ.get("NEWSFLOW_HEARTBEAT_FILE"):
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.parent.stat().st_uid != os.getuid():
        raise PermissionError(f"{path.parent} belongs to another user")


_beat_failed: set[str] = set()


def beat(consumer: Any, state: str) -> None:
    """Write the worker's heartbeat file (its pid, node name, state, time), atomically; called every
    HEARTBEAT_EVERY_S from the consumer's event loop (`consuming`) or while it reconnects (`connecting`).
    Never raises: a failure is logged once per kind."""
    nodename = str(getattr(consumer, "hostname", None) or "")
    path = heartbeat_file(nodename or None)
    data = json.dumps({"pid": os.getpid(), "worker": nodename, "state": state, "at": time.time()})
    try:
        _private_dir(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(data)
        tmp.replace(path)
        _beat_failed.discard("file")
    except OSError as exc:
        if "file" not in _beat_failed:
            _beat_failed.add("file")
            log.warning("heartbeat_file_failed", path=str(path), error=f"{type(exc).__name__}: {exc}")


def remove_heartbeat(consumer: Any) -> None:
    """A worker that stops on purpose removes its heartbeat file (liveness: not running)."""
    nodename = str(getattr(consumer, "hostname", None) or "")
    with contextlib.suppress(OSError):
        heartbeat_file(nodename or None).unlink()


_heartbeat_stop = threading.Event()


def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Once the worker is ready, a thread of its main process refreshes `newsflow:worker:HOSTNAME` in Redis
    every HEARTBEAT_EVERY_S with its stages (the exporter's `newsflow_workers`, which stays at 0 for a
    stage nobody consumes instead of vanishing as a dead worker's `up` series does). The liveness file is
    written by the consumer's event loop instead (`beat`)."""
    hostname = str(getattr(sender, "hostname", None) or f"{keys.PREFIX}@{os.getpid()}")
    try:
        queues = list(sender.app.amqp.queues.consume_from)
    except AttributeError:
        queues = []
    by_queue = {keys.queue_name(s): s for s in STAGE_NAMES}
    stages = sorted(by_queue[q] for q in queues if q in by_queue)
    payload = json.dumps({"stages": stages, "pid": os.getpid()})
    client = redis.Redis.from_url(
        get_settings().broker_url.unicode_string(), socket_connect_timeout=5, socket_timeout=5
    )

    def run() -> None:
        while True:
            # Redis away or full: the worker's own reconnect logs say so, and the key expires.
            with contextlib.suppress(redis.exceptions.RedisError):
                client.set(WORKER_KEY_PREFIX + hostname, payload, ex=HEARTBEAT_TTL_S)
            if _heartbeat_stop.wait(HEARTBEAT_EVERY_S):
                with contextlib.suppress(redis.exceptions.RedisError):
                    client.delete(WORKER_KEY_PREFIX + hostname)
                return

    _heartbeat_stop.clear()
    threading.Thread(target=run, name="newsflow-heartbeat", daemon=True).start()


def _stop_heartbeat(sender: Any = None, **_: Any) -> None:
    _heartbeat_stop.set()
    remove_heartbeat(sender)


def _child_exit(pid: int | None = None, **_: Any) -> None:
    """A pool child exits: its in-progress gauge stops counting (its counters stay in the sum)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]


def _remove_own_dir(**_: Any) -> None:
    if _own_dir is not None:
        shutil.rmtree(_own_dir, ignore_errors=True)


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    stage = _STAGE_OF.get(getattr(task, "name", ""))
    if stage is None or task_id is None:
        return
    _started[task_id] = time.perf_counter()
    worker_metrics().in_progress.labels(stage).inc()


def outcome_of(state: str | None, retval: Any, summary: dict[str, Any]) -> tuple[str, str | None]:
    """(outcome, dead-letter reason) of a finished task from its Celery state, result and summary line.

    A dead letter ends in FAILURE raising `DeadLettered` (with `.reason`), or, before that lands, in
    IGNORED after a `task_done` line with `outcome="dead_letter"`.
    """
    if state == "SUCCESS":
        return "ok", None
    if state == "RETRY":
        return "retry", None
    reason = getattr(retval, "reason", None) if state == "FAILURE" else None
    if reason is None and summary.get("outcome") == "dead_letter":
        reason = summary.get("reason")
    if reason is not None:
        return "dead_letter", bounded(reason, REASONS)
    return ("ignored" if state == "IGNORED" else "failed"), None


def _task_finished(
    task_id: str | None = None, task: Any = None, retval: Any = None, state: str | None = None, **_: Any
) -> None:
    """Count the task by outcome, time it, and count its verdict, entities or dead-letter reason."""
    stage = _STAGE_OF.get(getattr(task, "name", ""))
    if stage is None or task_id is None:
        return
    started = _started.pop(task_id, None)
    summaries = _summaries.pop(task_id, [])
    outcome, reason = outcome_of(state, retval, summaries[-1] if summaries else {})
    m = worker_metrics()
    m.in_progress.labels(stage).dec()
    # Counted per article: a micro-batch logs one `task_done` line per article (ok or dead letter).
    ended = [s.get("outcome") for s in summaries if s.get("outcome") in ("ok", "dead_letter")]
    if outcome == "ok" and not ended and isinstance(retval, dict) and retval.get("articles") == []:
        outcome = "split"  # a batch re-sent one message per article; each is counted when it ends
    if outcome in ("ok", "dead_letter") and ended:
        for one in ended:
            m.tasks.labels(stage, one).inc()
    else:
        m.tasks.labels(stage, outcome).inc()
    if started is not None:
        m.duration.labels(stage, outcome).observe(time.perf_counter() - started)
    dead = [bounded(s.get("reason"), REASONS) for s in summaries if s.get("outcome") == "dead_letter"]
    for one in dead or ([reason] if reason is not None else []):
        m.dead_letters.labels(stage, one).inc()
    for summary in summaries:
        if summary.get("outcome") != "ok":
            continue
        if stage == "dedup" and summary.get("verdict") is not None:
            m.verdicts.labels(bounded(summary["verdict"], VERDICTS)).inc()
        if stage == "tag" and not summary.get("skipped"):
            _observe_tagged(m, summary)


def _observe_tagged(m: _WorkerMetrics, summary: dict[str, Any]) -> None:
    """Count one article the tag stage saw by language and tagged-or-not; observe its entities if tagged."""
    untagged = bool(summary.get("untagged"))
    m.languages.labels(
        bounded(summary.get("language"), _languages(), "unknown"), "no" if untagged else "yes"
    ).inc()
    entities = summary.get("entities")
    if not untagged and isinstance(entities, int):
        m.entities.observe(entities)


for _signal, _handler in (
    (signals.worker_init, _choose_multiprocess_dir),
    (signals.worker_ready, _serve_worker_metrics),
    (signals.worker_ready, _start_heartbeat),
    (signals.worker_process_shutdown, _child_exit),
    (signals.worker_shutdown, _stop_heartbeat),
    (signals.worker_shutdown, _remove_own_dir),
    (signals.task_prerun, _task_started),
    (signals.task_postrun, _task_finished),
):
    _signal.connect(_handler, weak=False)

# --- producer side --------------------------------------------------------------------------------

_producer_redis: dict[str, redis.Redis] = {}


def _producer_client(url: str) -> redis.Redis:
    client = _producer_redis.get(url)
    if client is None:
        client = _producer_redis[url] = redis.Redis.from_url(url, socket_timeout=5)
    return client


def _broker_url() -> str:
    """The broker of the Celery app in use (a test's or a replayer's own), else the settings'."""
    from celery import current_app

    url = current_app.conf.broker_url
    return (
        url
        if isinstance(url, str) and url.startswith(("redis://", "rediss://"))
        else (get_settings().broker_url.unicode_string())
    )


def _count(fields: dict[str, int], broker_url: str | None = None) -> None:
    """Add to the producers' counters; never fails the caller (counting is not worth losing an article)."""
    try:
        pipe = _producer_client(broker_url or _broker_url()).pipeline(transaction=False)
        for field, amount in fields.items():
            pipe.hincrby(PRODUCER_COUNTS_KEY, field, amount)
        pipe.execute()
    except redis.exceptions.RedisError as exc:
        log.warning("metrics_count_failed", error=type(exc).__name__)


def _count_enqueued(
    sender: str | None = None, headers: dict[str, Any] | None = None, body: Any = None, **_: Any
) -> None:
    """A pipeline started outside any task (a producer, `retry`, `reprocess`) counts as enqueued, per
    article (a micro-batch message counts each of its articles).

    Inside a task Celery sets `parent_id`: the next stage of a chain and a retry are not counted.
    """
    stage = _STAGE_OF.get(sender or "")
    if stage is not None and headers is not None and headers.get("parent_id") is None:
        _count({f"enqueued:{stage}": _articles_in(body)})


def _articles_in(body: Any) -> int:
    """Articles a stage task message carries: the length of a micro-batch, else 1."""
    try:
        message = body[0][0]
        return max(1, len(message["articles"])) if "articles" in message else 1
    except (TypeError, KeyError, IndexError):
        return 1


def counted(records: Iterable["Record"], settings: Settings) -> Iterator["Record"]:
    """Pass `records` through, counting each rejected one by the field of its first problem."""
    url = settings.broker_url.unicode_string()
    for record in records:
        if record.article is None:
            field = record.problems[0].field.split(".")[0] if record.problems else "record"
            _count({f"rejected:{bounded(field, REJECT_FIELDS)}": 1}, url)
        yield record


signals.after_task_publish.connect(_count_enqueued, weak=False)


def record_reconcile_pass(settings: Settings, *, resent: int, when: float | None = None) -> None:
    """Note a finished reconciler pass (its time, the articles it re-sent) for the exporter; never fails."""
    try:
        pipe = _producer_client(settings.broker_url.unicode_string()).pipeline(transaction=False)
        pipe.hset(RECONCILE_KEY, "last_pass", repr(time.time() if when is None else when))
        pipe.hincrby(RECONCILE_KEY, "resent", resent)
        pipe.execute()
    except redis.exceptions.RedisError as exc:
        log.warning("metrics_reconcile_pass_not_recorded", error=type(exc).__name__)


# --- exporter -------------------------------------------------------------------------------------


def _queue_states(client: redis.Redis, now: float) -> dict[tuple[str, str], int]:
    """Messages per (stage, state): list lengths, and the `unacked` hash of kombu's Redis transport.

    kombu keeps every delivered, unacknowledged message in the hash `unacked` as
    `[message, exchange, routing_key]` until it is acknowledged; a retry with a countdown is delivered
    at once and held by a worker until its ETA, so it sits there with a future `eta` header.
    """
    counts = dict.fromkeys(((s, state) for s in STAGE_NAMES for state in QUEUE_STATES), 0)
    pipe = client.pipeline(transaction=False)
    for stage in STAGE_NAMES:
        # kombu keeps priority levels 3, 6 and 9 in lists of their own beside the queue's.
        for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169"):
            pipe.llen(keys.queue_name(stage) + suffix)
    lengths = pipe.execute()
    for i, stage in enumerate(STAGE_NAMES):
        counts[stage, "waiting"] = int(sum(lengths[i * 4 : i * 4 + 4]))
    by_queue = {keys.queue_name(s): s for s in STAGE_NAMES}
    for _tag, raw in client.hscan_iter("unacked", count=1000):
        try:
            message, _exchange, routing_key = json.loads(raw)
            queue_stage = by_queue.get(routing_key)
            eta = (message.get("headers") or {}).get("eta")
        except (ValueError, TypeError, AttributeError):
            continue
        if queue_stage is None:
            continue
        scheduled = False
        if eta:
            try:
                scheduled = datetime.fromisoformat(eta).timestamp() > now
            except ValueError:
                scheduled = False
        counts[queue_stage, "scheduled" if scheduled else "unacked"] += 1
    return counts


def live_workers(client: Any) -> dict[str, int]:
    """Per stage, the workers consuming it whose heartbeat key (`newsflow:worker:NAME`, holding its stages)
    has not expired; every stage is present, 0 included (read only; `status` and the exporter)."""
    alive = dict.fromkeys(STAGE_NAMES, 0)
    names = list(client.scan_iter(match=WORKER_KEY_PREFIX + "*", count=500))
    for raw in client.mget(names) if names else []:
        try:
            stages = json.loads(raw or "")["stages"]
        except (TypeError, ValueError, KeyError):
            continue
        for stage in stages:
            if stage in alive:
                alive[stage] += 1
    return alive


class PipelineCollector:
    """Collects the pipeline's gauges on each scrape: Redis for queues and producers, the database for the rest."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = redis.Redis.from_url(
            settings.broker_url.unicode_string(), socket_connect_timeout=5, socket_timeout=10
        )

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def family(name: str) -> Any:
            kind, labels, doc = METRICS[name]
            if kind == "counter":
                return CounterMetricFamily(name.removesuffix("_total"), doc, labels=list(labels))
            return GaugeMetricFamily(name, doc, labels=list(labels))

        up = family("newsflow_exporter_up")
        try:
            queues = family("newsflow_queue_messages")
            for (stage, state), n in _queue_states(self.client, time.time()).items():
                queues.add_metric([stage, state], n)
            enqueued = family("newsflow_producer_enqueued_total")
            rejected = family("newsflow_producer_rejected_total")
            raw_counts = self.client.hgetall(PRODUCER_COUNTS_KEY)
            counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw_counts.items()}
            for stage in STAGE_NAMES:
                enqueued.add_metric([stage], counts.get(f"enqueued:{stage}", 0))
            for field in sorted(REJECT_FIELDS | {"other"}):
                rejected.add_metric([field], counts.get(f"rejected:{field}", 0))
            yield from (queues, enqueued, rejected, *self._reconciler(), self._workers())
            up.add_metric(["redis"], 1)
        except redis.exceptions.RedisError as exc:
            log.warning("metrics_redis_unavailable", error=type(exc).__name__)
            up.add_metric(["redis"], 0)
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except Exception as exc:  # any database error means 'no figures this scrape', never a crash
            log.warning("metrics_database_unavailable", error=type(exc).__name__)
            up.add_metric(["database"], 0)
        yield up

    def _reconciler(self) -> list[Any]:
        """The reconciler's last pass (0 when none was recorded: `time() - it` is then huge and alerts)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        raw = {
            (k.decode() if isinstance(k, bytes) else k): v
            for k, v in self.client.hgetall(RECONCILE_KEY).items()
        }
        last = GaugeMetricFamily(
            "newsflow_reconcile_last_pass_timestamp_seconds",
            METRICS["newsflow_reconcile_last_pass_timestamp_seconds"][2],
        )
        last.add_metric([], float(raw.get("last_pass", 0)))
        resent = CounterMetricFamily(
            "newsflow_reconcile_resent", METRICS["newsflow_reconcile_resent_total"][2]
        )
        resent.add_metric([], int(raw.get("resent", 0)))
        return [last, resent]

    def _workers(self) -> Any:
        """Live workers per stage from their heartbeat keys; every stage has a series, 0 included."""
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily("newsflow_workers", METRICS["newsflow_workers"][2], labels=["stage"])
        for stage, n in live_workers(self.client).items():
            family.add_metric([stage], n)
        return family

    def _database(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from workers.db import repo
        from workers.db.engine import transaction

        with transaction(self.settings.database_url) as session:
            figures = repo.counts(session)
        open_letters = GaugeMetricFamily(
            "newsflow_dead_letters_open", METRICS["newsflow_dead_letters_open"][2], labels=["stage", "reason"]
        )
        # Every (stage, reason) the code can record has a series, 0 when none is open: `sum(...)` is 0,
        # not empty, and a panel or alert never mistakes "no dead letters" for "no data".
        letters = dict.fromkeys(((s, r) for s in STAGE_NAMES for r in sorted(REASONS)), 0)
        for row in figures["dead_letters_by_stage"]:
            label = (bounded(row["stage"], STAGE_NAMES), bounded(row["reason"], REASONS))
            letters[label] = letters.get(label, 0) + int(row["count"])
        for label, n in sorted(letters.items()):
            open_letters.add_metric(list(label), n)
        stored = GaugeMetricFamily(
            "newsflow_articles_stored", METRICS["newsflow_articles_stored"][2], labels=["verdict"]
        )
        for verdict in VERDICTS:
            stored.add_metric([verdict], figures["articles_by_verdict"].get(verdict, 0))
        raw = GaugeMetricFamily("newsflow_raw_articles", METRICS["newsflow_raw_articles"][2])
        raw.add_metric([], figures["raw_articles"])
        not_articles = GaugeMetricFamily(
            "newsflow_not_articles", METRICS["newsflow_not_articles"][2], labels=["kind"]
        )
        for kind in PAGE_KINDS[1:]:
            not_articles.add_metric([kind], figures["not_articles"].get(kind, 0))
        return [open_letters, stored, raw, not_articles]


def exporter_registry(settings: Settings) -> "CollectorRegistry":
    """A registry holding only the pipeline collector (no process metrics of the exporter itself)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PipelineCollector(settings))
    return registry


def serve_exporter(settings: Settings, *, port: int, address: str) -> None:
    """Serve the pipeline gauges on `address:port` until interrupted."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=address, registry=exporter_registry(settings))
    log.info("metrics_exporter_serving", port=port, address=address)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
