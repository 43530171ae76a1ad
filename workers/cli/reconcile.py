"""`reconcile`: re-send articles whose message was lost (logic in `workers/ops/reconcile.py`)."""

import json
import signal
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from workers.cli.base import DbOpt, JsonOpt, app, err, progress, settings_for


def run_loop(
    settings: Any,
    *,
    every: float,
    older_than: int | None,
    limit: int | None = None,
    passes: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run a pass every `every` seconds until stopped (or `passes` done), logging JSON lines (a service).

    A finished pass is recorded for the exporter (`newsflow_reconcile_last_pass_timestamp_seconds`), so
    an alert fires when passes stop; a failed pass is logged and the next one tries again, and a pass
    locked out by another reconciler records nothing (that one records its own).
    """
    from workers.core.logging import configure_logging, get_logger

    configure_logging(settings.log_format, settings.log_level)
    log = get_logger("workers.cli.reconcile")

    def stop(signum: int, _frame: object) -> None:
        raise _Stopped(signal.Signals(signum).name)

    # SIGTERM (systemd, docker stop, Kubernetes) ends the loop with a log line and exit 0, never a bare
    # "Terminated" from the shell that started it.
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        log.info(
            "reconcile_loop_started", every_s=every, older_than_s=older_than or settings.reconcile_older_than
        )
        _passes(settings, log, every=every, older_than=older_than, limit=limit, passes=passes, sleep=sleep)
    except (_Stopped, KeyboardInterrupt) as exc:
        log.info("reconcile_loop_stopped", signal=str(exc) if isinstance(exc, _Stopped) else "SIGINT")
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Stopped(BaseException):  # a stop request, not an error: the pass loop catches Exception only
    """A stop signal reached the reconciler loop (its name is the message)."""


def _passes(
    settings: Any,
    log: Any,
    *,
    every: float,
    older_than: int | None,
    limit: int | None,
    passes: int | None,
    sleep: Callable[[float], None],
) -> None:
    from workers.core.errors import describe
    from workers.ops import reconcile as reconciler
    from workers.runtime import metrics

    done = 0
    while passes is None or done < passes:
        try:
            report = reconciler.reconcile(settings, older_than=older_than, limit=limit)
        except Exception as exc:  # database or broker away: the next pass tries again
            log.warning("reconcile_pass_failed", error=describe(exc))
        else:
            if report.locked_out:
                log.info("reconcile_pass_locked_out")
            else:
                metrics.record_reconcile_pass(settings, resent=report.sent)
                log.info(
                    "reconcile_pass_done", found=len(report.found), sent=report.sent, failed=report.failed
                )
        done += 1
        if passes is None or done < passes:
            sleep(every)


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
        bool,
        typer.Option("--loop", help="Run a pass every --every seconds until stopped (a service: JSON logs)."),
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

    With --loop it is a service (deploy/reconcile.sh; every shipped deployment runs one): it logs
    JSON lines (one per pass) and records each finished pass for the exporter
    (newsflow_reconcile_last_pass_timestamp_seconds), so an alert fires when passes stop.
    """
    from workers.ops import reconcile as reconciler

    settings = settings_for(db)
    if loop:
        run_loop(settings, every=every or settings.reconcile_every, older_than=older_than, limit=limit)
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
