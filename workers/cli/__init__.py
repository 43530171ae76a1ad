"""The `newsflow` command line, one module per group of commands.

- `base`: the app, consoles, common options, settings, safe rendering of stored text, and the error
  handling that turns configuration and connection errors into one line and an exit code;
- `local`: `run`, `clean`, `tag`, `schema` (embedded mode, no servers);
- `feed`: `enqueue`, `backfill`, `worker` (distributed mode);
- `articles`: `show`, `trace`;
- `status`: `status`;
- `dead_letters`: `dead-letters` (`dlq`) `list|show|discard`, and `retry`;
- `reprocess`: `reprocess`;
- `report`: `report`;
- `db`: `db upgrade`.

Adding a command is a one-file change: create `workers/cli/NAME.py` that does
`from workers.cli.base import app` and decorates its functions with `@app.command()` (or builds a
`typer.Typer()` group and calls `app.add_typer(group, name=...)`). Every module of this package is
imported below, so the new command appears in `newsflow --help` without touching another file. Keep
the logic in a module outside the CLI (as `workers/ops/selection.py` or `workers/ingest/backfill.py` do) and the
command thin.
"""

import importlib
import pkgutil

from workers.cli.base import app

ORDER = ("local", "feed", "articles", "status", "dead_letters", "reprocess", "report", "db")
"""Modules whose commands come first in `--help`, in this order; any other module follows by name."""

_found = {m.name for m in pkgutil.iter_modules(__path__)} - {"base", "__main__"}
for _module in [*ORDER, *sorted(_found - set(ORDER))]:
    if _module in _found and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["app"]
