"""The tag task: a thin wrapper that runs the tag stage on one message."""

from typing import Any

import workers.stages.tag  # noqa: F401 -- imported once in the worker's main process, shared by its children
from workers.runtime.celery_app import app
from workers.runtime.tasks.base import StageTask


class TagTask(StageTask):
    stage = "tag"


@app.task(bind=True, base=TagTask, name="newsflow.tag")
def tag(self: TagTask, message: Any) -> dict[str, str]:
    """Run the tag stage for the article in `message`; returns the message for the next stage."""
    return self.process(message)
