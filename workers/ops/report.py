"""The per-source quality report (`newsflow report`): is a site's output drifting?

Per source and period (a day by default, by raw arrival time), from the tables the pipeline writes:

| metric | from |
|---|---|
| `articles` | raw articles received |
| `short_rate` | received articles stored with fewer than `SHORT_WORDS` words, or dead-lettered `no_content` |
| `missing_date_rate`, `missing_title_rate` | stored articles without a publication date / a title |
| `languages` | share of each language among stored articles |
| `duplicate_rate` | stored articles judged exact or near duplicates |
| `untagged_rate` | stored articles left untagged for their language (no model for it, or unclear) |
| `dead_letter_rate` | received articles with a dead letter (open or closed) |
| `not_article_rate` | received pages that ended `not_article` (listing, product, forum... pages; see page kind) |
| `median_words` | median words of stored articles |
| `removed_share` | share of the cleaned page's characters that cleaning removed (the audit keeps at most 300 characters of each removed block, so this is a lower bound) |

Each metric carries its change against the source's previous period; a change beyond the threshold
(rates: `rate_threshold` absolute, median words: `words_threshold` relative) is flagged, when both
periods have at least `min_articles` articles. Some rates are bad on their own, whatever came before:
dead letters, short or empty bodies and missing dates above `ABSOLUTE` are flagged too (kind
`absolute`), so a new source whose every article is dead-lettered on its first day is flagged.
`overview` lists the sources worst first. Read-only.
"""

import html
import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.db.models import ArticleRow, DeadLetterRow, NotArticleRow, RawArticleRow, StageResultRow

SHORT_WORDS = 80
RATES = (
    "short_rate",
    "missing_date_rate",
    "missing_title_rate",
    "duplicate_rate",
    "untagged_rate",
    "dead_letter_rate",
    "not_article_rate",
    "removed_share",
)
PERIODS = {"day": 1, "week": 7}
ABSOLUTE = {"dead_letter_rate": 0.2, "short_rate": 0.5, "missing_date_rate": 0.5}
"""Rates flagged on their own (kind `absolute`) above these values, in a period of at least
`ReportParams.absolute_min_articles` articles."""


@dataclass(frozen=True)
class ReportParams:
    """What the report covers and when it flags."""

    since: datetime
    until: datetime
    period: str = "day"
    source: str | None = None
    rate_threshold: float = 0.15
    words_threshold: float = 0.3
    min_articles: int = 5
    absolute_min_articles: int = 3


def period_start(when: datetime, period: str) -> datetime:
    """The start (UTC midnight; Monday for weeks) of the period `when` falls in."""
    when = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday()) if period == "week" else day


def _rows(session: Session, params: ReportParams, since: datetime) -> list[dict[str, Any]]:
    query = (
        select(
            RawArticleRow.id,
            RawArticleRow.source,
            RawArticleRow.received_at,
            ArticleRow.word_count,
            ArticleRow.title,
            ArticleRow.published_at,
            ArticleRow.language,
            ArticleRow.untagged,
            ArticleRow.status,
            StageResultRow.output,
            NotArticleRow.kind.label("not_article"),
        )
        .outerjoin(NotArticleRow, NotArticleRow.article_id == RawArticleRow.id)
        .outerjoin(ArticleRow, ArticleRow.id == RawArticleRow.id)
        .outerjoin(
            StageResultRow,
            (StageResultRow.article_id == RawArticleRow.id) & (StageResultRow.stage == "clean"),
        )
        .where(RawArticleRow.received_at >= since, RawArticleRow.received_at < params.until)
    )
    if params.source:
        query = query.where(RawArticleRow.source == params.source)
    rows = [dict(r._mapping) for r in session.execute(query)]
    ids = [r["id"] for r in rows]
    dead: dict[str, set[str]] = defaultdict(set)
    for start in range(0, len(ids), 1000):
        for article_id, reason in session.execute(
            select(DeadLetterRow.article_id, DeadLetterRow.reason).where(
                DeadLetterRow.article_id.in_(ids[start : start + 1000])
            )
        ):
            if article_id is not None:
                dead[article_id].add(reason)
    for r in rows:
        r["dead"] = dead.get(r["id"], set())
    return rows


def _removed_share(output: str | None) -> float | None:
    if not output:
        return None
    data = json.loads(output)
    kept = len(data.get("text") or "")
    removed = sum(len(r.get("text") or "") for r in data.get("removed") or ())
    return removed / (kept + removed) if kept + removed else None


