"""`reconcile`: re-send articles whose message was lost (logic in `workers/reconcile.py`)."""

import json
from typing import Annotated, Any

import typer

from workers.cli.base import DbOpt, JsonOpt, app, err, progress, settings_for


@app.command()
def reconcile(
    older_than: Annotated[
        int | None,
        typer.Option(
            help="Seconds without progress before an article counts as stuck (default NEWSFLOW_RECONCILE_OLDER_THAN)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List stuck articles; send nothing.")] = False,
    json_out: JsonOpt = False,
    limit: Annotated[int | None, typer.Option(help="At most this many articles per pass.")] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Run a pass every --every seconds until stopped.")
    ] = False,
    every: Annotated[
        int | None,
        typer.Option(help="Seconds between passes with --loop (default NEWSFLOW_RECONCILE_EVERY)."),
    ] = None,
    db: DbOpt = None,
) -> None:
    """Re-enqueue unfinished articles whose message was lost.

    An article not stored, with no open dead letter and no progress for --older-than seconds is sent
    again from the first stage it lacks; stages are idempotent, so a spurious re-send is harmless.
    A discarded dead letter's article is finished (never re-sent). An article whose last progress is
    younger than the queues' measured drain time is skipped (its message may still be queued or in
    flight); the summary says how many.
    Prints ARTICLE_ID<TAB>STAGE per article (or JSON lines). One pass at a time (a PostgreSQL lock).
    """
    from workers import reconcile as reconciler

    settings = settings_for(db)
    if loop:
        err.print("reconciler loop started", highlight=False)
        reconciler.loop(settings, every=every or settings.reconcile_every, older_than=older_than)
        return

    def show_item(item: Any, ok: bool) -> None:
        if json_out:
            typer.echo(
                json.dumps({"article_id": item.article_id, "stage": item.stage, "sent": ok and not dry_run})
            )
        else:
            typer.echo(f"{item.article_id}\t{item.stage}")
        bar.advance(task)

    with progress() as bar:
        task = bar.add_task("reconcile", total=None)
        report = reconciler.reconcile(
            settings, older_than=older_than, dry_run=dry_run, limit=limit, on_item=show_item
        )
    if report.locked_out:
        err.print("another reconciler pass is running; nothing done", highlight=False)
        return
    by_stage = ", ".join(f"{k} {v}" for k, v in report.by_stage().items()) or "none"
    verb = "found" if dry_run else "re-enqueued"
    err.print(
        f"{verb} {len(report.found) if dry_run else report.sent} stuck (from: {by_stage}), failed {report.failed}"
        + (
            f", skipped {report.skipped} (a message may still be queued or in flight)"
            if report.skipped
            else ""
        ),
        highlight=False,
    )
    if report.failed:
        raise typer.Exit(1)
