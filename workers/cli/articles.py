"""Looking at one article: `show` (what was stored) and `trace` (how it got there)."""

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from workers.cli.base import (
    EXIT_PARTIAL,
    DbOpt,
    JsonOpt,
    app,
    fail,
    out,
    plain,
    print_json,
    print_text,
    settings_for,
)

IdArg = Annotated[str, typer.Argument(help="Article id (the full 32 characters or a unique prefix).")]


def resolve_id(session: Any, article_id: str) -> str:
    """The one raw article id starting with `article_id`; exits 1 when none or several match."""
    from sqlalchemy import select

    from workers.db.models import RawArticleRow

    ids = session.scalars(
        select(RawArticleRow.id).where(RawArticleRow.id.startswith(article_id, autoescape=True)).limit(2)
    ).all()
    if len(ids) != 1:
        fail(f"{'no' if not ids else 'more than one'} article matches {article_id!r}", EXIT_PARTIAL)
    return str(ids[0])


@app.command()
def show(
    article_id: IdArg,
    json_out: JsonOpt = False,
    removed: Annotated[
        bool, typer.Option("--removed", help="Also list what cleaning removed, and why.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Show one stored article, its verdict and entities.

    Metadata, dedup verdict, similarity, reason and cluster, how it was tagged (the language and
    model, or why not: "untagged: no model for 'de'"), entities and stage versions.
    """
    from schemas import CleanedArticle, DedupVerdict, TaggedArticle
    from workers.db import repo
    from workers.db.engine import transaction
    from workers.ops.changes import article_document, tagging_note

    settings = settings_for(db)
    with transaction(settings.database_url) as session:
        found = resolve_id(session, article_id)
        if json_out:
            print_json(article_document(session, found, removed=removed))
            return
        article = repo.fetch_article(session, found)
        cleaned = repo.load_result(session, found, "clean", CleanedArticle)
        verdict = repo.load_result(session, found, "dedup", DedupVerdict)
        tagged = repo.load_result(session, found, "tag", TaggedArticle)
    tagging = tagging_note(tagged)
    if article is None:
        fail(
            f"article {found} is not stored (yet); `newsflow trace {found[:12]}` shows where it is",
            EXIT_PARTIAL,
        )
    out.print(plain(article.title or "(untitled)", style="bold"))
    for label, value in (
        ("id", article.id),
        ("source", article.source),
        ("url", article.url),
        ("published", article.published_at),
        ("language", article.language),
        ("dateline", article.dateline),
        ("credits", "; ".join(article.credits)),
        ("authors", ", ".join(article.authors)),
        ("verdict", f"{article.dedup} of {article.duplicate_of}" if article.duplicate_of else article.dedup),
        ("similarity", f"{verdict.similarity:.3f}" if verdict and verdict.similarity is not None else None),
        ("reason", verdict.reason if verdict else None),
        ("cluster", article.cluster_id),
        ("tagging", tagging),
        ("versions", ", ".join(f"{k}={v}" for k, v in article.versions.items())),
    ):
        if value:
            out.print(Text(f"{label:>10} ", style="dim") + plain(value))
    out.print()
    print_text(article.text)
    if article.entities:
        table = Table(title="entities")
        for column in ("name", "label", "count", "first mentions"):
            table.add_column(column)
        for e in article.entities:
            table.add_row(
                plain(e.name), e.label, str(e.count), ", ".join(f"{m.start}-{m.end}" for m in e.mentions[:5])
            )
        out.print(table)
    if removed and cleaned is not None:
        table = Table(title="removed by cleaning")
        table.add_column("reason")
        table.add_column("text", overflow="fold")
        for r in cleaned.removed:
            table.add_row(plain(r.reason), plain(r.text))
        out.print(table)


@app.command()
def trace(article_id: IdArg, json_out: JsonOpt = False, db: DbOpt = None) -> None:
    """One article's journey from the database: arrival, each stage's attempts, dead letters, replays.

    Per stage: start, end, duration, attempt, worker, version and error of every attempt, the
    version of the current record and the dedup verdict; its end as `not_article` (a listing,
    product, forum... page: kind and confidence); then dead letters (with notes), retries
    and reprocess runs. Read from durable records (the stage journal), not from logs.
    """
    from workers.db.engine import transaction
    from workers.ops.trace import timeline
    from workers.ops.trace import trace as trace_article

    settings = settings_for(db)
    with transaction(settings.database_url) as session:
        found = resolve_id(session, article_id)
        data = trace_article(session, found)
    assert data is not None  # resolve_id found the raw article
    if json_out:
        print_json(data)
        return
    out.print(
        Text(f"article {data['article_id']}", style="bold")
        + plain(f"  {data['source']}  {data['url'] or ''}")
    )
    stages = Table(title="stages")
    for column in ("stage", "runs", "version", "recorded", "verdict"):
        stages.add_column(column)
    for s in data["stages"]:
        stages.add_row(
            s["stage"],
            str(s["runs"]),
            plain(s["version"] or "-"),
            (s["recorded_at"] or "-")[:19],
            plain(s.get("verdict") or ""),
        )
    out.print(stages)
    events = Table(title="timeline (UTC)")
    for column in ("when", "what", "detail"):
        events.add_column(column, overflow="fold")
    for when, what, detail in timeline(data):
        events.add_row(when[:23], plain(what), plain(detail[:200]))
    out.print(events)
