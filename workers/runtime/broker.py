"""Publishing stage messages on the broker: one article or a micro-batch to a stage's queue, its trace id
in the headers, and waiting while a queue is above the high-water mark. Used by the producers, the task
base (each stage publishes the next), the reconciler and the operator's replays.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery import Celery, Signature

from schemas import StageBatch, StageMessage
from workers.core import keys
from workers.core.logging import get_logger
from workers.runtime.pipeline import STAGE_NAMES, stages_from

log = get_logger(__name__)


def stage_signature(app: Celery, msg: StageMessage, stage: str = STAGE_NAMES[0]) -> Signature:
    """The task message that runs `stage` for one article; each stage task publishes the next itself."""
    stages_from(stage)  # validates the name
    return app.signature(keys.task_name(stage), args=(msg.model_dump(),), queue=keys.queue_name(stage))


pipeline_signature = stage_signature
"""Older name: the pipeline from `start` is now started by its first stage's message alone."""


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
    on_wait: Callable[[str], None] | None = None,
    shown: int | None = None,
) -> float:
    """Block while `stage`'s queue holds more than `high_water` messages; returns seconds waited.
    `shown` is the mark the operator set, for the message (`high_water` may leave room for a batch)."""
    waited = 0.0
    while queue_depth(client, stage) > high_water:
        if waited == 0.0:
            mark = high_water if shown is None else shown
            log.info("backpressure_wait", high_water=mark, stage=stage)
            if on_wait is not None:
                on_wait(f"queue {keys.queue_name(stage)} above {mark} messages: waiting for the workers")
        sleep(poll_s)
        waited += poll_s
    return waited


def send(
    app: Celery,
    msg: StageMessage,
    start: str = STAGE_NAMES[0],
    *,
    producer: Any = None,
    retry_policy: dict[str, float] | None = None,
    retry: bool = True,
) -> None:
    """Publish the message that starts the pipeline for one persisted article at stage `start`, its trace
    id in the message headers. Raises if the broker stays unreachable through the retry policy."""
    options: dict[str, Any] = {"headers": {"trace_id": msg.trace_id}, "retry": retry}
    if producer is not None:
        options["producer"] = producer
    if retry_policy is not None:
        options["retry_policy"] = retry_policy
    stage_signature(app, msg, start).apply_async(**options)


def batch_signature(app: Celery, msgs: Sequence[StageMessage], stage: str = STAGE_NAMES[0]) -> Signature:
    """The task message that runs `stage` for a micro-batch of articles (`schemas.StageBatch`)."""
    stages_from(stage)
    body = StageBatch(articles=list(msgs)).model_dump()
    return app.signature(keys.task_name(stage), args=(body,), queue=keys.queue_name(stage))


def send_batch(
    app: Celery,
    msgs: Sequence[StageMessage],
    start: str = STAGE_NAMES[0],
    *,
    producer: Any = None,
    retry_policy: dict[str, float] | None = None,
    retry: bool = True,
) -> None:
    """Publish one message that runs stage `start` for several persisted articles (one article: `send`).
    Raises if the broker stays unreachable through the retry policy."""
    if len(msgs) == 1:
        send(app, msgs[0], start, producer=producer, retry_policy=retry_policy, retry=retry)
        return
    options: dict[str, Any] = {"retry": retry}
    if producer is not None:
        options["producer"] = producer
    if retry_policy is not None:
        options["retry_policy"] = retry_policy
    batch_signature(app, msgs, start).apply_async(**options)


def wait_below(
    client: Any,
    high_water: int,
    *,
    stage: str = STAGE_NAMES[0],
    on_wait: Callable[[float], None] | None = None,
) -> float:
    """`wait_below_high_water`, telling `on_wait` how long it has waited so far at each poll."""
    waited = [0.0]

    def sleep(seconds: float) -> None:
        if on_wait is not None:
            on_wait(waited[0])
        time.sleep(seconds)
        waited[0] += seconds

    return wait_below_high_water(client, high_water, stage=stage, sleep=sleep)
