"""`report`: per-source quality and drift (short bodies, missing dates and titles, duplicates...)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from workers.cli.base import EXIT_USAGE, DbOpt, JsonOpt, app, fail, note, out, plain, print_json, settings_for


def _pct(value: float | None) -> str:
    from workers.ops.report import percent

    return percent(value)


@app.command()
def report(
    since: Annotated[
        str | None, typer.Option(help="From (ISO date/time, or 7d ago); default: --days ago.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Until (exclusive); default: now.")] = None,
    days: Annotated[int, typer.Option(help="Days back when --since is not given.")] = 7,
    period: Annotated[str, typer.Option(help="day or week.")] = "day",
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    threshold: Annotated[
        float, typer.Option(help="Flag a rate that moves more than this (absolute, 0.15 = 15 points).")
    ] = 0.15,
    words_threshold: Annotated[
        float, typer.Option(help="Flag median words that move more than this (relative).")
    ] = 0.3,
    min_articles: Annotated[
        int, typer.Option(help="Compare two periods only with this many articles in each.")
    ] = 5,
    json_out: JsonOpt = False,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page with charts here.")
    ] = None,
    db: DbOpt = None,
) -> None:
    """Per source and period: articles, short-body, missing date and title, duplicate and dead-letter
    rates, share left untagged (no model for the language), language mix, median words and share of
    text removed, each with its change against the previous period, flagged when it moves beyond the
    threshold; dead letters, short bodies and missing dates are also flagged when too high on their own.
    Sources come worst first; --html starts with an overview table.

    A layout change at one site shows up the day it happens. Exit code 0 (flags are findings, not errors).
    """
    from workers.db.engine import transaction
    from workers.ops.report import ReportParams, build, flag_line, to_html
    from workers.ops.selection import filter_time

    settings = settings_for(db)
    try:
        params = ReportParams(
            since=filter_time(since) or datetime.now(UTC) - timedelta(days=days),
            until=filter_time(until) or datetime.now(UTC),
            period=period,
            source=source,
            rate_threshold=threshold,
            words_threshold=words_threshold,
            min_articles=min_articles,
        )
        with transaction(settings.database_url) as session:
            data = build(session, params)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    if html_file is not None:
        html_file.write_text(to_html(data), encoding="utf-8")
        note(f"wrote {html_file}")
    if json_out:
        print_json(data)
        return
    for name in [row["source"] for row in data["overview"]]:  # worst sources first
        periods = data["sources"][name]
        table = Table(title=Text(name), title_justify="left")
        for column in (
            "period",
            "articles",
            "short",
            "no date",
            "no title",
            "dups",
            "untagged",
            "dead",
            "not art.",
            "median words",
            "removed",
            "languages",
        ):
            table.add_column(column, justify="right")
        for p in periods:
            flags = {f["metric"] for f in p["flags"]}

            def cell(metric: str, text: str, flags: set[str] = flags) -> Text:
                return plain(text, style="bold red" if metric in flags else "")

            table.add_row(
                p["period"],
                str(p["articles"]),
                cell("short_rate", _pct(p["short_rate"])),
                cell("missing_date_rate", _pct(p["missing_date_rate"])),
                cell("missing_title_rate", _pct(p["missing_title_rate"])),
                cell("duplicate_rate", _pct(p["duplicate_rate"])),
                cell("untagged_rate", _pct(p["untagged_rate"])),
                cell("dead_letter_rate", _pct(p["dead_letter_rate"])),
                cell("not_article_rate", _pct(p["not_article_rate"])),
                cell("median_words", "-" if p["median_words"] is None else f"{p['median_words']:g}"),
                cell("removed_share", _pct(p["removed_share"])),
                plain(", ".join(f"{k} {v:.0%}" for k, v in list(p["languages"].items())[:3])),
            )
        out.print(table)
    for f in data["flagged"]:
        note(f"flag: {f['source']} {f['period']}: {flag_line(f)}")
    if not data["sources"]:
        note("no articles received in the window")
