"""`purge`: delete old articles and every row that belongs to them (logic in `workers/db/purge.py`)."""

from typing import Annotated

import typer

from workers.cli.base import EXIT_USAGE, DbOpt, JsonOpt, app, fail, note, print_json, settings_for


@app.command()
def purge(
    before: Annotated[
        str,
        typer.Option(
            "--before",
            help="Purge articles received before this: ISO date/time (UTC) or 30d, 12w ago.",
            show_default=False,
        ),
    ],
    source: Annotated[str | None, typer.Option("--source", help="Only articles of this source.")] = None,
    chunk: Annotated[int, typer.Option("--chunk", min=1, max=10_000, help="Articles per transaction.")] = 500,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the rows per table that would go; delete nothing.")
    ] = False,
    json_out: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Delete articles received before a date, with everything that belongs to them.

    The raw page, stage results, journal, reconciler mark, the stored article with its entities,
    mentions and duplicate link, its dedup index rows, and its closed dead letters with their notes.
    An article with an open dead letter is kept (retry or discard it first).

    Works in chunks, one transaction each: interrupt it at any time and run it again to continue.
    Ends near-duplicate detection against the purged articles: a later copy of a purged story is
    judged unique.
    """
    from workers.db.engine import transaction
    from workers.db.purge import purge as run_purge
    from workers.ops.selection import filter_time

    try:
        cutoff = filter_time(before)
    except ValueError as exc:
        fail(f"--before: {exc}", EXIT_USAGE)
    assert cutoff is not None
    settings = settings_for(db)

    def progress(report: object) -> None:
        if not json_out:
            note(f"{'counted' if dry_run else 'purged'} {report.articles} article(s) so far")  # type: ignore[attr-defined]

    report = run_purge(
        lambda: transaction(settings.database_url),
        before=cutoff,
        source=source,
        chunk=chunk,
        dry_run=dry_run,
        on_chunk=progress,
    )
    summary = {
        "before": cutoff.isoformat(),
        "source": source,
        "dry_run": dry_run,
        "articles": report.articles,
        "kept_open_dead_letter": report.kept_open_dead_letter,
        "rows": report.rows,
    }
    if json_out:
        print_json(summary)
    verb = "would purge" if dry_run else "purged"
    rows = ", ".join(f"{table} {n}" for table, n in report.rows.items() if n)
    note(
        f"{verb} {report.articles} article(s) received before {cutoff:%Y-%m-%d %H:%M} UTC"
        + (f" of {source}" if source else "")
        + f" ({rows or 'no rows'}); kept {report.kept_open_dead_letter} with an open dead letter"
    )
