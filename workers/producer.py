"""Producers: persist raw articles once and enqueue the pipeline for them, with backpressure.

`enqueue()` is the programmatic producer; `newsflow enqueue` wraps it. A message carries only
the article id and a trace id (STYLE.md 3); the raw article is persisted first, so a stage can
always re-read it.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis
import structlog
from celery import Celery, chain

from schemas import RawArticle, StageMessage
from workers import keys
from workers.db import repo
from workers.db.engine import transaction
from workers.ids import article_id, new_trace_id
from workers.logging import get_logger
from workers.pipeline import STAGE_NAMES, stages_from
from workers.settings import Settings

log = get_logger(__name__)


@dataclass
class EnqueueReport:
    """What an enqueue did: articles sent, how many were new, how long it waited for the workers."""

    sent: list[str] = field(default_factory=list)
    new: int = 0
    waited_s: float = 0.0


def pipeline_signature(app: Celery, msg: StageMessage, start: str = STAGE_NAMES[0]) -> chain:
    """The Celery chain that runs the stages from `start` to the end for one article."""
    names = stages_from(start)
    first, *rest = (app.signature(keys.task_name(name), queue=keys.queue_name(name)) for name in names)
    return chain(first.clone(args=(msg.model_dump(),)), *rest)


def queue_depth(client: redis.Redis, stage: str = STAGE_NAMES[0]) -> int:
    """Messages waiting in a stage's queue."""
    return int(client.llen(keys.queue_name(stage)))


def wait_below_high_water(
    client: redis.Redis,
    high_water: int,
    *,
    stage: str = STAGE_NAMES[0],
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block while `stage`'s queue holds more than `high_water` messages; returns seconds waited."""
    waited = 0.0
    while queue_depth(client, stage) > high_water:
        if waited == 0.0:
            log.info("backpressure_wait", high_water=high_water)
        sleep(poll_s)
        waited += poll_s
    return waited


def send(app: Celery, msg: StageMessage, start: str = STAGE_NAMES[0]) -> None:
    """Publish the pipeline for one persisted article, its trace id in the message headers."""
    pipeline_signature(app, msg, start).apply_async(headers={"trace_id": msg.trace_id})


def enqueue(
    articles: Iterable[RawArticle],
    settings: Settings,
    app: Celery,
    *,
    check_every: int = 100,
    on_sent: Callable[[str], None] | None = None,
) -> EnqueueReport:
    """Persist each raw article (once) and enqueue its pipeline, waiting while the clean queue is full.

    Idempotent per article: the same article enqueued twice is stored once, and the stages it
    runs again change nothing.
    """
    client = redis.Redis.from_url(settings.broker_url.unicode_string())
    report = EnqueueReport()
    for count, raw in enumerate(articles):
        if count % check_every == 0:
            report.waited_s += wait_below_high_water(client, settings.high_water_mark)
        msg = StageMessage(article_id=article_id(raw), trace_id=new_trace_id())
        with transaction(settings.database_url) as session:
            report.new += repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
        with structlog.contextvars.bound_contextvars(trace_id=msg.trace_id, article_id=msg.article_id):
            send(app, msg)
            log.info("article_enqueued", source=raw.source)
        report.sent.append(msg.article_id)
        if on_sent is not None:
            on_sent(msg.article_id)
    return report
