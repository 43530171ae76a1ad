"""Distributed mode: `enqueue` and `backfill` feed the workers; `worker` starts one."""

import os
import sys
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from workers.cli.base import (
    EXIT_INTERRUPTED,
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOpt,
    IgnoreUnknownOpt,
    Paths,
    SourceOpt,
    TimeoutOpt,
    WaitOpt,
    app,
    backpressure_notice,
    echo,
    err,
    fail,
    note,
    plain,
    print_json,
    progress,
    require_paths,
    safe_line,
    settings_for,
    wait_for_articles,
)

HighWaterOpt = Annotated[
    int | None,
    typer.Option(help="Wait while the clean queue holds more (default NEWSFLOW_HIGH_WATER_MARK)."),
]
ReprocessOpt = Annotated[
    bool,
    typer.Option("--reprocess", help="Also send articles already stored (they run every stage again)."),
]


def _on_rejected(item: Any) -> None:
    for problem in item.problems:
        err.print(
            Text("rejected ", style="red") + plain(f"{item.origin}: {problem.field}: {problem.reason}"),
            highlight=False,
        )


def _summary_line(verb: str, summary: dict[str, Any]) -> str:
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(summary["skipped"].items())) or "none"
    sent = summary["new"] + summary["resent"] + summary.get("unsent", 0)
    detail = f"{summary['new']} new"
    if summary.get("unsent"):
        detail += f", {summary['unsent']} persisted earlier but never sent"
    resent = "" if not summary["resent"] else ", re-sent " + str(summary["resent"])
    pipeline = f", in the pipeline {summary['in_pipeline']}" if summary.get("in_pipeline") else ""
    line = (
        f"{verb}: {summary['files']} file(s), read {summary['read']}; enqueued {sent} ({detail}), "
        f"rejected {summary['rejected']}, already stored {summary['already_stored']}{pipeline} "
        f"(not sent again{resent}), skipped {skipped}"
    )
    if summary["waited_s"]:
        line += f"; waited {summary['waited_s']:.1f}s for the workers"
    if summary.get("resumed"):
        line += f"; resumed {summary['resumed']} file(s) after {summary['earlier_read']} records read by earlier runs"
    return line


FollowSymlinksOpt = Annotated[
    bool,
    typer.Option(
        "--follow-symlinks",
        help="Read files through symlinks that lead out of an input directory (skipped by default, and said).",
    ),
]


def _feeder(
    verb: str,
    high_water: int | None,
    reprocess: bool,
    rate: float | None,
    ignore_unknown: bool = False,
    db: str | None = None,
    follow_symlinks: bool = False,
) -> Any:
    from workers.ingest.backfill import Feeder
    from workers.runtime.celery_app import app as celery_app

    settings = settings_for(db) if high_water is None else settings_for(db, high_water_mark=high_water)

    def say(line: str) -> None:
        err.print(plain(f"newsflow {verb}: {line}"), highlight=False)

    return Feeder(
        settings,
        celery_app,
        reprocess=reprocess,
        rate=rate,
        on_wait=backpressure_notice("clean"),
        say=say,
        ignore_unknown=ignore_unknown,
        follow_symlinks=follow_symlinks,
    )


@app.command()
def enqueue(
    paths: Paths,
    source: SourceOpt = "local",
    high_water: HighWaterOpt = None,
    reprocess: ReprocessOpt = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON summary (with the article ids) instead.")
    ] = False,
    ignore_unknown: IgnoreUnknownOpt = False,
    db: DbOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    follow_symlinks: FollowSymlinksOpt = False,
) -> None:
    """Validate, persist and enqueue raw articles on Redis.

    Distributed mode: the workers (`newsflow worker`) run the pipeline. Reads every format `run`
    reads, WARC archives too. Articles an earlier run already sent are counted and not sent again (unless
    --reprocess), so re-running a dump re-runs no stage.

    Invalid records are reported as FILE:LINE: FIELD: REASON and skipped; valid ones are still
    enqueued. Waits (and says so) while the first stage's queue is above the high-water mark, and
    while Redis or the database is unreachable, full or not answering. An article an earlier run
    persisted but never sent is sent. Prints one article id per line. Exit code 1 if any record was
    rejected.
    """
    from workers.ingest import backfill

    require_paths(paths)
    feeder = _feeder("enqueue", high_water, reprocess, None, ignore_unknown, db, follow_symlinks)
    started = datetime.now(UTC)
    with progress() as bar:
        task = bar.add_task("enqueue", total=None)

        def sent(found: str) -> None:
            bar.advance(task)
            if not json_out:
                echo(found)

        report = backfill.enqueue(paths, feeder, source=source, on_rejected=_on_rejected, on_article=sent)
    summary = report.summary()
    if json_out:
        print_json({**summary, "article_ids": report.article_ids})
    note(_summary_line("enqueue", summary))
    code = EXIT_PARTIAL if report.rejected else 0
    if wait:
        # Articles already stored and not sent again are at their end; with --reprocess, each must end anew.
        since = started if reprocess else None
        code = max(code, wait_for_articles(feeder.settings, report.article_ids, timeout, since))
    if code:
        raise typer.Exit(code)


