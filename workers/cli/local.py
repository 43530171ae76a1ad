"""Embedded-mode commands, no servers: `run`, `clean`, `tag`, `schema`."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from schemas import RawArticle, StageMessage, StoredArticle
from workers.cli.base import (
    EXIT_PARTIAL,
    EXIT_USAGE,
    DbOpt,
    IgnoreUnknownOpt,
    JsonOpt,
    Paths,
    SourceOpt,
    app,
    err,
    fail,
    out,
    plain,
    print_json,
    print_text,
    progress,
    report_rejected,
    require_paths,
    settings_for,
    valid,
)
from workers.ingest.archives import read_inputs
from workers.ingest.readers import Record

TOP_ENTITIES = 4


def skipped_line(skipped: dict[str, int]) -> str | None:
    """'skipped: revisit 2, unsupported_file 1' for what the readers passed over, or None."""
    if not skipped:
        return None
    return "skipped: " + ", ".join(f"{kind} {n}" for kind, n in sorted(skipped.items()))


def article_table(articles: list[StoredArticle]) -> Table:
    """The table `run` prints: id, title, words, duplicate of, top entities (stored text escaped)."""
    table = Table(title=f"{len(articles)} article(s) stored", show_lines=False)
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("title", overflow="fold")
    table.add_column("words", justify="right")
    table.add_column("duplicate of", no_wrap=True)
    table.add_column("top entities", overflow="fold")
    for a in articles:
        duplicate = f"{a.dedup}: {a.duplicate_of[:8]}" if a.duplicate_of else ""
        top = ", ".join(f"{e.name} ×{e.count}" for e in a.entities[:TOP_ENTITIES])
        table.add_row(
            a.id[:8], plain(a.title or "(untitled)"), str(len(a.text.split())), duplicate, plain(top)
        )
    return table


@app.command()
def run(
    paths: Paths,
    json_out: JsonOpt = False,
    db: DbOpt = None,
    source: SourceOpt = "local",
    ignore_unknown: IgnoreUnknownOpt = False,
    follow_symlinks: Annotated[
        bool,
        typer.Option(
            "--follow-symlinks",
            help="Read files through symlinks that lead out of an input directory (skipped by default, and said).",
        ),
    ] = False,
) -> None:
    """Process files in-process into SQLite (embedded mode).

    Prints what was stored: a table, or one JSON object per article with --json.

    No servers needed: the same stages the workers run, in micro-batches. Reads every format
    `enqueue` and `backfill` read: pages, text dumps, JSON lines, WARC and ARC archives, directories.
    An article repeated in the input is run once. The database (default ./newsflow.db) is created
    and migrated on first use. Exit code 1 if any input was rejected or any article failed
    (failures are kept as dead letters for `newsflow retry`).
    """
    from workers.db import repo
    from workers.db.engine import transaction, upgrade
    from workers.runtime import embedded
    from workers.runtime.pipeline import Context

    require_paths(paths)
    settings = settings_for(db)
    upgrade(settings.database_url)
    ctx = Context(settings)
    rejected: list[Record] = []
    skipped: dict[str, int] = {}
    with progress() as bar:
        task = bar.add_task("processing", total=None)
        report = embedded.run(
            valid(
                read_inputs(
                    paths,
                    source=source,
                    ignore_unknown=ignore_unknown,
                    skipped=skipped,
                    follow_symlinks=follow_symlinks,
                    on_skipped=lambda item: err.print(
                        plain(f"newsflow run: skipped {item.origin}: {item.problems[0].reason}"),
                        highlight=False,
                    ),
                ),
                rejected,
            ),
            ctx,
            on_done=lambda *_: bar.advance(task),
        )
    with transaction(settings.database_url) as session:
        articles = [a for a in (repo.fetch_article(session, i) for i in report.stored) if a is not None]
    if json_out:
        for article in articles:
            print_json(json.loads(article.model_dump_json()))
    else:
        out.print(article_table(articles))
    for failure in report.failures:
        err.print(
            Text("failed ", style="red")
            + plain(
                f"{failure.article_id} at {failure.stage}: {failure.reason}: {failure.error}"
                f" (dead letter {failure.dead_letter_id})"
            ),
            highlight=False,
        )
    if report.not_articles:  # pages judged listing, product, forum...: recorded, not stored (`status`)
        err.print(
            plain(f"newsflow run: {len(report.not_articles)} page(s) not articles, not stored"),
            highlight=False,
        )
    line = skipped_line(skipped)
    if line is not None:
        err.print(plain(f"newsflow run: {line}"), highlight=False)
    if rejected or report.failures:
        raise typer.Exit(EXIT_PARTIAL)


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
        fail(f"unknown model {model!r}; one of {', '.join(models)}")
    out.print(json.dumps(models[model].model_json_schema(), indent=2), markup=False, highlight=False)


@app.command("clean")
def clean_command(paths: Paths, json_out: JsonOpt = False, source: SourceOpt = "local") -> None:
    """Run the clean stage alone on files; store nothing.

    Prints, per input, its path (and URL), title, metadata and text.
    """
    from workers.core.errors import PermanentError
    from workers.core.ids import article_id
    from workers.stages import clean as clean_stage

    settings_for()
    failed = False
    for record in read_inputs(paths, source=source):
        if record.article is None:
            failed = True
            report_rejected(record)
            continue
        try:
            cleaned = clean_stage.clean(record.article, article_id(record.article))
        except PermanentError as exc:
            failed = True
            err.print(
                Text("no article ", style="red") + plain(f"{record.origin}: {exc.reason}: {exc}"),
                highlight=False,
            )
            continue
        if json_out:
            print_json(
                {"path": record.origin, "url": record.article.url, **json.loads(cleaned.model_dump_json())}
            )
            continue
        out.rule(plain(record.origin + (f"  {record.article.url}" if record.article.url else "")))
        out.print(plain(cleaned.title or "(untitled)", style="bold"))
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
                shown = ", ".join(value) if isinstance(value, tuple) else value
                out.print(Text(f"{label:>12} ", style="dim") + plain(shown))
        out.print(Text(f"{'removed':>12} ", style="dim") + Text(f"{len(cleaned.removed)} block(s)"))
        print_text(cleaned.text)
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("tag")
def tag_command(
    file: Annotated[str, typer.Argument(help="A plain-text file, or '-' for stdin.")],
    json_out: JsonOpt = False,
    language: Annotated[
        str | None,
        typer.Option(
            "--language",
            help="Language of the text (en, fr, ...): tag it with that language's model from "
            "NEWSFLOW_TAGGER_MODELS. Default: detected from the text (English when unclear).",
        ),
    ] = None,
    old_language: Annotated[
        str | None,
        typer.Option("-l", hidden=True, help="Deprecated: --language (-l is the log level of `worker`)."),
    ] = None,
) -> None:
    """Tag plain text and print the entities; store nothing.

    Offsets are into the text exactly as given. At most NEWSFLOW_MAX_ENTITIES entities (the most
    salient); only the first 100,000 characters are tagged, and a note on stderr says so. A text in a
    language without a model prints no entities and the reason (stderr).
    """
    from workers.stages import tag as tag_stage
    from workers.stages.tagging import languages

    if old_language is not None:
        err.print(
            "newsflow tag: -l is deprecated and will be removed; use --language (-l is the log level of "
            "`newsflow worker`)",
            markup=False,
            highlight=False,
        )
        language = language or old_language
    settings = settings_for()
    if file == "-":
        text = sys.stdin.read()
    else:
        path = Path(file)
        if not path.is_file():
            fail(
                f"{file}: {'is a directory' if path.is_dir() else 'no such file'}; give a text file or '-'",
                EXIT_USAGE,
            )
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            fail(f"{file}: cannot read: {exc.strerror or exc}", EXIT_USAGE)
    models = settings.tagger_model_map
    if language is not None:
        lang = languages.code(language)
        if lang is None or lang not in models:
            fail(
                f"untagged: no model for {language!r}; models: {', '.join(sorted(models))} "
                "(NEWSFLOW_TAGGER_MODELS, e.g. de=de_core_news_sm)",
                EXIT_USAGE,
            )
    else:
        choice = languages.choose(None, text, models)
        lang = choice.language if choice.untagged is None else None
        if choice.language is not None and choice.untagged is not None:  # clearly a language without a model
            err.print(f"untagged: {choice.untagged}", markup=False, highlight=False)
            if json_out:
                print_json([])
            return
        if lang is None:
            lang = "en"
            err.print(
                f"{choice.untagged}: tagged as 'en' (--language to choose)", markup=False, highlight=False
            )
    nlp = tag_stage.load_model(models[lang])
    entities = tag_stage.tag_text(text, nlp, max_entities=settings.max_entities)
    if len(text) > tag_stage.MAX_TAG_CHARS:
        err.print(
            f"untagged: text past character {tag_stage.MAX_TAG_CHARS:,} ({len(text) - tag_stage.MAX_TAG_CHARS:,} "
            "characters) is not read by the model",
            markup=False,
            highlight=False,
        )
    if json_out:
        print_json([e.model_dump() for e in entities])
        return
    table = Table(title=f"{len(entities)} entities")
    for column in ("name", "label", "count", "first", "mentions"):
        table.add_column(column)
    for e in entities:
        table.add_row(
            plain(e.name),
            e.label,
            str(e.count),
            str(e.first_position),
            plain(", ".join(m.text for m in e.mentions[:4])),
        )
    out.print(table)
