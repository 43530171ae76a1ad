"""`reprocess`: run stored articles again from a stage, selected by id, source, date, verdict or version."""

import re
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated, Any

import typer

from schemas import StageMessage
from workers.cli.base import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOpt,
    TimeoutOpt,
    WaitOpt,
    app,
    backpressure_notice,
    echo,
    fail,
    note,
    print_json,
    progress,
    settings_for,
    wait_for_articles,
)

ID_CHUNK = 500
_PREFIX = re.compile(r"[0-9a-f]{1,31}")
"""An id prefix, as `show` and `trace` take (the full id is 32 lowercase hex characters)."""


def _ids_from(args: list[str]) -> Iterator[str]:
    """Article ids from the arguments, or one per line on stdin when the only argument is '-'."""
    source: Iterable[str] = sys.stdin if args == ["-"] else args
    for line in source:
        if line.strip():
            yield line.strip()


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@app.command()
def reprocess(
    ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Article ids or unique id prefixes (as show and trace take), or '-' to read them from stdin "
            "(one per line)."
        ),
    ] = None,
    start: Annotated[
        str, typer.Option("--from", help="Stage to restart from: clean, dedup, tag or store.")
    ] = "clean",
    stale: Annotated[
        bool, typer.Option("--stale", help="Select articles whose --from stage was made by an older version.")
    ] = False,
    version: Annotated[
        str | None, typer.Option(help="Select articles whose --from stage record has exactly this version.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Select articles of this source.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Published (or --date stored) at or after: ISO date/time, or 30m, 6h, 2d."),
    ] = None,
    until: Annotated[str | None, typer.Option(help="Published (or --date stored) before.")] = None,
    date_field: Annotated[
        str, typer.Option("--date", help="Which date --since/--until compare: published or stored.")
    ] = "published",
    verdict: Annotated[
        str | None, typer.Option(help="Select stored articles with this dedup verdict.")
    ] = None,
    all_articles: Annotated[bool, typer.Option("--all", help="Select every article.")] = False,
    after: Annotated[str, typer.Option(help="Resume: only ids greater than this one.")] = "",
    limit: Annotated[int | None, typer.Option(help="At most this many articles.")] = None,
    chunk: Annotated[int, typer.Option(help="Ids selected per database round trip.")] = 500,
    embedded_mode: Annotated[
        bool, typer.Option("--embedded", help="Run in-process instead of enqueuing to the workers.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the selected ids; change nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary instead of ids.")] = False,
    db: DbOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
) -> None:
    """Run stored articles again from one stage.

    For example after a new cleaner version, or a fix for one site.

    Select by ids (arguments or stdin), or by filters that all must hold: --source, --since/--until
    (publication date, or --date stored), --verdict, --stale (the stage's record was made by another
    version than the running code's) or --version V; or --all. An id may be a unique prefix, as for
    show and trace. Ids that name no article (or prefixes that name several) are reported and
    skipped (exit code 1), never sent. Works in chunks in id order and prints each id
    as it goes, so an interrupted run resumes with --after LAST_ID; enqueuing waits (and says so)
    while the stage's queue is above the high-water mark. Stages are idempotent, so reprocessing an
    up-to-date article is harmless.
    """
    from workers.core.ids import new_trace_id
    from workers.ops.selection import (
        Replayer,
        Selection,
        count_selected,
        filter_time,
        ids_by_prefix,
        known_ids,
        record_runs,
        select_articles,
        verdicts,
    )
    from workers.runtime.pipeline import stages_from

    settings = settings_for(db)
    try:
        stages_from(start)
        sel = Selection(
            start=start,
            stale=stale,
            version=version,
            source=source,
            since=filter_time(since),
            until=filter_time(until),
            date_field=date_field,
            verdict=verdict,
        )
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if date_field not in ("published", "stored"):
        fail(f"--date must be published or stored, not {date_field!r}")
    if verdict is not None and verdict not in verdicts():
        fail(f"unknown verdict {verdict!r}; verdicts are {', '.join(verdicts())}")
    if bool(ids) + sel.filtered + all_articles != 1:
        fail(
            "choose exactly one of: ids (or -), filters (--source, --since, --until, --verdict, --stale, --version), --all"
        )
    if stale and start == "store":
        fail("store keeps no stage record to compare; reprocess --from tag --stale, or pass ids")
    replayer = Replayer(settings, embedded=embedded_mode, on_wait=backpressure_notice(start))
    count = invalid = unknown = 0
    total = None if ids else count_selected(settings, sel, after=after)
    if total is not None and limit is not None:
        total = min(total, limit)
    run = {"start": start, "run": new_trace_id()}

    def selected() -> Iterator[str]:
        nonlocal invalid, unknown
        if not ids:
            yield from select_articles(settings, sel, after=after, chunk=chunk)
            return
        for group in _chunks((i for i in _ids_from(ids) if i > after), ID_CHUNK):
            valid: list[str] = []
            for article in group:
                try:
                    StageMessage(article_id=article, trace_id=run["run"])
                except ValueError:
                    if not _PREFIX.fullmatch(article):
                        note(f"not an article id or id prefix: {article!r}")
                        invalid += 1
                        continue
                    # A prefix, as `show` and `trace` take: it must name exactly one article.
                    matches = ids_by_prefix(settings, article)
                    if len(matches) != 1:
                        which = "no article" if not matches else "more than one article"
                        note(f"{which} matches {article!r} (nothing sent)")
                        unknown += not matches
                        invalid += bool(matches)
                        continue
                    article = matches[0]  # noqa: PLW2901 -- the prefix stands for this id from here on
                valid.append(article)
            found = known_ids(settings, valid)
            for article in valid:
                if article in found:
                    yield article
                else:
                    note(f"unknown article id: {article} (no such raw article; nothing sent)")
                    unknown += 1

    started = datetime.now(UTC)
    sent: list[str] = []
    with progress() as bar:
        task = bar.add_task(f"reprocess from {start}", total=total)
        journal_rows: list[dict[str, Any]] = []
        for article in selected():
            if limit is not None and count >= limit:
                break
            if not dry_run:
                replayer.replay(StageMessage(article_id=article, trace_id=new_trace_id()), start)
                sent.append(article)
                journal_rows.append(
                    {"article_id": article, "stage": start, "event": "reprocess", "detail": run}
                )
                if len(journal_rows) >= chunk:
                    record_runs(settings, journal_rows)
                    journal_rows = []
            if not json_out:
                echo(article)
            count += 1
            bar.advance(task)
        record_runs(settings, journal_rows)
    verb = "selected" if dry_run else "reprocessed" if embedded_mode else "enqueued"
    failed = replayer.failed + invalid + unknown
    if json_out:
        print_json(
            {
                verb: count,
                "from": start,
                # `failed` is the total stderr reports; the three kinds of failure follow it.
                "failed": failed,
                "send_failed": replayer.failed,
                "invalid": invalid,
                "unknown": unknown,
                "waited_s": round(replayer.waited_s, 1),
            }
        )
    note(
        f"{verb} {count} from {start}, failed {failed}"
        + (f" ({unknown} unknown id(s))" if unknown else "")
        + (f"; waited {replayer.waited_s:.1f}s for the workers" if replayer.waited_s else "")
    )
    code = EXIT_PARTIAL if failed else 0
    if wait and not dry_run and not embedded_mode:
        code = max(code, wait_for_articles(settings, sent, timeout, since=started))
    if code:
        raise typer.Exit(code)
