"""The dedup task: a thin wrapper that runs the dedup stage on one message."""

from typing import Any

import workers.stages.dedup  # noqa: F401 -- imported once in the worker's main process, shared by its children
from workers.runtime.celery_app import app
from workers.runtime.tasks.base import StageTask


class DedupTask(StageTask):
    stage = "dedup"


@app.task(bind=True, base=DedupTask, name="newsflow.dedup")
def dedup(self: DedupTask, message: Any) -> dict[str, str]:
    """Run the dedup stage for the article in `message`; returns the message for the next stage."""
    return self.process(message)
