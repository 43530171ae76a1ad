"""`status`: is everything up; per stage the articles queued and in progress, the live workers; the oldest
waiting article; what reached an end (stored, duplicate, dead-lettered)."""

from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from workers.cli.base import (
    EXIT_UNREACHABLE,
    DbOpt,
    JsonOpt,
    app,
    describe,
    note,
    out,
    plain,
    print_json,
    settings_for,
)


def _broker(settings: Any) -> tuple[dict[str, dict[str, int]] | None, Any]:
    import redis

    from workers.ops.selection import broker_figures
    from workers.runtime.metrics import live_workers

    try:
        client = redis.Redis.from_url(
            settings.broker_url.unicode_string(), socket_connect_timeout=3, socket_timeout=5
        )
        with client:
            figures = broker_figures(client)
            for stage, n in live_workers(client).items():
                figures[stage]["workers"] = n
            return figures, None
    except Exception as exc:
        known = describe(exc)
        if known is None:
            raise
        return None, known


def _database(settings: Any) -> tuple[dict[str, Any] | None, Any]:
    from workers.db import repo
    from workers.db.engine import transaction
    from workers.ops import progress

    try:
        with transaction(settings.database_url) as session:
            figures = repo.counts(session)
            figures["terminal"] = progress.totals(session)
            oldest = progress.oldest_waiting(session)
            figures["oldest_waiting_s"] = (
                None if oldest is None else round((datetime.now(UTC) - oldest).total_seconds(), 1)
            )
            return figures, None
    except Exception as exc:
        known = describe(exc)
        if known is None:
            raise
        return None, known


def _age(seconds: float) -> str:
    """`45s`, `12m 5s`, `3h 20m`, `2d 4h` for an age in seconds."""
    s = int(seconds)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60), ("m", 60, "s", 1)):
        if s >= size:
            return f"{s // size}{unit} {(s % size) // sub_size}{sub}"
    return f"{s}s"


def _kinds(by_kind: dict[str, int]) -> str:
    """ "3 (listing 2, product 1)": pages that ended `not_article`, by kind."""
    detail = ", ".join(f"{kind} {n}" for kind, n in by_kind.items())
    return f"{sum(by_kind.values())}" + (f" ({detail})" if detail else "")


@app.command()
def status(json_out: JsonOpt = False, db: DbOpt = None) -> None:
    """Services; per stage the articles queued and in progress and the live workers; the age of the
    oldest waiting article; articles stored, duplicate and dead-lettered.

    Counts articles, not messages (a message carries a micro-batch of up to NEWSFLOW_BATCH_SIZE).

    Exit code 0 when Redis and the database both answer; otherwise the code of the first problem
    (4 unreachable, 5 credentials refused, 6 schema missing), after printing what could be read.
    """
    settings = settings_for(db)
    queues, broker_error = _broker(settings)
    figures, db_error = _database(settings)
    services: dict[str, str] = {
        "redis": "ok" if broker_error is None else str(broker_error),
        "database": "ok" if db_error is None else str(db_error),
    }
    embedded = settings.database_url.startswith("sqlite")
    if embedded and broker_error is not None and broker_error.code == EXIT_UNREACHABLE:
        # Embedded mode needs no Redis: say it, but do not fail for it.
        services["redis"] = f"{broker_error} (not needed in embedded mode)"
        broker_error = None
    stages: dict[str, Any] | None = None
    if queues is not None:
        stages = {
            stage: {
                "queued": depth["queued_articles"],
                "in_progress": depth["in_flight_articles"],
                "scheduled_retries": depth["scheduled_retries_articles"],
                "workers": depth["workers"],
                "messages": {k: depth[k] for k in ("queued", "in_flight", "scheduled_retries")},
            }
            for stage, depth in queues.items()
        }
    if json_out:
        print_json({"services": services, "stages": stages, **(figures or {})})
    else:
        table = Table(title="newsflow status (articles)", show_header=False)
        for name, state in services.items():
            table.add_row(name, plain(state, style="" if state == "ok" else "red"))
        for stage, row in (stages or {}).items():
            retries = f", {row['scheduled_retries']} waiting to retry" if row["scheduled_retries"] else ""
            workers = row["workers"]
            table.add_row(
                f"stage {stage}",
                plain(
                    f"{row['queued']} queued, {row['in_progress']} in progress{retries}; "
                    f"{workers} live worker{'s' if workers != 1 else ''}",
                    style="red" if workers == 0 and (row["queued"] or row["in_progress"]) else "",
                ),
            )
        if figures is not None:
            waiting = figures["oldest_waiting_s"]
            table.add_row("oldest waiting article", "none" if waiting is None else f"{_age(waiting)} old")
            table.add_row("raw articles", str(figures["raw_articles"]))
            for state, n in figures["terminal"].items():
                table.add_row(state.replace("_", "-"), str(n))
            if figures.get("not_articles"):
                table.add_row(plain("  not articles by kind"), _kinds(figures["not_articles"]))
            for row in figures["dead_letters_by_stage"]:
                table.add_row(plain(f"  {row['stage']}: {row['reason']}"), str(row["count"]))
        out.print(table)
    problems = [e for e in (broker_error, db_error) if e is not None]
    for problem in problems:
        note(f"newsflow: {problem}")
    if problems:
        raise typer.Exit(problems[0].code)
