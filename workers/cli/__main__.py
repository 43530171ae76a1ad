"""`python -m workers.cli` runs the `newsflow` command line."""

from workers.cli import app

app()