def _metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    stored = [r for r in rows if r["word_count"] is not None]
    n, s = len(rows), len(stored)
    shares = [x for x in (_removed_share(r["output"]) for r in rows) if x is not None]
    languages = Counter(r["language"] or "unknown" for r in stored)

    def rate(count: int, total: int) -> float | None:
        return round(count / total, 4) if total else None

    return {
        "articles": n,
        "stored": s,
        "short_rate": rate(
            sum(
                1
                for r in rows
                if (r["word_count"] is not None and r["word_count"] < SHORT_WORDS)
                or "no_content" in r["dead"]
            ),
            n,
        ),
        "missing_date_rate": rate(sum(1 for r in stored if r["published_at"] is None), s),
        "missing_title_rate": rate(sum(1 for r in stored if not (r["title"] or "").strip()), s),
        "languages": {k: round(v / s, 4) for k, v in languages.most_common()} if s else {},
        "duplicate_rate": rate(
            sum(1 for r in stored if r["status"] in ("exact_duplicate", "near_duplicate")), s
        ),
        "untagged_rate": rate(sum(1 for r in stored if r["untagged"]), s),
        "dead_letter_rate": rate(sum(1 for r in rows if r["dead"]), n),
        "not_article_rate": rate(sum(1 for r in rows if r["not_article"]), n),
        "median_words": statistics.median(r["word_count"] for r in stored) if stored else None,
        "removed_share": round(statistics.fmean(shares), 4) if shares else None,
    }


