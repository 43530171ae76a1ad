"""Celery tasks, one module per stage (same stems as `workers/stages`)."""

from workers.runtime.tasks.clean import clean
from workers.runtime.tasks.dedup import dedup
from workers.runtime.tasks.store import store
from workers.runtime.tasks.tag import tag

__all__ = ["clean", "dedup", "store", "tag"]
