"""Running the pipeline: the stage order and each stage's step, shared by both modes (`pipeline`), the
in-process runner (`embedded`), the Celery app and its thin stage tasks (`celery_app`, `tasks/`),
publishing stage messages (`broker`), the stage journal (`journal`), worker metrics and health checks.

May import `db`, `stages`, `core` and `schemas`; never `ingest`, `ops` or `cli`.
"""
