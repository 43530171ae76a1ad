"""The `newsflow` command line: run the pipeline embedded, feed and run it distributed, inspect it."""

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas import RawArticle, StageMessage, StoredArticle
from workers.readers import Record, read_inputs

app = typer.Typer(
    name="newsflow",
    help=(
        "News ingestion: raw scraped pages → clean → dedup → tag → store.\n\n"
        "Embedded: `newsflow run FILES` processes in-process into SQLite, no servers.\n"
        "Distributed: `newsflow enqueue FILES` feeds Redis; `newsflow worker` consumes it into PostgreSQL."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: docstring paragraphs are rewrapped to the terminal
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Paths = Annotated[
    list[str],
    typer.Argument(
        help="Files or directories (.txt, .html, .htm, .jsonl, .json, optionally .gz); '-' reads JSON lines on stdin.",
        show_default=False,
    ),
]
SourceOpt = Annotated[
    str, typer.Option("--source", help="Source name for .txt/.html files (JSON lines carry their own).")
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: NEWSFLOW_DATABASE_URL, else sqlite:///newsflow.db)."),
]
TOP_ENTITIES = 4

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line) instead of a table.")]


def _settings(db: str | None = None) -> Any:
    from workers.logging import configure_logging
    from workers.settings import Settings, get_settings

    settings = get_settings()
    if db is not None:
        settings = Settings(**{**settings.model_dump(), "database_url": db})
    configure_logging(settings.log_format, "WARNING" if settings.log_level == "INFO" else settings.log_level)
    return settings


def _valid(records: Iterator[Record], rejected: list[Record]) -> Iterator[RawArticle]:
    """The valid articles; rejected records are reported on stderr as they come."""
    for record in records:
        if record.article is not None:
            yield record.article
        else:
            rejected.append(record)
            for problem in record.problems:
                err.print(
                    f"[red]rejected[/] {record.origin}: {problem.field}: {problem.reason}", highlight=False
                )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _article_json(article: StoredArticle) -> str:
    return article.model_dump_json()


def _article_table(articles: list[StoredArticle]) -> Table:
    table = Table(title=f"{len(articles)} article(s) stored", show_lines=False)
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("words", justify="right")
    table.add_column("duplicate of", no_wrap=True)
    table.add_column("top entities", overflow="fold")
    for a in articles:
        duplicate = f"{a.dedup}: {a.duplicate_of[:8]}" if a.duplicate_of else ""
        top = ", ".join(f"{e.name} ×{e.count}" for e in a.entities[:TOP_ENTITIES])
        table.add_row(a.id[:8], a.title or "(untitled)", str(len(a.text.split())), duplicate, top)
    return table


@app.command()
def run(paths: Paths, json_out: JsonOpt = False, db: DbOpt = None, source: SourceOpt = "local") -> None:
    """Process files in-process into SQLite (embedded mode).

    Prints what was stored: a table, or one JSON object per article with --json.

    No servers needed: the same stages the workers run, one article at a time. The database
    (default ./newsflow.db) is created and migrated on first use. Exit code 1 if any input was
    rejected or any article failed (failures are kept as dead letters for `newsflow retry`).
    """
    from workers import embedded
    from workers.db import repo
    from workers.db.engine import transaction, upgrade
    from workers.pipeline import Context

    settings = _settings(db)
    upgrade(settings.database_url)
    ctx = Context(settings)
    rejected: list[Record] = []
    with _progress() as progress:
        task = progress.add_task("processing", total=None)
        report = embedded.run(
            _valid(read_inputs(paths, source=source), rejected),
            ctx,
            on_done=lambda *_: progress.advance(task),
        )
    with transaction(settings.database_url) as session:
        articles = [a for a in (repo.fetch_article(session, i) for i in report.stored) if a is not None]
    if json_out:
        for article in articles:
            out.print(_article_json(article), markup=False, highlight=False)
    else:
        out.print(_article_table(articles))
    for failure in report.failures:
        err.print(
            f"[red]failed[/] {failure.article_id} at {failure.stage}: {failure.reason}: {failure.error}"
            f" (dead letter {failure.dead_letter_id})",
            highlight=False,
        )
    if rejected or report.failures:
        raise typer.Exit(1)


@app.command()
def enqueue(
    paths: Paths,
    source: SourceOpt = "local",
    high_water: Annotated[
        int | None,
        typer.Option(help="Wait while the clean queue holds more (default NEWSFLOW_HIGH_WATER_MARK)."),
    ] = None,
) -> None:
    """Validate, persist and enqueue raw articles on Redis.

    Distributed mode: the workers (`newsflow worker`) run the pipeline.

    Invalid records are reported as FILE:LINE: FIELD: REASON and skipped; valid ones are still
    enqueued. Waits while the first stage's queue is above the high-water mark. Prints one
    article id per line. Exit code 1 if any record was rejected.
    """
    from workers.celery_app import app as celery_app
    from workers.producer import enqueue as enqueue_articles

    settings = _settings()
    if high_water is not None:
        settings = type(settings)(**{**settings.model_dump(), "high_water_mark": high_water})
    rejected: list[Record] = []
    report = enqueue_articles(
        _valid(read_inputs(paths, source=source), rejected),
        settings,
        celery_app,
        on_sent=typer.echo,
    )
    err.print(
        f"enqueued {len(report.sent)} ({report.new} new), rejected {len(rejected)}"
        + (f", waited {report.waited_s:.1f}s for workers" if report.waited_s else ""),
        highlight=False,
    )
    if rejected:
        raise typer.Exit(1)


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

    Execs `celery -A workers.celery_app worker`.

    Any further options go to celery unchanged (e.g. `--hostname`, `--max-tasks-per-child`).
    """
    from workers import keys
    from workers.pipeline import STAGE_NAMES

    stages = [q.strip().removeprefix("newsflow.") for q in queues.split(",") if q.strip()]
    unknown = sorted(set(stages) - set(STAGE_NAMES))
    if unknown:
        err.print(f"unknown stage(s): {', '.join(unknown)}; stages are {', '.join(STAGE_NAMES)}")
        raise typer.Exit(2)
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
        "-Q", ",".join(keys.queue_name(s) for s in stages), "--loglevel", loglevel,
    ]  # fmt: skip
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    argv += ctx.args
    os.execvp(argv[0], argv)  # noqa: S606 -- replacing this process with celery is the point


@app.command()
def show(
    article_id: Annotated[
        str, typer.Argument(help="Article id (the full 32 characters or a unique prefix).")
    ],
    json_out: JsonOpt = False,
    removed: Annotated[
        bool, typer.Option("--removed", help="Also list what cleaning removed, and why.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Show one stored article, its verdict and entities.

    Metadata, dedup verdict, similarity, reason and cluster, entities and stage versions.
    """
    from sqlalchemy import select

    from schemas import CleanedArticle, DedupVerdict
    from workers.db import repo
    from workers.db.engine import transaction
    from workers.db.models import RawArticleRow

    settings = _settings(db)
    with transaction(settings.database_url) as session:
        ids = session.scalars(
            select(RawArticleRow.id).where(RawArticleRow.id.startswith(article_id)).limit(2)
        ).all()
        if len(ids) != 1:
            err.print(f"{'no' if not ids else 'more than one'} article matches {article_id!r}")
            raise typer.Exit(1)
        article = repo.fetch_article(session, ids[0])
        cleaned = repo.load_result(session, ids[0], "clean", CleanedArticle)
        verdict = repo.load_result(session, ids[0], "dedup", DedupVerdict)
    if json_out:
        data: dict[str, Any] = (
            json.loads(article.model_dump_json()) if article else {"id": ids[0], "stored": False}
        )
        if verdict is not None:
            data["verdict"] = json.loads(verdict.model_dump_json())
        if removed and cleaned is not None:
            data["removed"] = [r.model_dump() for r in cleaned.removed]
        out.print(json.dumps(data, ensure_ascii=False), markup=False, highlight=False)
        return
    if article is None:
        err.print(f"article {ids[0]} is not stored (yet); see `newsflow status` for dead letters")
        raise typer.Exit(1)
    out.print(f"[bold]{article.title or '(untitled)'}[/]", highlight=False)
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
        ("versions", ", ".join(f"{k}={v}" for k, v in article.versions.items())),
    ):
        if value:
            out.print(f"[dim]{label:>10}[/] {value}", highlight=False)
    out.print()
    out.print(article.text, markup=False, highlight=False)
    if article.entities:
        table = Table(title="entities")
        for column in ("name", "label", "count", "first mentions"):
            table.add_column(column)
        for e in article.entities:
            table.add_row(
                e.name, e.label, str(e.count), ", ".join(f"{m.start}-{m.end}" for m in e.mentions[:5])
            )
        out.print(table)
    if removed and cleaned is not None:
        table = Table(title="removed by cleaning")
        table.add_column("reason")
        table.add_column("text", overflow="fold")
        for r in cleaned.removed:
            table.add_row(r.reason, r.text)
        out.print(table)


