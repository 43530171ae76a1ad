"""newsflow workers: the Celery app, the pipeline stages, their task wrappers and the CLI."""

__version__ = "0.1.0"
