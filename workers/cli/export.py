"""`export`: the changes feed as JSON lines (logic in `workers/ops/changes.py`)."""

import json
import sys
from typing import Annotated

import typer

from workers.cli.base import EXIT_USAGE, DbOpt, app, fail, note, settings_for


@app.command()
def export(
    after: Annotated[
        str | None, typer.Option(help="Start after this cursor (as printed at the end of an earlier export).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many articles (default: all stored so far).")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Write stored articles in store order as JSON lines, as GET /v1/changes serves them.

    Each line is an article (as the feed has it: cluster, entities, versions) with its `cursor`.
    The cursor to continue from is printed on stderr at the end; `--after` it resumes without
    skipping an article stored meanwhile. An article stored again with changes (reprocessed) comes again.
    """
    from workers.db.engine import transaction
    from workers.ops.changes import MAX_LIMIT, Cursor, changes

    try:
        cursor = Cursor.parse(after)
    except ValueError as exc:
        fail(f"--after: {exc}", EXIT_USAGE)
    if limit is not None and limit < 1:
        fail("--limit must be at least 1", EXIT_USAGE)
    settings = settings_for(db)
    written = 0
    out = sys.stdout
    while limit is None or written < limit:
        want = MAX_LIMIT if limit is None else min(MAX_LIMIT, limit - written)
        with transaction(settings.database_url) as session:
            page, following = changes(session, cursor, want)
        for item in page:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
        written += len(page)
        if following == cursor:
            break
        cursor = following
    out.flush()
    note(f"export: {written} article(s); continue with --after {cursor}")