def build(session: Session, params: ReportParams) -> dict[str, Any]:
    """The report: per source, per period, the metrics, their change and flags; plus the flagged list."""
    if params.period not in PERIODS:
        raise ValueError(f"unknown period {params.period!r}; one of {', '.join(PERIODS)}")
    step = timedelta(days=PERIODS[params.period])
    first = period_start(params.since, params.period)
    # One period more than asked, so the first period shown has something to compare with.
    rows = _rows(session, params, first - step)
    grouped: dict[str, dict[datetime, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        grouped[r["source"]][period_start(r["received_at"], params.period)].append(r)
    sources: dict[str, list[dict[str, Any]]] = {}
    flagged: list[dict[str, Any]] = []
    for source in sorted(grouped):
        periods = []
        previous: dict[str, Any] | None = None
        start = first - step
        while start < params.until:
            metrics = _metrics(grouped[source].get(start, []))
            entry = {"period": start.date().isoformat(), **metrics, "change": {}, "flags": []}
            if previous is not None:
                _compare(entry, previous, params)
            _absolute(entry, params)
            if start >= first and metrics["articles"]:
                periods.append(entry)
                flagged.extend({"source": source, "period": entry["period"], **f} for f in entry["flags"])
            if metrics["articles"]:
                previous = entry
            start += step
        if periods:
            sources[source] = periods
    return {
        "since": first.isoformat(),
        "until": params.until.isoformat(),
        "overview": overview(sources),
        "period": params.period,
        "thresholds": {
            "rate": params.rate_threshold,
            "median_words": params.words_threshold,
            "min_articles": params.min_articles,
        },
        "sources": sources,
        "flagged": flagged,
    }


def _absolute(entry: dict[str, Any], params: ReportParams) -> None:
    if entry["articles"] < params.absolute_min_articles:
        return
    for name, limit in ABSOLUTE.items():
        value = entry[name]
        if value is not None and value > limit and not any(f["metric"] == name for f in entry["flags"]):
            entry["flags"].append({"metric": name, "kind": "absolute", "to": value, "limit": limit})


def overview(sources: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per source, worst first (most flags, then highest dead-letter rate, then most articles):
    articles over the window, flags, and the latest period's main rates. Pure."""
    rows = []
    for source, periods in sources.items():
        latest = periods[-1]
        rows.append(
            {
                "source": source,
                "articles": sum(p["articles"] for p in periods),
                "flags": sum(len(p["flags"]) for p in periods),
                "latest": latest["period"],
                **{
                    m: latest[m]
                    for m in ("dead_letter_rate", "short_rate", "missing_date_rate", "duplicate_rate")
                },
                "median_words": latest["median_words"],
            }
        )
    return sorted(
        rows, key=lambda r: (-r["flags"], -(r["dead_letter_rate"] or 0), -r["articles"], r["source"])
    )


def _compare(entry: dict[str, Any], previous: dict[str, Any], params: ReportParams) -> None:
    comparable = entry["articles"] >= params.min_articles and previous["articles"] >= params.min_articles
    for name in RATES:
        now, before = entry[name], previous[name]
        if now is None or before is None:
            continue
        delta = round(now - before, 4)
        entry["change"][name] = delta
        if comparable and abs(delta) > params.rate_threshold:
            entry["flags"].append(
                {"metric": name, "kind": "change", "from": before, "to": now, "change": delta}
            )
    now, before = entry["median_words"], previous["median_words"]
    if now is not None and before:
        relative = round((now - before) / before, 4)
        entry["change"]["median_words"] = relative
        if comparable and abs(relative) > params.words_threshold:
            entry["flags"].append(
                {"metric": "median_words", "kind": "change", "from": before, "to": now, "change": relative}
            )


# --- HTML ----------------------------------------------------------------------------------------------


CHART_METRICS = (*RATES, "median_words")
"""The metrics `to_html` draws, one small chart each per source: the rates, then median words."""
LINE, FLAG, GRID = "#2a6fdb", "#d4111e", "#c8c8c8"


def percent(value: float | None) -> str:
    """A rate as a percentage for people: 0.0331 → '3.3%', 1.0 → '100%', None → '-'."""
    if value is None:
        return "-"
    shown = f"{value * 100:.1f}".removesuffix(".0")
    return f"{shown}%"


def _shown(metric: str, value: float | None) -> str:
    if metric in RATES:
        return percent(value)
    return "-" if value is None else f"{value:g}"


def _chart(periods: list[dict[str, Any]], metric: str, width: int = 240, height: int = 120) -> str:
    """A small inline SVG line chart of one metric over the periods (no script, no external resource).

    Rates are drawn on a fixed 0-100% scale, so two sources' charts compare at a glance; median words
    from 0 to its largest value. A flagged period's point is red and larger, and the chart's frame is
    red; each point's tooltip (`<title>`) gives the period and the value.
    """
    values = [
        (p["period"], float(p[metric]), _flagged(p, metric)) for p in periods if p.get(metric) is not None
    ]
    e = html.escape
    left, right, top_pad, bottom = 38, 10, 10, 22
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    is_rate = metric in RATES
    top = 1.0 if is_rate else max([v for _, v, _ in values] or [1.0]) or 1.0
    flagged = any(f for _, _, f in values)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(metric)}" class="chart">',
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" fill="{"#fff4f4" if flagged else "#fff"}" '
        f'stroke="{FLAG if flagged else GRID}" stroke-width="{2 if flagged else 1}"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - fraction)
        label = percent(fraction) if is_rate else f"{top * fraction:g}"
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#555">{e(label)}</text>'
        )
    if not values:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top_pad + plot_h / 2:.1f}" font-size="11" '
            f'text-anchor="middle" fill="#888">no data</text></svg>'
        )
        return "".join(parts)
    step = plot_w / max(1, len(values) - 1)
    points = [
        (left + (i * step if len(values) > 1 else plot_w / 2), top_pad + plot_h * (1 - min(v / top, 1.0)))
        for i, (_, v, _) in enumerate(values)
    ]
    if len(points) > 1:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{LINE}" stroke-width="2.5" points="{line}"/>')
    for (x, y), (period, value, is_flag) in zip(points, values, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{6 if is_flag else 3.5}" fill="{FLAG if is_flag else LINE}" '
            f'class="{"point flag" if is_flag else "point"}"><title>{e(period)}: {e(_shown(metric, value))}'
            f"{' (flagged)' if is_flag else ''}</title></circle>"
        )
    first, last = values[0][0], values[-1][0]
    parts.append(
        f'<text x="{left}" y="{height - 6}" font-size="10" fill="#555">{e(first)}</text>'
        + (
            f'<text x="{width - right}" y="{height - 6}" font-size="10" text-anchor="end" fill="#555">{e(last)}</text>'
            if last != first
            else ""
        )
        + "</svg>"
    )
    return "".join(parts)


def _flagged(period: dict[str, Any], metric: str) -> bool:
    return any(f["metric"] == metric for f in period.get("flags", ()))


_LABELS = {
    "short_rate": "short bodies",
    "missing_date_rate": "no date",
    "missing_title_rate": "no title",
    "duplicate_rate": "duplicates",
    "untagged_rate": "untagged",
    "dead_letter_rate": "dead letters",
    "not_article_rate": "not articles",
    "removed_share": "text removed",
    "median_words": "median words",
}


def flag_line(flag: dict[str, Any]) -> str:
    """One flag in words: 'no title: 0% → 100% (+100 points)', or for an absolute one
    'dead letters: 100% (above 20%)'."""
    metric = flag["metric"]
    if flag.get("kind") == "absolute":
        return f"{_LABELS.get(metric, metric)}: {_shown(metric, flag['to'])} (above {percent(flag['limit'])})"
    if metric in RATES:
        points = round(flag["change"] * 100, 1)
        moved = f"{'+' if points > 0 else ''}{points:g} points"
    else:
        moved = f"{'+' if flag['change'] > 0 else ''}{flag['change']:.0%}"
    return f"{_LABELS.get(metric, metric)}: {_shown(metric, flag['from'])} → {_shown(metric, flag['to'])} ({moved})"


