"""`status`: is everything up, what is queued, in flight and scheduled, what is stored, what failed."""

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

    try:
        client = redis.Redis.from_url(
            settings.broker_url.unicode_string(), socket_connect_timeout=3, socket_timeout=5
        )
        with client:
            return broker_figures(client), None
    except Exception as exc:
        known = describe(exc)
        if known is None:
            raise
        return None, known


def _database(settings: Any) -> tuple[dict[str, Any] | None, Any]:
    from workers.db import repo
    from workers.db.engine import transaction

    try:
        with transaction(settings.database_url) as session:
            return repo.counts(session), None
    except Exception as exc:
        known = describe(exc)
        if known is None:
            raise
        return None, known


def _kinds(by_kind: dict[str, int]) -> str:
    """ "3 (listing 2, product 1)": pages that ended `not_article`, by kind."""
    detail = ", ".join(f"{kind} {n}" for kind, n in by_kind.items())
    return f"{sum(by_kind.values())}" + (f" ({detail})" if detail else "")


@app.command()
def status(json_out: JsonOpt = False, db: DbOpt = None) -> None:
    """Services, queues (queued, in flight, scheduled retries), stored articles and dead letters.

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
    if json_out:
        broker: dict[str, Any] = {"queues": None, "in_flight": None, "scheduled_retries": None}
        if queues is not None:
            broker = {
                name: {stage: depth[key] for stage, depth in queues.items()}
                for name, key in (
                    ("queues", "queued"),
                    ("in_flight", "in_flight"),
                    ("scheduled_retries", "scheduled_retries"),
                )
            }
        print_json({"services": services, **broker, **(figures or {})})
    else:
        table = Table(title="newsflow status", show_header=False)
        for name, state in services.items():
            table.add_row(name, plain(state, style="" if state == "ok" else "red"))
        if queues is not None:
            for stage, depth in queues.items():
                table.add_row(
                    f"queue {stage}",
                    f"{depth['queued']} queued, {depth['in_flight']} in flight, "
                    f"{depth['scheduled_retries']} scheduled retries",
                )
        if figures is not None:
            table.add_row("raw articles", str(figures["raw_articles"]))
            table.add_row("articles stored", str(figures["articles"]))
            for verdict, n in sorted(figures["articles_by_verdict"].items()):
                table.add_row(plain(f"  {verdict}"), str(n))
            table.add_row("not articles", _kinds(figures["not_articles"]))
            table.add_row("dead letters (open)", str(figures["dead_letters"]))
            for row in figures["dead_letters_by_stage"]:
                table.add_row(plain(f"  {row['stage']}: {row['reason']}"), str(row["count"]))
        out.print(table)
    problems = [e for e in (broker_error, db_error) if e is not None]
    for problem in problems:
        note(f"newsflow: {problem}")
    if problems:
        raise typer.Exit(problems[0].code)
