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
| `median_words` | median words of stored articles |
| `removed_share` | share of the cleaned page's characters that cleaning removed (the audit keeps at most 300 characters of each removed block, so this is a lower bound) |

Each metric carries its change against the source's previous period; a change beyond the threshold
(rates: `rate_threshold` absolute, median words: `words_threshold` relative) is flagged, when both
periods have at least `min_articles` articles. Read-only.
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

from workers.db.models import ArticleRow, DeadLetterRow, RawArticleRow, StageResultRow

SHORT_WORDS = 80
RATES = (
    "short_rate",
    "missing_date_rate",
    "missing_title_rate",
    "duplicate_rate",
    "untagged_rate",
    "dead_letter_rate",
    "removed_share",
)
PERIODS = {"day": 1, "week": 7}


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
        )
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
        "period": params.period,
        "thresholds": {
            "rate": params.rate_threshold,
            "median_words": params.words_threshold,
            "min_articles": params.min_articles,
        },
        "sources": sources,
        "flagged": flagged,
    }


def _compare(entry: dict[str, Any], previous: dict[str, Any], params: ReportParams) -> None:
    comparable = entry["articles"] >= params.min_articles and previous["articles"] >= params.min_articles
    for name in RATES:
        now, before = entry[name], previous[name]
        if now is None or before is None:
            continue
        delta = round(now - before, 4)
        entry["change"][name] = delta
        if comparable and abs(delta) > params.rate_threshold:
            entry["flags"].append({"metric": name, "from": before, "to": now, "change": delta})
    now, before = entry["median_words"], previous["median_words"]
    if now is not None and before:
        relative = round((now - before) / before, 4)
        entry["change"]["median_words"] = relative
        if comparable and abs(relative) > params.words_threshold:
            entry["flags"].append({"metric": "median_words", "from": before, "to": now, "change": relative})


# --- HTML ----------------------------------------------------------------------------------------------


def _chart(periods: list[dict[str, Any]], metric: str, width: int = 360, height: int = 90) -> str:
    """A small inline SVG line chart of one metric over the periods."""
    values: list[tuple[str, float]] = [
        (p["period"], float(p[metric])) for p in periods if p.get(metric) is not None
    ]
    if not values:
        return ""
    top = max(v for _, v in values) or 1
    pad = 8
    step = (width - 2 * pad) / max(1, len(values) - 1)
    points = [
        (pad + i * step, height - pad - (v / top) * (height - 2 * pad)) for i, (_, v) in enumerate(values)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{html.escape(p)}: {v}</title></circle>'
        for (x, y), (p, v) in zip(points, values, strict=True)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(metric)}"><polyline fill="none" stroke="#b22" stroke-width="2" '
        f'points="{line}"/>{dots}</svg>'
    )


def to_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (no external resources): a table per source, a chart per flag."""
    e = html.escape
    columns = ("period", "articles", "short_rate", "missing_date_rate", "missing_title_rate", "duplicate_rate",
               "untagged_rate", "dead_letter_rate", "median_words", "removed_share")  # fmt: skip
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>newsflow report</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}.flag{background:#fdd}</style>",
        f"</head><body><h1>newsflow report</h1><p>{e(report['since'])} to {e(report['until'])}, per "
        f"{e(report['period'])}; {len(report['flagged'])} flag(s)</p>",
    ]
    flagged_sources = {f["source"] for f in report["flagged"]}
    for source, periods in report["sources"].items():
        parts.append(f"<h2>{e(source)}</h2>")
        if source in flagged_sources:
            metrics = sorted({f["metric"] for f in report["flagged"] if f["source"] == source})
            parts.extend(
                f"<figure><figcaption>{e(m)}</figcaption>{_chart(periods, m)}</figure>" for m in metrics
            )
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in columns) + "<th>languages</th></tr>")
        for p in periods:
            flags = {f["metric"] for f in p["flags"]}
            cells = "".join(
                f"<td class='{'flag' if c in flags else ''}'>{e(str(p.get(c) if p.get(c) is not None else '-'))}</td>"
                for c in columns
            )
            languages = ", ".join(f"{k} {v:.0%}" for k, v in p["languages"].items())
            parts.append(f"<tr>{cells}<td>{e(languages)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