_STYLE = (
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "h2{margin-top:2em;border-bottom:1px solid #ddd}"
    ".charts{display:flex;flex-wrap:wrap;gap:10px}"
    "figure{margin:0}figcaption{font-size:12px;color:#444}figcaption.flag{color:#d4111e;font-weight:bold}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "td.flag{background:#fdd;color:#a00;font-weight:bold}ul.flags li{color:#a00}"
)


def readable(value: str) -> str:
    """An ISO time as people read it: `2026-03-14` at midnight UTC, else `2026-03-14 09:30 UTC`."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    when = when.astimezone(UTC) if when.tzinfo else when
    return (
        when.strftime("%Y-%m-%d")
        if (when.hour, when.minute) == (0, 0)
        else when.strftime("%Y-%m-%d %H:%M UTC")
    )


def _anchor(source: str) -> str:
    return "source-" + "".join(c if c.isalnum() else "-" for c in source)


def to_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (inline CSS and SVG; no script, no external resource): an overview table
    of the sources, worst first; then per source the flags in words, a small chart per metric where it has
    more than one period (flags in red), and the table with rates as percentages."""
    e = html.escape
    columns = ("period", "articles", "short_rate", "missing_date_rate", "missing_title_rate", "duplicate_rate",
               "untagged_rate", "dead_letter_rate", "median_words", "removed_share")  # fmt: skip
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>newsflow report</title>",
        f"<style>{_STYLE}</style>",
        f"</head><body><h1>newsflow report</h1><p>{e(readable(report['since']))} to "
        f"{e(readable(report['until']))}, per {e(report['period'])}; {len(report['sources'])} source(s), "
        f"{len(report['flagged'])} flag(s): a rate moving more than {report['thresholds']['rate'] * 100:g} "
        f"points, median words more than {percent(report['thresholds']['median_words'])}, or dead letters, "
        "short bodies or missing dates too high on their own.</p>",
    ]
    overview_columns = ("dead_letter_rate", "short_rate", "missing_date_rate", "duplicate_rate")
    parts.append(
        "<h2>Overview</h2><table class='overview'><tr><th>source</th><th>articles</th><th>flags</th>"
        + "".join(f"<th>{e(_LABELS[c])}</th>" for c in overview_columns)
        + "<th>median words</th><th>latest</th></tr>"
    )
    for row in report.get("overview") or overview(report["sources"]):
        flagged = row["flags"] > 0
        parts.append(
            f"<tr><td class='{'flag' if flagged else ''}'><a href='#{_anchor(row['source'])}'>{e(row['source'])}</a></td>"
            f"<td>{row['articles']}</td><td class='{'flag' if flagged else ''}'>{row['flags']}</td>"
            + "".join(f"<td>{e(percent(row[c]))}</td>" for c in overview_columns)
            + f"<td>{e(_shown('median_words', row['median_words']))}</td><td>{e(row['latest'])}</td></tr>"
        )
    parts.append("</table>")
    order = [r["source"] for r in report.get("overview") or overview(report["sources"])]
    for source in order:
        periods = report["sources"][source]
        flags = [f for f in report["flagged"] if f["source"] == source]
        parts.append(f"<h2 id='{_anchor(source)}'>{e(source)}</h2>")
        if flags:
            parts.append(
                "<ul class='flags'>"
                + "".join(f"<li>{e(f['period'])}: {e(flag_line(f))}</li>" for f in flags)
                + "</ul>"
            )
        flagged_metrics = {f["metric"] for f in flags}
        charted = [m for m in CHART_METRICS if sum(p.get(m) is not None for p in periods) > 1]
        if charted:  # a chart of one point says nothing a table cell does not
            parts.append("<div class='charts'>")
            for metric in charted:
                caption_class = " class='flag'" if metric in flagged_metrics else ""
                parts.append(
                    f"<figure><figcaption{caption_class}>{e(_LABELS[metric])}</figcaption>"
                    f"{_chart(periods, metric)}</figure>"
                )
            parts.append("</div>")
        parts.append(
            "<table><tr>"
            + "".join(f"<th>{e(_LABELS.get(c, c))}</th>" for c in columns)
            + "<th>languages</th></tr>"
        )
        for p in periods:
            marked = {f["metric"] for f in p["flags"]}
            cells = "".join(
                f"<td class='{'flag' if c in marked else ''}'>{e(_shown(c, p.get(c)) if c in CHART_METRICS else str(p.get(c)))}</td>"
                for c in columns
            )
            languages = ", ".join(f"{k} {percent(v)}" for k, v in p["languages"].items())
            parts.append(f"<tr>{cells}<td>{e(languages)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
