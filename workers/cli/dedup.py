"""`dedup prune`: forget what the dedup index no longer needs (logic in `workers/db/dedup_index.py`)."""

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from workers.cli.base import DbOpt, JsonOpt, app, err, fail, settings_for

group = typer.Typer(help="The dedup index: prune what it no longer needs.", no_args_is_help=True)
app.add_typer(group, name="dedup")


LinesOpt = Annotated[
    float,
    typer.Option(
        metavar="DAYS",
        help="Days: chrome-line rows of articles first seen before this whose line never recurred in their "
        "source go (a line that has not recurred is nobody's chrome).",
    ),
]
BandsOpt = Annotated[
    float | None,
    typer.Option(
        metavar="DAYS",
        help="Days: the candidate keys of articles first seen before this go too, which ends near-duplicate "
        "detection against them (their exact, raw and URL keys stay). Default: keep.",
    ),
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Count the rows that would go (then roll back); delete nothing.")
]


@group.command()
def prune(
    lines_older_than: LinesOpt = 30.0,
    bands_older_than: BandsOpt = None,
    dry_run: DryRunOpt = False,
    json_out: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Prune the dedup index: `dedup_lines` rows that never recurred, and optionally old candidate keys.

    One transaction; idempotent (a second run deletes nothing more). Schedule it daily: the oneshot unit
    deploy/systemd/newsflow-dedup-prune.service with a timer, or a Kubernetes CronJob (both in
    docs/concepts/dedup.md). Prints the rows deleted (or, with --dry-run, that
    would be) per table.
    """
    from sqlalchemy.orm import Session

    from workers.db.dedup_index import prune as prune_index
    from workers.db.engine import get_engine

    for name, days in (("--lines-older-than", lines_older_than), ("--bands-older-than", bands_older_than)):
        if days is not None and not days > 0:
            fail(f"{name} must be a positive number of days, got {days:g}")
    settings = settings_for(db)
    now = datetime.now(UTC)
    lines_before = now - timedelta(days=lines_older_than)
    bands_before = None if bands_older_than is None else now - timedelta(days=bands_older_than)
    with Session(get_engine(settings.database_url)) as session:
        deleted = prune_index(session, lines_before=lines_before, bands_before=bands_before)
        if dry_run:
            session.rollback()
        else:
            session.commit()
    if json_out:
        typer.echo(json.dumps({"dry_run": dry_run, "deleted": deleted}))
        return
    verb = "would delete" if dry_run else "deleted"
    err.print(f"{verb}: " + ", ".join(f"{table} {rows}" for table, rows in deleted.items()), highlight=False)
