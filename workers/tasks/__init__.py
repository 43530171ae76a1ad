"""Celery tasks, one module per stage (same stems as `workers/stages`)."""

from workers.tasks.clean import clean
from workers.tasks.dedup import dedup
from workers.tasks.store import store
from workers.tasks.tag import tag

__all__ = ["clean", "dedup", "store", "tag"]
