"""The clean task: a thin wrapper that runs the clean stage on one message."""

from typing import Any

import workers.stages.clean  # noqa: F401 -- imported once in the worker's main process, shared by its children
from workers.runtime.celery_app import app
from workers.runtime.tasks.base import StageTask


class CleanTask(StageTask):
    stage = "clean"


@app.task(bind=True, base=CleanTask, name="newsflow.clean")
def clean(self: CleanTask, message: Any) -> dict[str, str]:
    """Run the clean stage for the article in `message`; returns the message for the next stage."""
    return self.process(message)
