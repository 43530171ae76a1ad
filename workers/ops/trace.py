"""One article's journey from durable records: `newsflow trace ID` (never from logs or Flower).

Raw arrival (`raw_articles`), each stage's attempts (`stage_journal`: start, end, duration, attempt,
worker, version, error), the stage's current record (`stage_results`: version, when), the dedup
verdict, the tag stage's language (or why the article is untagged), the stored article (or its end as
`not_article`: a listing, product, forum... page, with its kind), its dead
letters with operator notes, and replays (retry, reprocess).
"""

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from workers.db.models import (
    ArticleRow,
    DeadLetterRow,
    NotArticleRow,
    RawArticleRow,
    StageJournalRow,
    StageResultRow,
)
from workers.runtime.pipeline import STAGE_NAMES

ACTIONS = ("retried", "discarded", "reprocess", "reconciled", "superseded")
"""Journal events that are not stage attempts: operator actions and the reconciler's re-sends."""


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def trace(session: Session, article_id: str) -> dict[str, Any] | None:
    """Everything recorded about one article, or None if no raw article has this id. Read-only."""
    from workers.ops.dead_letters import dead_letter_dict, notes_for, without_class

    raw = session.get(RawArticleRow, article_id)
    if raw is None:
        return None
    journal = session.scalars(
        select(StageJournalRow).where(StageJournalRow.article_id == article_id).order_by(StageJournalRow.id)
    ).all()
    results = {
        r.stage: r
        for r in session.scalars(select(StageResultRow).where(StageResultRow.article_id == article_id))
    }
    letters = session.scalars(
        select(DeadLetterRow).where(DeadLetterRow.article_id == article_id).order_by(DeadLetterRow.id)
    ).all()
    notes = notes_for(session, [d.id for d in letters])
    article = session.get(ArticleRow, article_id)
    not_article = session.get(NotArticleRow, article_id)
    stages = []
    for stage in STAGE_NAMES:
        attempts = [
            {
                "event": j.event,
                "attempt": j.attempt,
                "started_at": _iso(j.started_at),
                "ended_at": _iso(j.ended_at),
                "duration_ms": j.duration_ms,
                "worker": j.worker,
                "version": j.version,
                "error_class": j.error_class,
                "error": without_class(j.error_class, j.error),
                **(j.detail or {}),
            }
            for j in journal
            if j.stage == stage and j.event not in ACTIONS
        ]
        record = results.get(stage)
        entry: dict[str, Any] = {
            "stage": stage,
            "attempts": attempts,
            "runs": len(attempts),
            "version": record.version if record else None,
            "recorded_at": _iso(record.updated_at) if record else None,
        }
        if record is None and article is not None and stage in (article.versions or {}):
            # The store stage's record is the article row itself: its version is among the article's.
            entry["version"] = article.versions[stage]
            entry["recorded_at"] = _iso(article.stored_at)
        if stage == "dedup" and record is not None:
            verdict = json.loads(record.output)
            entry["verdict"] = verdict.get("kind")
            entry["duplicate_of"] = verdict.get("duplicate_of")
        if stage == "tag" and record is not None:
            tagged = json.loads(record.output)
            entry["language"] = tagged.get("language")
            entry["untagged"] = tagged.get("untagged")
            entry["untagged_from"] = tagged.get("untagged_from")
        stages.append(entry)
    return {
        "article_id": article_id,
        "source": raw.source,
        "url": raw.url,
        "trace_id": raw.trace_id,
        "received_at": _iso(raw.received_at),
        "stages": stages,
        "stored": None
        if article is None
        else {
            "stored_at": _iso(article.stored_at),
            "verdict": article.status,
            "cluster_id": article.cluster_id,
            "untagged": article.untagged,
        },
        "not_article": None
        if not_article is None
        else {
            "kind": not_article.kind,
            "confidence": not_article.confidence,
            "model": not_article.model,
            "decided_at": _iso(not_article.decided_at),
        },
        "dead_letters": [
            {**dead_letter_dict(d, raw.source, notes.get(d.id, [])), "traceback": d.traceback}
            for d in letters
        ],
        "replays": [
            {"event": j.event, "stage": j.stage, "at": _iso(j.ended_at), **(j.detail or {})}
            for j in journal
            if j.event in ACTIONS
        ],
    }


def timeline(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(time, what, detail) rows in time order, for the terminal view."""
    rows: list[tuple[str, str, str]] = [(data["received_at"] or "", "received", data["source"])]
    for stage in data["stages"]:
        for a in stage["attempts"]:
            took = f"{a['duration_ms']} ms" if a["duration_ms"] is not None else ""
            what = f"{stage['stage']} #{a['attempt'] or '?'} {a['event']}"
            detail = ", ".join(
                x
                for x in (
                    took,
                    a["version"] or "",
                    f"{a['error_class']}: {a['error']}" if a["error_class"] else "",
                    a["worker"] or "",
                )
                if x
            )
            rows.append((a["ended_at"] or "", what, detail))
    rows.extend(
        (
            d["first_failed_at"] or "",
            f"dead letter {d['id']} at {d['stage']}",
            f"{d['reason']}: {d['message']}",
        )
        for d in data["dead_letters"]
    )
    rows.extend(
        (r["at"] or "", f"{r['event']} from {r['stage']}", r.get("note", "") or "") for r in data["replays"]
    )
    if data.get("not_article"):
        page = data["not_article"]
        rows.append(
            (
                page["decided_at"] or "",
                "not_article",
                f"{page['kind']} ({page['confidence']}, {page['model']})",
            )
        )
    if data["stored"]:
        stored = data["stored"]
        untagged = f", untagged: {stored['untagged']}" if stored.get("untagged") else ""
        rows.append((stored["stored_at"] or "", "stored", f"{stored['verdict']}{untagged}"))
    return [
        (_shown(when), what, detail)
        for when, what, detail in sorted(rows, key=lambda row: parse_time(row[0]))
    ]


def parse_time(value: str) -> datetime:
    """An ISO time as an aware datetime (UTC when it names no zone); `datetime.min` (UTC) when unreadable."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shown(value: str) -> str:
    """`2026-03-14 09:30:05.123` (UTC, milliseconds) for an ISO time; the value itself otherwise."""
    parsed = parse_time(value)
    if parsed.year == 1:
        return value
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
