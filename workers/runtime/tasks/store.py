"""The store task: a thin wrapper that runs the store stage on one message."""

from typing import Any

from workers.runtime.celery_app import app
from workers.runtime.tasks.base import StageTask


class StoreTask(StageTask):
    stage = "store"


@app.task(bind=True, base=StoreTask, name="newsflow.store")
def store(self: StoreTask, message: Any) -> dict[str, str]:
    """Run the store stage for the article in `message`; returns the message for the next stage."""
    return self.process(message)