@app.command()
def status(json_out: JsonOpt = False, db: DbOpt = None) -> None:
    """Queue depths, stored articles and dead letters.

    Queue depths if Redis answers, articles by dedup verdict, open dead letters by stage and reason.
    """
    import redis

    from workers.db import repo
    from workers.db.engine import transaction
    from workers.pipeline import STAGE_NAMES
    from workers.producer import queue_depth

    settings = _settings(db)
    with transaction(settings.database_url) as session:
        figures = repo.counts(session)
    queues: dict[str, int | None] = {}
    try:
        client = redis.Redis.from_url(settings.broker_url.unicode_string(), socket_connect_timeout=2)
        queues = {stage: queue_depth(client, stage) for stage in STAGE_NAMES}
    except redis.exceptions.RedisError:
        queues = dict.fromkeys(STAGE_NAMES)
    figures = {"queues": queues, **figures}
    if json_out:
        out.print(json.dumps(figures), markup=False, highlight=False)
        return
    table = Table(title="newsflow status", show_header=False)
    for stage, depth in queues.items():
        table.add_row(f"queue {stage}", "unreachable" if depth is None else str(depth))
    table.add_row("raw articles", str(figures["raw_articles"]))
    table.add_row("articles stored", str(figures["articles"]))
    for verdict, n in sorted(figures["articles_by_verdict"].items()):
        table.add_row(f"  {verdict}", str(n))
    table.add_row("dead letters (open)", str(figures["dead_letters"]))
    for row in figures["dead_letters_by_stage"]:
        table.add_row(f"  {row['stage']}: {row['reason']}", str(row["count"]))
    out.print(table)


