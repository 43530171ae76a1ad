"""newsflow workers: raw pages in, clean, de-duplicated, entity-tagged articles out.

Folders by role, one import direction (each may import only the ones below it; checked in CI by
import-linter, `[tool.importlinter]` in pyproject.toml):

- `cli/`: the `newsflow` command line (entry point; imports anything below);
- `serve/`: the HTTP service `newsflow serve` runs (entry point beside the CLI: intake, one article, the
  changes feed, tokens, its metrics);
- `ops/`: operating the pipeline: the reconciler, the per-source report, an article's trace, dead letters,
  selecting and replaying articles, reading articles out (`changes`: one article, the changes feed);
- `ingest/`: taking input in: file and archive readers, the producer, backfill;
- `runtime/`: running the pipeline: the stage order and steps (`pipeline`), the Celery app and tasks,
  the in-process runner (`embedded`), publishing on the broker, the stage journal, metrics, health;
- `db/`: SQLAlchemy tables, the engine, repository functions, the dedup index, migrations;
- `stages/`: the pure stage functions (clean, dedup, tag, store): no Celery, no database;
- `core/`: settings, error classes, ids, Redis key names, logging: imported by every layer, imports none.

`schemas` (the boundary models) sits below all of them and imports nothing from `workers`; `newsflow`
(the Python client of the HTTP service) imports neither.
"""

__version__ = "0.1.0"