@app.command("backfill")
def backfill_command(
    paths: Paths,
    source: SourceOpt = "local",
    rate: Annotated[
        float | None, typer.Option(help="At most this many articles per second (default: no limit).")
    ] = None,
    high_water: HighWaterOpt = None,
    reprocess: ReprocessOpt = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoints and read every file from its start.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    progress_every: Annotated[
        float, typer.Option(help="Seconds between progress events when stderr is not a terminal.")
    ] = 10.0,
    ignore_unknown: IgnoreUnknownOpt = False,
    db: DbOpt = None,
    wait: WaitOpt = False,
    timeout: TimeoutOpt = None,
    follow_symlinks: FollowSymlinksOpt = False,
) -> None:
    """Feed archives and dumps to the workers, resumably.

    Every format `run` and `enqueue` read: directories, pages, JSON lines (.jsonl, .ndjson, .gz) and
    WARC/ARC (.warc, .warc.gz, .arc, .arc.gz): HTML responses with status 200 become raw articles
    (target URI, WARC date, host as source); revisits, non-HTML, non-200 and other records are
    counted and skipped. A record cut short (a truncated archive) is rejected with its offset and the
    next files go on.

    A checkpoint per file is kept in the database: after a crash or Ctrl-C the same command continues
    where it stopped, and articles an earlier run sent are not sent again unless --reprocess. A file an
    earlier run finished is "already done" (--restart reads it again). Throttled by --rate and the
    high-water mark. A progress bar on a terminal, `backfill_progress` log events otherwise; a summary
    of this run at the end (read, new, sent by an earlier run, rejected, skipped by kind).
    """
    from workers.core.logging import configure_logging, get_logger
    from workers.ingest import archives, readers
    from workers.ingest import backfill as backfill_module

    if rate is not None and rate <= 0:
        fail("--rate must be above 0", EXIT_USAGE)
    for path in paths:
        if path == "-":
            fail(
                "backfill reads files (it checkpoints offsets); pipe stdin to `newsflow enqueue -`",
                EXIT_USAGE,
            )
    require_paths(paths, stdin=False)
    feeder = _feeder("backfill", high_water, reprocess, rate, ignore_unknown, db, follow_symlinks)
    started = datetime.now(UTC)
    sent: list[str] = []
    feed = feeder.feed

    def feed_and_note(raw: Any) -> tuple[str, str]:
        found, outcome = feed(raw)
        if outcome != "already_stored":
            sent.append(found)
        return found, outcome

    feeder.feed = feed_and_note  # --wait follows the articles this run sent
    if not err.is_terminal:
        # Progress goes to the log (a file or journald): info events at the configured level.
        configure_logging(feeder.settings.log_format, feeder.settings.log_level)
    total = sum(
        p.stat().st_size
        for p in archives.files(paths, follow_symlinks=follow_symlinks)
        if readers.path_problem(p) is None and p.is_file()
    )
    log = get_logger("workers.ingest.backfill")
    last = {"at": time.monotonic(), "bytes": 0}
    interrupted = False
    with progress(total_bytes=True) as bar:
        task = bar.add_task("backfill", total=total or None)

        def advanced(done: int) -> None:
            bar.advance(task, done)
            last["bytes"] += done
            if not err.is_terminal and time.monotonic() - last["at"] >= progress_every:
                last["at"] = time.monotonic()
                log.info(
                    "backfill_progress",
                    bytes_done=last["bytes"],
                    bytes_total=total,
                    **{k: v for k, v in feeder.report.summary().items() if k != "skipped"},
                )

        try:
            report = backfill_module.backfill(
                paths, feeder, source=source, restart=restart, on_rejected=_on_rejected, on_progress=advanced
            )
        except KeyboardInterrupt:
            interrupted = True
            report = feeder.report
    summary = report.summary()
    if json_out:
        print_json({**summary, "interrupted": interrupted})
    for done in report.already_done:
        note(
            f"{safe_line(done)}: already done by an earlier backfill; not read again (--restart reads it again)"
        )
    note(_summary_line("backfill", summary))
    if interrupted:
        note("interrupted; run the same command again to continue from the checkpoints")
        raise typer.Exit(EXIT_INTERRUPTED)
    code = EXIT_PARTIAL if report.rejected else 0
    if wait:
        code = max(code, wait_for_articles(feeder.settings, sent, timeout, started if reprocess else None))
    if code:
        raise typer.Exit(code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Comma-separated stages to consume (default: all four).")
    ] = "clean,dedup,tag,store",
    concurrency: Annotated[int | None, typer.Option("--concurrency", "-c", help="Worker processes.")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Log level.")] = "INFO",
) -> None:
    """Start a Celery worker on the stage queues.

    Execs `celery -A workers.runtime.celery_app worker --include workers.runtime.journal` (the journal records each
    stage attempt for `newsflow trace`).

    Any further options go to celery unchanged (e.g. `--hostname`, `--max-tasks-per-child`).
    """
    from workers.core import keys
    from workers.runtime.pipeline import STAGE_NAMES

    stages = [q.strip().removeprefix("newsflow.") for q in queues.split(",") if q.strip()]
    unknown = sorted(set(stages) - set(STAGE_NAMES))
    if unknown:
        fail(f"unknown stage(s): {', '.join(unknown)}; stages are {', '.join(STAGE_NAMES)}")
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.runtime.celery_app", "worker",
        "-Q", ",".join(keys.queue_name(s) for s in stages), "--loglevel", loglevel,
        "--include", "workers.runtime.journal",
    ]  # fmt: skip
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    argv += ctx.args
    os.execvp(argv[0], argv)  # noqa: S606 -- replacing this process with celery is the point
