"""Dead letters: `dead-letters` (alias `dlq`) `list`, `show`, `discard`; and `retry`."""

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from schemas import StageMessage
from workers.cli.base import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOpt,
    JsonOpt,
    app,
    backpressure_notice,
    echo,
    fail,
    note,
    out,
    plain,
    print_json,
    settings_for,
)

dlq_app = typer.Typer(
    help="Inspect and close dead letters (messages a stage could not process).", no_args_is_help=True
)
app.add_typer(dlq_app, name="dead-letters")
app.add_typer(dlq_app, name="dlq", help="Alias of `dead-letters`.", hidden=True)

StageOpt = Annotated[str | None, typer.Option(help="Only dead letters of this stage.")]
ReasonOpt = Annotated[str | None, typer.Option(help="Only dead letters with this reason code.")]
ErrorClassOpt = Annotated[
    str | None, typer.Option("--error-class", help="Only dead letters of this exception class.")
]
SourceFilterOpt = Annotated[str | None, typer.Option("--source", help="Only articles of this source.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="Failed at or after: ISO date/time (UTC) or 30m, 6h, 2d ago.")
]
UntilOpt = Annotated[str | None, typer.Option(help="Failed before: ISO date/time (UTC) or 30m, 6h, 2d ago.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many.")]
IdsArg = Annotated[
    list[int] | None, typer.Argument(help="Dead-letter ids (default: all matching the filters).")
]


def _filter(
    ids: list[int] | None,
    stage: str | None,
    reason: str | None,
    error_class: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    include_closed: bool = False,
) -> Any:
    from workers.ops.dead_letters import DeadLetterFilter, check_stage
    from workers.ops.selection import filter_time

    try:
        check_stage(stage)
        return DeadLetterFilter(
            ids=tuple(ids or ()),
            stage=stage,
            reason=reason,
            error_class=error_class,
            source=source,
            since=filter_time(since),
            until=filter_time(until),
            include_closed=include_closed,
            limit=limit,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)


def _missing_ids(session: Any, wanted: list[int] | None, found: set[int]) -> list[tuple[int, str]]:
    """(id, why) for each asked-for id that is not among `found`: unknown, or closed already."""
    from sqlalchemy import select

    from workers.db.models import DeadLetterRow

    missing = sorted(set(wanted or ()) - found)
    if not missing:
        return []
    closed = dict(
        session.execute(
            select(DeadLetterRow.id, DeadLetterRow.retried_at).where(DeadLetterRow.id.in_(missing))
        ).all()
    )
    return [
        (i, f"closed at {closed[i].isoformat()}" if i in closed else "no such dead letter") for i in missing
    ]


@dlq_app.command("list")
def list_command(
    stage: StageOpt = None,
    reason: ReasonOpt = None,
    error_class: ErrorClassOpt = None,
    source: SourceFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    include_closed: Annotated[
        bool, typer.Option("--all", help="Also closed ones (retried or discarded).")
    ] = False,
    limit: LimitOpt = 100,
    json_out: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """List dead letters, oldest first: id, stage, reason, error, article, source, attempts, last seen."""
    from workers.db.engine import transaction
    from workers.ops.dead_letters import dead_letter_dict, dead_letter_query, notes_for

    settings = settings_for(db)
    flt = _filter(None, stage, reason, error_class, source, since, until, limit, include_closed)
    with transaction(settings.database_url) as session:
        found = session.execute(dead_letter_query(flt)).all()
        notes = notes_for(session, [row.id for row, _ in found])
        rows = [dead_letter_dict(row, src, notes.get(row.id, [])) for row, src in found]
    if json_out:
        for row in rows:
            print_json(row)
        return
    table = Table(title=f"{len(rows)} dead letter(s)")
    for column in ("id", "stage", "reason", "error", "article", "source", "attempts", "last failed"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]) + ("" if r["closed_at"] is None else " (closed)"),
            r["stage"],
            plain(r["reason"], style="red" if r["permanent"] else ""),
            plain(f"{r['error_class']}: {r['message']}"[:160]),
            (r["article_id"] or "-")[:12],
            plain(r["source"] or "-"),
            str(r["attempts"]),
            (r["last_failed_at"] or "")[:19],
        )
    out.print(table)


