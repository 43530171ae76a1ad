"""workers.runtime.metrics: the declared metrics are the exported ones; outcomes, labels and producer counts."""

import pytest
import redis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from workers.core.settings import Settings
from workers.db.engine import upgrade
from workers.ingest.readers import Problem, Record
from workers.runtime import metrics


class _DeadLettered(Exception):
    """Stands in for `workers.core.errors.DeadLettered` (being built by the runtime helper): stage and reason."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason, self.dead_letter_id = stage, reason, 1


def _family_names(families) -> dict[str, str]:
    return {f.name: f.type for f in families}


def test_declared_worker_metrics_are_the_registered_ones():
    """Every worker metric README and dashboards rely on is registered under that name and type, and no other."""
    metrics.worker_metrics()
    registered = {n: t for n, t in _family_names(REGISTRY.collect()).items() if n.startswith("newsflow_")}
    declared = {name.removesuffix("_total"): kind for name, (kind, _, _) in metrics.WORKER_METRICS.items()}
    assert registered == declared


def test_exporter_families_are_the_declared_ones(redis_url, postgres_url):
    """The exporter, on real Redis and PostgreSQL, yields exactly the declared exporter metrics, all up."""
    upgrade(postgres_url)
    settings = Settings(broker_url=redis_url, database_url=postgres_url)
    families = list(metrics.PipelineCollector(settings).collect())
    declared = {name.removesuffix("_total"): kind for name, (kind, _, _) in metrics.EXPORTER_METRICS.items()}
    assert _family_names(families) == declared
    up = next(f for f in families if f.name == "newsflow_exporter_up")
    assert {s.labels["target"]: s.value for s in up.samples} == {"redis": 1, "database": 1}


def test_exporter_reports_an_unreachable_database_as_down(redis_url):
    """With the database unreachable the exporter still serves queue depth and says database is down."""
    settings = Settings(broker_url=redis_url, database_url="postgresql+psycopg://x@127.0.0.1:1/none")
    with capture_logs() as logs:
        families = {f.name: f for f in metrics.PipelineCollector(settings).collect()}
    assert "newsflow_queue_messages" in families
    assert "newsflow_dead_letters_open" not in families
    up = {s.labels["target"]: s.value for s in families["newsflow_exporter_up"].samples}
    assert up == {"redis": 1, "database": 0}
    assert [entry["event"] for entry in logs] == ["metrics_database_unavailable"]


@pytest.mark.parametrize(
    ("state", "retval", "summary", "expected"),
    [
        ("SUCCESS", {"article_id": "a"}, {}, ("ok", None)),
        ("RETRY", None, {}, ("retry", None)),
        ("FAILURE", _DeadLettered("clean", "not_html"), {}, ("dead_letter", "not_html")),
        ("FAILURE", _DeadLettered("clean", "made_up_reason"), {}, ("dead_letter", "other")),
        ("IGNORED", None, {"outcome": "dead_letter", "reason": "no_content"}, ("dead_letter", "no_content")),
        ("IGNORED", None, {}, ("ignored", None)),
        ("FAILURE", RuntimeError("boom"), {}, ("failed", None)),
    ],
)
def test_outcome_of_a_finished_task(state, retval, summary, expected):
    """A task's outcome comes from its Celery state, a DeadLettered exception's reason, or (before that
    lands) the dead-letter summary line that preceded an Ignore; unknown reasons are bounded to `other`."""
    assert metrics.outcome_of(state, retval, summary) == expected


def test_every_reason_the_code_records_is_a_label_value():
    """The dead-letter reasons of the README are label values of their own, not `other`."""
    for reason in ("not_html", "no_content", "too_deep", "too_large", "missing_input", "invalid_message",
                   "unexpected", "retries_exhausted", "worker_lost", "timeout", "model_unavailable"):  # fmt: skip
        assert metrics.bounded(reason, metrics.REASONS) == reason
    assert metrics.bounded("0123456789abcdef", metrics.REASONS) == "other"


def test_rejected_records_are_counted_by_field(redis_url):
    """`counted()` passes records through unchanged and counts rejected ones by field in Redis (bounded)."""
    records = [
        Record("a.jsonl:1", None, (Problem("body", "missing"),)),
        Record("a.jsonl:2", None, (Problem("url", "bad"), Problem("body", "missing"))),
        Record("a.jsonl:3", None, (Problem("some user field", "x"),)),
        Record("a.jsonl:4", None, ()),
    ]
    assert list(metrics.counted(iter(records), Settings(broker_url=redis_url))) == records
    counts = redis.Redis.from_url(redis_url).hgetall(metrics.PRODUCER_COUNTS_KEY)
    assert counts == {
        b"rejected:body": b"1",
        b"rejected:url": b"1",
        b"rejected:other": b"1",
        b"rejected:record": b"1",
    }