@app.command()
def schema(
    model: Annotated[
        str, typer.Argument(help="raw (what producers submit), message, cleaned, verdict, tagged or stored.")
    ] = "raw",
) -> None:
    """Print a boundary's JSON Schema.

    `raw` (the default) is the contract for producers in any language.
    """
    from schemas import CleanedArticle, DedupVerdict, TaggedArticle

    models: dict[str, Any] = {
        "raw": RawArticle,
        "message": StageMessage,
        "cleaned": CleanedArticle,
        "verdict": DedupVerdict,
        "tagged": TaggedArticle,
        "stored": StoredArticle,
    }
    if model not in models:
        err.print(f"unknown model {model!r}; one of {', '.join(models)}")
        raise typer.Exit(2)
    out.print(json.dumps(models[model].model_json_schema(), indent=2), markup=False, highlight=False)


@app.command("clean")
def clean_command(paths: Paths, json_out: JsonOpt = False, source: SourceOpt = "local") -> None:
    """Run the clean stage alone on files; store nothing.

    Prints, per input, its path (and URL), title, metadata and text.
    """
    from workers.errors import PermanentError
    from workers.ids import article_id
    from workers.stages import clean as clean_stage

    _settings()
    failed = False
    for record in read_inputs(paths, source=source):
        if record.article is None:
            failed = True
            for problem in record.problems:
                err.print(
                    f"[red]rejected[/] {record.origin}: {problem.field}: {problem.reason}", highlight=False
                )
            continue
        try:
            cleaned = clean_stage.clean(record.article, article_id(record.article))
        except PermanentError as exc:
            failed = True
            err.print(f"[red]no article[/] {record.origin}: {exc.reason}: {exc}", highlight=False)
            continue
        if json_out:
            data = {"path": record.origin, "url": record.article.url, **json.loads(cleaned.model_dump_json())}
            out.print(json.dumps(data, ensure_ascii=False), markup=False, highlight=False)
            continue
        out.rule(record.origin + (f"  {record.article.url}" if record.article.url else ""))
        out.print(f"[bold]{cleaned.title or '(untitled)'}[/]", highlight=False)
        for label in (
            "published_at",
            "updated_at",
            "authors",
            "dateline",
            "credits",
            "section",
            "site_name",
            "language",
        ):
            value = getattr(cleaned, label)
            if value:
                out.print(f"[dim]{label:>12}[/] {', '.join(value) if isinstance(value, tuple) else value}")
        out.print(f"[dim]{'removed':>12}[/] {len(cleaned.removed)} block(s)")
        out.print(cleaned.text, markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("tag")
def tag_command(
    file: Annotated[str, typer.Argument(help="A plain-text file, or '-' for stdin.")],
    json_out: JsonOpt = False,
) -> None:
    """Tag plain text and print the entities; store nothing.

    Offsets are into the text exactly as given.
    """
    from workers.stages import tag as tag_stage

    settings = _settings()
    text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8", errors="replace")
    nlp = tag_stage.load_model(settings.tagger_model)
    entities = tag_stage.tag_text(text, nlp)
    if json_out:
        out.print(
            json.dumps([e.model_dump() for e in entities], ensure_ascii=False), markup=False, highlight=False
        )
        return
    table = Table(title=f"{len(entities)} entities")
    for column in ("name", "label", "count", "first", "mentions"):
        table.add_column(column)
    for e in entities:
        table.add_row(
            e.name, e.label, str(e.count), str(e.first_position), ", ".join(m.text for m in e.mentions[:4])
        )
    out.print(table)


@app.command()
def retry(
    ids: Annotated[
        list[int] | None,
        typer.Argument(help="Dead-letter ids (default: all open ones matching the filters)."),
    ] = None,
    stage: Annotated[str | None, typer.Option(help="Only dead letters of this stage.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason code.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 1000,
    embedded_mode: Annotated[
        bool, typer.Option("--embedded", help="Replay in-process instead of enqueuing to the workers.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be retried; change nothing.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Replay dead letters from the stage that failed.

    Enqueued to the workers, or run in-process with --embedded.

    Each replayed dead letter is closed; a new failure opens a new one. Idempotent stages make
    replaying an article that meanwhile succeeded harmless.
    """
    from workers.db import repo
    from workers.db.engine import transaction

    settings = _settings(db)
    with transaction(settings.database_url) as session:
        letters = repo.open_dead_letters(session, stage=stage, reason=reason, ids=ids or (), limit=limit)
        replayable = [(d.id, d.stage, d.article_id, d.trace_id) for d in letters if d.article_id]
        unreplayable = [d.id for d in letters if not d.article_id]
    for dead_id in unreplayable:
        err.print(
            f"dead letter {dead_id} has no article id (an invalid message); nothing to replay",
            highlight=False,
        )
    if dry_run or not replayable:
        for dead_id, failed_stage, article, _ in replayable:
            typer.echo(f"{dead_id}\t{failed_stage}\t{article}")
        err.print(f"{len(replayable)} dead letter(s) to retry", highlight=False)
        return
    from workers.ids import new_trace_id
    from workers.ops import Replayer

    replayer = Replayer(settings, embedded=embedded_mode)
    for dead_id, failed_stage, article, trace in replayable:
        msg = StageMessage(article_id=article, trace_id=trace or new_trace_id())
        with transaction(settings.database_url) as session:
            repo.mark_retried(session, [dead_id])
        replayer.replay(msg, failed_stage)
        typer.echo(f"{dead_id}\t{failed_stage}\t{article}")
    err.print(f"retried {len(replayable)}, failed again {replayer.failed}", highlight=False)
    if replayer.failed:
        raise typer.Exit(1)


def _ids_from(args: list[str]) -> Iterator[str]:
    """Article ids from the arguments, or one per line on stdin when the only argument is '-'."""
    source: Iterable[str] = sys.stdin if args == ["-"] else args
    for line in source:
        if line.strip():
            yield line.strip()


@app.command()
def reprocess(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Article ids, or '-' to read them from stdin (one per line).")
    ] = None,
    start: Annotated[
        str, typer.Option("--from", help="Stage to restart from: clean, dedup, tag or store.")
    ] = "clean",
    stale: Annotated[
        bool, typer.Option("--stale", help="Select articles whose --from stage was made by an older version.")
    ] = False,
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
    db: DbOpt = None,
) -> None:
    """Run stored articles again from one stage.

    For example after a new cleaner version.

    Select by ids (arguments or stdin), by --stale (the stage's record was made by another version
    than the running code's) or --all. Works in chunks in id order and prints each id as it goes,
    so an interrupted run resumes with --after LAST_ID; enqueuing waits while the stage's queue is
    above the high-water mark. Stages are idempotent, so reprocessing an up-to-date article is harmless.
    """
    from workers.ids import new_trace_id
    from workers.ops import Replayer, select_articles
    from workers.pipeline import stages_from

    settings = _settings(db)
    try:
        stages_from(start)
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(2) from exc
    if bool(ids) + stale + all_articles != 1:
        err.print("choose exactly one of: ids (or -), --stale, --all")
        raise typer.Exit(2)
    if stale and start == "store":
        err.print("store keeps no stage record to compare; reprocess --from tag --stale, or pass ids")
        raise typer.Exit(2)
    selected = (
        (i for i in _ids_from(ids) if i > after)
        if ids
        else select_articles(settings, start=start, stale=stale, after=after, chunk=chunk)
    )
    replayer = Replayer(settings, embedded=embedded_mode)
    count = invalid = 0
    with _progress() as progress:
        task = progress.add_task(f"reprocess from {start}", total=None)
        for article in selected:
            if limit is not None and count >= limit:
                break
            try:
                msg = StageMessage(article_id=article, trace_id=new_trace_id())
            except ValueError:
                err.print(f"not an article id: {article!r}", highlight=False)
                invalid += 1
                continue
            if not dry_run:
                replayer.replay(msg, start)
            typer.echo(article)
            count += 1
            progress.advance(task)
    verb = "selected" if dry_run else "reprocessed" if embedded_mode else "enqueued"
    err.print(f"{verb} {count} from {start}, failed {replayer.failed + invalid}", highlight=False)
    if replayer.failed or invalid:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    db: DbOpt = None, revision: Annotated[str, typer.Option(help="Target revision.")] = "head"
) -> None:
    """Create or migrate the database schema (Alembic); safe to run again."""
    from workers.db.engine import upgrade

    settings = _settings(db)
    upgrade(settings.database_url, revision)
    err.print(f"database at {revision}", highlight=False)


# --- runtime: `newsflow reconcile` (logic in workers/reconcile.py)
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
        bool, typer.Option("--loop", help="Run a pass every --every seconds until stopped.")
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
    Prints ARTICLE_ID<TAB>STAGE per article (or JSON lines). One pass at a time (a PostgreSQL lock).
    """
    from workers import reconcile as reconciler

    settings = _settings(db)
    if loop:
        err.print("reconciler loop started", highlight=False)
        reconciler.loop(settings, every=every or settings.reconcile_every, older_than=older_than)
        return

    def show_item(item: Any, ok: bool) -> None:
        if json_out:
            typer.echo(
                json.dumps({"article_id": item.article_id, "stage": item.stage, "sent": ok and not dry_run})
            )
        else:
            typer.echo(f"{item.article_id}\t{item.stage}")
        progress.advance(task)

    with _progress() as progress:
        task = progress.add_task("reconcile", total=None)
        report = reconciler.reconcile(
            settings, older_than=older_than, dry_run=dry_run, limit=limit, on_item=show_item
        )
    if report.locked_out:
        err.print("another reconciler pass is running; nothing done", highlight=False)
        return
    by_stage = ", ".join(f"{k} {v}" for k, v in report.by_stage().items()) or "none"
    verb = "found" if dry_run else "re-enqueued"
    err.print(
        f"{verb} {len(report.found) if dry_run else report.sent} stuck (from: {by_stage}), failed {report.failed}",
        highlight=False,
    )
    if report.failed:
        raise typer.Exit(1)


# --- deploy: thin wrappers; the logic is in workers/health.py and workers/metrics.py


@app.command()
def health(
    json_out: JsonOpt = False,
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Stages whose needs to check (tag adds the tagger model).")
    ] = "clean,dedup,tag,store",
    load_model: Annotated[
        bool, typer.Option("--load-model", help="Load the tagger model (slow) instead of finding it.")
    ] = False,
) -> None:
    """Check the database (schema at head), Redis and the tagger model; exit 1 if any fails.

    For readiness and liveness probes; a worker runs the same checks before it starts.
    """
    from workers import health as checks

    settings = _settings()
    stages = [q.strip().removeprefix("newsflow.") for q in queues.split(",") if q.strip()]
    text, code = checks.report(checks.check_all(settings, stages, load_model=load_model), as_json=json_out)
    out.print(text, markup=False, highlight=False)
    raise typer.Exit(code)


@app.command("metrics")
def metrics_command(
    port: Annotated[int, typer.Option(help="Port to serve /metrics on.")] = 9809,
    address: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0 in a container).")
    ] = "127.0.0.1",
) -> None:
    """Serve the pipeline's gauges for Prometheus.

    Queue depths (waiting, unacked, scheduled retries), open dead letters, stored articles and
    producer counts; the workers serve their own stage counters on NEWSFLOW_METRICS_PORT.
    """
    from workers import metrics

    metrics.serve_exporter(_settings(), port=port, address=address)


if __name__ == "__main__":
    app()