@dlq_app.command("show")
def show_command(
    dead_letter_id: Annotated[int, typer.Argument(help="The dead letter's id.")],
    json_out: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """One dead letter: error, traceback head, payload ids, attempts, first and last seen, notes."""
    from sqlalchemy import select

    from workers.db.engine import transaction
    from workers.db.models import DeadLetterRow, RawArticleRow, StageJournalRow
    from workers.ops.dead_letters import dead_letter_dict, notes_for

    settings = settings_for(db)
    with transaction(settings.database_url) as session:
        row = session.get(DeadLetterRow, dead_letter_id)
        if row is None:
            fail(f"no dead letter {dead_letter_id}", EXIT_PARTIAL)
        source = session.scalar(select(RawArticleRow.source).where(RawArticleRow.id == row.article_id))
        data = dead_letter_dict(row, source, notes_for(session, [row.id]).get(row.id, []))
        # Its own failure's traceback, kept with it (a batch neighbour's or a later attempt's is not it);
        # a dead letter written before migration 0007 has none: the journal's latest for it, then.
        data["traceback"] = row.traceback or session.scalar(
            select(StageJournalRow.traceback)
            .where(
                StageJournalRow.article_id == row.article_id,
                StageJournalRow.stage == row.stage,
                StageJournalRow.traceback.is_not(None),
            )
            .order_by(StageJournalRow.id.desc())
            .limit(1)
        )
    if json_out:
        print_json(data)
        return
    out.print(
        Text(f"dead letter {data['id']}", style="bold")
        + Text("  (closed)" if data["closed_at"] else "  (open)")
    )
    for label in ("stage", "reason", "error_class", "message", "article_id", "trace_id", "source", "attempts",
                  "first_failed_at", "last_failed_at", "closed_at"):  # fmt: skip
        if data[label] is not None:
            out.print(Text(f"{label:>16} ", style="dim") + plain(data[label]))
    out.print(
        Text(f"{'permanent':>16} ", style="dim")
        + Text("yes (retry needs --force)" if data["permanent"] else "no")
    )
    out.print(Text(f"{'payload':>16} ", style="dim") + plain(data["payload"]))
    if data["traceback"]:
        out.print(Text("traceback (last lines)", style="dim"))
        for line in data["traceback"].splitlines():
            out.print(plain(line))
    for n in data["notes"]:
        out.print(Text(f"{n['action']:>16} ", style="dim") + plain(f"{n['at'][:19]}  {n['note']}"))


@dlq_app.command("discard")
def discard_command(
    ids: IdsArg = None,
    note_text: Annotated[str, typer.Option("--note", help="Why (kept with the dead letter for audit).")] = "",
    stage: StageOpt = None,
    reason: ReasonOpt = None,
    error_class: ErrorClassOpt = None,
    source: SourceFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = 1000,
    json_out: JsonOpt = False,
    db: DbOpt = None,
) -> None:
    """Close dead letters without replaying them, with a note; the rows are kept for audit.

    Give ids or at least one filter; --note is required.
    """
    from workers.db.engine import transaction
    from workers.ops.dead_letters import close_dead_letters, dead_letter_query

    if not note_text.strip():
        fail("discard needs --note TEXT saying why (it is kept with the dead letter)", EXIT_USAGE)
    if not ids and not any((stage, reason, error_class, source, since, until)):
        fail("discard needs ids or a filter (--stage, --reason, --error-class, --source, --since, --until)")
    settings = settings_for(db)
    flt = _filter(ids, stage, reason, error_class, source, since, until, limit)
    with transaction(settings.database_url) as session:
        rows = [row for row, _ in session.execute(dead_letter_query(flt)).all()]
        missing = _missing_ids(session, ids, {r.id for r in rows})
        close_dead_letters(session, rows, action="discarded", note=note_text.strip())
    for dead_id, why in missing:
        note(f"dead letter {dead_id}: {why}")
    if json_out:
        print_json({"discarded": [r.id for r in rows], "not_found": [i for i, _ in missing]})
    else:
        for row in rows:
            echo(f"{row.id}\t{row.stage}\t{row.article_id or '-'}")
    note(f"discarded {len(rows)}" + (f", {len(missing)} not found or closed" if missing else ""))
    if missing:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def retry(
    ids: IdsArg = None,
    stage: StageOpt = None,
    reason: ReasonOpt = None,
    error_class: ErrorClassOpt = None,
    source: SourceFilterOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = 1000,
    force: Annotated[
        bool, typer.Option("--force", help="Also retry permanent failures (not_html, no_content, ...).")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(help="Seconds to wait for the workers' outcome, to report how many failed again."),
    ] = 0.0,
    embedded_mode: Annotated[
        bool, typer.Option("--embedded", help="Replay in-process instead of enqueuing to the workers.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be retried; change nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary instead.")] = False,
    db: DbOpt = None,
) -> None:
    """Replay dead letters from the stage that failed.

    Enqueued to the workers, or run in-process with --embedded.

    Permanent failures (bad input: not_html, no_content, too_deep, too_large, missing_input,
    invalid_message) are refused unless --force: they would only fail again. Unknown or closed ids
    are reported (exit code 1). Each replayed dead letter is closed; a new failure opens a new one.
    In-process, the failures are counted at once; to the workers, --wait SECONDS waits for the
    outcome. Exit code 1 if any failed again.
    """
    from workers.core.ids import new_trace_id
    from workers.db.engine import transaction
    from workers.ops.dead_letters import (
        PERMANENT_REASONS,
        close_dead_letters,
        dead_letter_query,
        wait_for_outcome,
    )
    from workers.ops.selection import Replayer

    settings = settings_for(db)
    flt = _filter(ids, stage, reason, error_class, source, since, until, limit)
    with transaction(settings.database_url) as session:
        letters = [row for row, _ in session.execute(dead_letter_query(flt)).all()]
        missing = _missing_ids(session, ids, {r.id for r in letters})
        for row in letters:
            session.expunge(row)
    for dead_id, why in missing:
        note(f"dead letter {dead_id}: {why}")
    refused = [d for d in letters if d.reason in PERMANENT_REASONS and not force]
    for d in refused:
        note(f"dead letter {d.id}: {d.reason} is permanent (the input is bad); not retried without --force")
    unreplayable = [d for d in letters if not d.article_id and d not in refused]
    for d in unreplayable:
        note(f"dead letter {d.id} has no article id (an invalid message); nothing to replay, discard it")
    replayable = [d for d in letters if d.article_id and d not in refused]
    summary: dict[str, Any] = {
        "matched": len(letters),
        "retried": 0,
        "failed_again": 0,
        "pending": 0,
        "refused_permanent": [d.id for d in refused],
        "no_article": [d.id for d in unreplayable],
        "not_found": [i for i, _ in missing],
    }
    if dry_run or not replayable:
        if not json_out:
            for d in replayable:
                echo(f"{d.id}\t{d.stage}\t{d.article_id}")
        summary["would_retry"] = len(replayable)
        if json_out:
            summary["dead_letters"] = [
                {"id": d.id, "stage": d.stage, "article_id": d.article_id} for d in replayable
            ]
            print_json(summary)
        note(f"{len(replayable)} dead letter(s) to retry" + _extras(summary))
        if missing or (refused and not dry_run):
            raise typer.Exit(EXIT_PARTIAL)
        return
    replayer = Replayer(settings, embedded=embedded_mode, on_wait=backpressure_notice("retry"))
    replayed: list[tuple[str, str, datetime]] = []
    for d in replayable:
        assert d.article_id is not None
        msg = StageMessage(article_id=d.article_id, trace_id=d.trace_id or new_trace_id())
        started = datetime.now(UTC)
        with transaction(settings.database_url) as session:
            close_dead_letters(session, [d], action="retried", note="newsflow retry")
        replayer.replay(msg, d.stage)
        replayed.append((d.article_id, d.stage, started))
        if not json_out:
            echo(f"{d.id}\t{d.stage}\t{d.article_id}")
    summary["retried"] = len(replayed)
    if embedded_mode:
        summary["failed_again"] = replayer.failed
    elif wait > 0:
        outcome = wait_for_outcome(settings, replayed, timeout=wait)
        summary["failed_again"] = len(outcome.failed_again)
        summary["pending"] = outcome.pending
        summary["stored"] = outcome.stored
    if json_out:
        print_json(summary)
    verb = "retried" if embedded_mode else "re-enqueued"
    line = f"{verb} {summary['retried']}, failed again {summary['failed_again']}"
    if not embedded_mode and wait <= 0:
        line = f"{verb} {summary['retried']} (use --wait SECONDS to see how many fail again)"
    elif summary["pending"]:
        line += f", still running {summary['pending']}"
    note(line + _extras(summary))
    if summary["failed_again"] or missing or refused:
        raise typer.Exit(EXIT_PARTIAL)


def _extras(summary: dict[str, Any]) -> str:
    parts = []
    if summary["refused_permanent"]:
        parts.append(f"refused {len(summary['refused_permanent'])} permanent (use --force)")
    if summary["no_article"]:
        parts.append(f"{len(summary['no_article'])} without article")
    if summary["not_found"]:
        parts.append(f"{len(summary['not_found'])} not found or closed")
    return "; " + "; ".join(parts) if parts else ""
