"""The pipeline, declared once: the stage order and the step each stage runs.

A step is what a task does around its pure stage function: load the article's input records,
call the stage, persist its output record (with the stage version), all keyed by article id.
The Celery tasks (`workers.runtime.tasks`) and the embedded runner (`workers.runtime.embedded`) both call these
steps, so the two modes share one code path. Every step is idempotent: running it again for the
same article leaves the same rows.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import redis.exceptions
import sqlalchemy.exc
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from schemas import CleanedArticle, DedupVerdict, RawArticle, StageMessage, TaggedArticle
from workers.core.errors import TransientError
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction
from workers.db.models import ArticleRow, StageResultRow
from workers.stages import store as store_stage

# The clean, dedup and tag stages import trafilatura, numpy and spaCy (seconds of start-up), so
# each step imports its stage itself: a producer or `newsflow status` never pays for them.

if TYPE_CHECKING:
    from workers.stages.dedup import DedupParams

Outcome = Mapping[str, Any]
"""Small facts a step reports for its summary log line (counts and versions, never text)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What a step needs besides its message: the settings (and through them the database)."""

    settings: Settings

    @property
    def database_url(self) -> str:
        return self.settings.database_url


END = "end"
"""The outcome key of an article that ends at this stage (no later stage runs): its terminal outcome."""
NOT_ARTICLE = "not_article"
"""The terminal outcome of a page the clean stage judged not to be an article (a `not_articles` row)."""


def ends_not_article(cleaned: CleanedArticle, settings: Settings) -> bool:
    """True when the cleaned page is not an article and its kind is not kept (NEWSFLOW_KEEP_PAGE_KINDS)."""
    return cleaned.page_kind not in settings.kept_page_kinds


def ended(outcome: Outcome) -> bool:
    """True when a step's outcome is terminal: the article goes to no later stage."""
    return bool(outcome.get(END))


BatchOutcome = Outcome | Exception
"""Per article of a batch: its outcome, or the exception that failed that article alone."""


def _fatal() -> tuple[type[BaseException], ...]:
    """Errors that fail a whole batch, not one article: infrastructure (retried), the task's time limit, and
    the server's internal errors (a session it ended for idling in a transaction: the batch's transaction
    is gone, so the batch is split and each article's error judged alone)."""
    from billiard.exceptions import SoftTimeLimitExceeded

    return (*TRANSIENT, sqlalchemy.exc.InternalError, SoftTimeLimitExceeded)


def _one(results: Sequence[BatchOutcome]) -> Outcome:
    """The outcome of a batch of one; its article's exception is raised."""
    (result,) = results
    if isinstance(result, Exception):
        raise result
    return result


def _isolated(work: Callable[[], T], fatal: tuple[type[BaseException], ...]) -> T | Exception:
    """Run one article's part of a batch: its exception is returned (it fails that article only)
    unless it is fatal to the whole batch (database or broker down, time limit), which is raised."""
    try:
        return work()
    except fatal:
        raise
    except Exception as exc:
        return exc


def clean_batch(ctx: Context, msgs: Sequence[StageMessage]) -> list[BatchOutcome]:
    """Clean a batch of raw articles, learning their sources' chrome first; records each `clean` result.

    One transaction: one read of the raw articles, one of the sources' line counts, one write of the
    counts and one of the results. An article that cannot be cleaned fails alone. Idempotent.
    """
    from workers.stages import clean as clean_stage

    fatal = _fatal()
    results: list[BatchOutcome] = [{} for _ in msgs]
    with transaction(ctx.database_url) as session:
        inputs = repo.load_inputs(session, [m.article_id for m in msgs], raw=True)
        prepared: list[tuple[int, RawArticle, frozenset[str]]] = []
        for i, msg in enumerate(msgs):
            found = _isolated(
                lambda msg=msg: (raw := inputs.require_raw(msg.article_id), clean_stage.line_keys(raw)),  # type: ignore[misc]
                fatal,
            )
            if isinstance(found, Exception):
                results[i] = found
            else:
                prepared.append((i, *found))
        chrome = repo.learn_chrome(
            session,
            [(raw.source, repo.sighting_id(raw), keys) for i, raw, keys in prepared],
            ctx.settings.chrome_min_articles,
        )
        done: list[tuple[str, str, CleanedArticle]] = []
        not_articles: list[tuple[str, str, str, float | None, str | None, str]] = []
        kept: list[str] = []
        for (i, raw, _), learned in zip(prepared, chrome, strict=True):
            article_id = msgs[i].article_id
            cleaned = _isolated(lambda: clean_stage.clean(raw, article_id, chrome=learned), fatal)  # noqa: B023
            if isinstance(cleaned, Exception):
                results[i] = cleaned
                continue
            done.append((article_id, cleaned.version, cleaned))
            outcome: dict[str, Any] = {
                "version": cleaned.version,
                "chars": len(cleaned.text),
                "removed": len(cleaned.removed),
                "page_kind": cleaned.page_kind,
            }
            if ends_not_article(cleaned, ctx.settings):
                c = cleaned
                not_articles.append(
                    (
                        article_id,
                        raw.source,
                        c.page_kind,
                        c.page_kind_confidence,
                        c.page_kind_model,
                        c.version,
                    )
                )
                outcome |= {END: NOT_ARTICLE, "confidence": c.page_kind_confidence}
            else:
                kept.append(article_id)
            results[i] = outcome
        repo.upsert_results(session, "clean", done)
        repo.record_page_kinds(session, not_articles, kept)
        _CLEAN_BATCHES[0] += 1
        if _CLEAN_BATCHES[0] % PRUNE_EVERY == 0:
            cutoff = datetime.now(UTC) - timedelta(seconds=ctx.settings.chrome_prune_after_s)
            repo.prune_source_lines(session, {raw.source for _, raw, _ in prepared}, cutoff)
    return results


PRUNE_EVERY = 256
"""Clean batches (per process) between two prunes of their sources' lines seen only once."""
_CLEAN_BATCHES = [0]


def clean_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Clean the raw article, learning its source's chrome first; records the `clean` result."""
    return _one(clean_batch(ctx, [msg]))


def dedup_params(settings: Settings) -> "DedupParams":
    """Dedup parameters from the settings."""
    from workers.stages.dedup import DedupParams

    return DedupParams(threshold=settings.dedup_threshold)


def dedup_batch(ctx: Context, msgs: Sequence[StageMessage]) -> list[BatchOutcome]:
    """Decide for each cleaned article whether it repeats an earlier one; records each `dedup` verdict.

    The inputs are read in one query (in the first article's transaction); each article is then decided
    and recorded in a transaction of its own, so its index entry and verdict are atomic and the index's
    locks are held for one decision only. An article that fails rolls back alone. Idempotent.
    """
    from workers.db import dedup_index

    fatal = _fatal()
    params = dedup_params(ctx.settings)
    results: list[BatchOutcome] = [{} for _ in msgs]
    inputs: repo.Inputs | None = None
    sources: dict[str, str] = {}
    for i, msg in enumerate(msgs):
        try:
            with transaction(ctx.database_url) as session:
                if inputs is None:
                    inputs = repo.load_inputs(
                        session, [m.article_id for m in msgs], raw=True, stages=("clean",)
                    )
                    sources = repo.sources_of(session, [m.article_id for m in msgs])
                cleaned = inputs.require(msg.article_id, "clean", CleanedArticle)
                if ends_not_article(cleaned, ctx.settings):  # sent on by hand (reprocess --from dedup)
                    results[i] = {END: NOT_ARTICLE, "page_kind": cleaned.page_kind}
                    continue
                # The raw article's source: dedup learns per source which body lines are its chrome.
                source = sources.get(msg.article_id)
                raw_key = dedup_index.raw_key_of(inputs.raw.get(msg.article_id))
                verdict = dedup_index.ensure_verdict(session, cleaned, params, source=source, raw_key=raw_key)
                repo.upsert_results(session, "dedup", [(msg.article_id, verdict.version, verdict)])
        except fatal:
            raise
        except Exception as exc:
            results[i] = exc
            continue
        if not isinstance(results[i], Exception) and ended(results[i]):  # type: ignore[arg-type]
            continue
        results[i] = {
            "version": verdict.version,
            "verdict": verdict.kind,
            "duplicate_of": verdict.duplicate_of,
        }
    return results


def dedup_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Decide whether the cleaned article repeats an earlier one; records the `dedup` verdict."""
    return _one(dedup_batch(ctx, [msg]))


def _skip_tagging(verdict: DedupVerdict, settings: Settings) -> bool:
    return verdict.kind in ("exact_duplicate", "near_duplicate") and not settings.tag_duplicates


def tag_batch(ctx: Context, msgs: Sequence[StageMessage]) -> list[BatchOutcome]:
    """Tag a batch of cleaned articles (duplicates skipped unless configured), each by the model of its
    language (one `nlp.pipe` per language; other languages recorded untagged, with the reason); records
    each `tag` result. One transaction: one read, one write. If the batch's model call fails, each
    article is tagged alone, so a bad article fails by itself. Idempotent.
    """
    from workers.stages import tag as tag_stage

    fatal = _fatal()
    cap = ctx.settings.max_entities
    results: list[BatchOutcome] = [{} for _ in msgs]
    with transaction(ctx.database_url) as session:
        inputs = repo.load_inputs(session, [m.article_id for m in msgs], stages=("clean", "dedup"))
        taggers = tag_stage.Taggers(ctx.settings.tagger_model_map)
        tagged: dict[int, TaggedArticle] = {}
        to_tag: list[tuple[int, CleanedArticle]] = []
        for i, msg in enumerate(msgs):
            found = _isolated(
                lambda msg=msg: (  # type: ignore[misc]
                    inputs.require(msg.article_id, "clean", CleanedArticle),
                    inputs.require(msg.article_id, "dedup", DedupVerdict),
                ),
                fatal,
            )
            if isinstance(found, Exception):
                results[i] = found
                continue
            cleaned, verdict = found
            if _skip_tagging(verdict, ctx.settings):
                tagged[i] = TaggedArticle(
                    article_id=msg.article_id,
                    version=tag_stage.VERSION,
                    model=tag_stage.NO_MODEL,
                    model_version=tag_stage.NO_MODEL,
                    skipped=f"{verdict.kind} of {verdict.duplicate_of}",
                )
            else:
                to_tag.append((i, cleaned))
        # One model call for the batch; a lone article, or a batch whose call failed, goes one by one.
        together = (
            _isolated(lambda: tag_stage.tag_routed([c for _, c in to_tag], taggers, max_entities=cap), fatal)
            if len(to_tag) > 1
            else None
        )
        for n, (i, cleaned) in enumerate(to_tag):
            one = (
                together[n]
                if isinstance(together, list)
                else _isolated(lambda: tag_stage.tag_routed([cleaned], taggers, max_entities=cap)[0], fatal)  # noqa: B023
            )
            if isinstance(one, Exception):
                results[i] = one
            else:
                tagged[i] = one
        for i, article in tagged.items():
            results[i] = {
                "version": article.version,
                "entities": len(article.entities),
                "skipped": article.skipped is not None,
                "language": article.language,
                "untagged": article.untagged,
            }
        repo.upsert_results(
            session,
            "tag",
            [(msgs[i].article_id, article.version, article) for i, article in sorted(tagged.items())],
        )
    return results


def tag_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Tag the cleaned article's entities (duplicates skipped unless configured); records `tag`."""
    return _one(tag_batch(ctx, [msg]))


def store_batch(ctx: Context, msgs: Sequence[StageMessage]) -> list[BatchOutcome]:
    """Assemble and upsert a batch of stored articles with their entities, mentions and duplicate links.

    One transaction: one read of every input (raw, clean, dedup, tag, current cluster), one executemany
    per table. An article whose inputs are missing or bad fails alone. Idempotent.
    """
    fatal = _fatal()
    results: list[BatchOutcome] = [{} for _ in msgs]
    with transaction(ctx.database_url) as session:
        inputs = repo.load_inputs(
            session,
            [m.article_id for m in msgs],
            raw=True,
            stages=("clean", "dedup", "tag"),
            cluster=True,
            stored=True,
        )
        writes: list[tuple[int, repo.ArticleWrite, str | None]] = []
        for i, msg in enumerate(msgs):
            found = _isolated(lambda msg=msg: _assemble(inputs, msg.article_id), fatal)  # type: ignore[misc]
            if isinstance(found, Exception):
                results[i] = found
            else:
                writes.append((i, *found))
        # A later, earlier-published copy took a cluster over: move the old cluster's stored members.
        for _, write, supersedes in writes:
            if supersedes is not None:
                repo.repoint_cluster(session, supersedes, write.article.cluster_id)
        new = {w.article.id for _, w, _ in writes} - inputs.stored
        repo.upsert_articles(session, [write for _, write, _ in writes], new=new)
        close_superseded(session, [write.article.id for _, write, _ in writes])
        for i, write, _ in writes:
            article = write.article
            results[i] = {
                "version": store_stage.VERSION,
                "verdict": article.dedup,
                "entities": len(article.entities),
            }
    return results


def _assemble(inputs: repo.Inputs, article_id: str) -> tuple[repo.ArticleWrite, str | None]:
    """The stored article from the batch's inputs, and the cluster its verdict superseded (or None)."""
    raw = inputs.require_raw(article_id)
    cleaned = inputs.require(article_id, "clean", CleanedArticle)
    verdict = inputs.require(article_id, "dedup", DedupVerdict)
    tagged = inputs.result(article_id, "tag", TaggedArticle)
    # The index knows the cluster's canonical now; the verdict knew it when it was decided.
    cluster = inputs.clusters.get(article_id) or verdict.cluster_id
    article = store_stage.assemble(raw, cleaned, verdict.model_copy(update={"cluster_id": cluster}), tagged)
    write = repo.ArticleWrite(
        article,
        tagged,
        canonical_url=verdict.canonical_url,
        similarity=verdict.similarity,
        reason=verdict.reason,
    )
    return write, verdict.supersedes


def store_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Assemble and upsert the stored article with its entities, mentions and duplicate link."""
    return _one(store_batch(ctx, [msg]))


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: its name, the step that runs it for one article, and for a batch."""

    name: str
    step: Callable[[Context, StageMessage], Outcome]
    batch: Callable[[Context, Sequence[StageMessage]], list[BatchOutcome]]


STAGES: tuple[Stage, ...] = (
    Stage("clean", clean_step, clean_batch),
    Stage("dedup", dedup_step, dedup_batch),
    Stage("tag", tag_step, tag_batch),
    Stage("store", store_step, store_batch),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
BY_NAME = {stage.name: stage for stage in STAGES}

TRANSIENT = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
"""Errors that mean 'the database or broker is briefly unavailable', not 'this input is bad'. An error of
these classes that the same statement would hit again (`errors.is_deterministic_db_error`: too many SQL
variables, a statement too large, a NUL in a string) is permanent instead; so are IntegrityError and
DataError, which are not listed."""


def run_step(stage: str, ctx: Context, msg: StageMessage) -> Outcome:
    """Run one stage for one article: an outage becomes `TransientError`, a statement the database
    refuses deterministically becomes `DatabaseRejected` (permanent, never retried)."""
    from workers.core.errors import DatabaseRejected, db_timeout, describe, is_deterministic_db_error

    try:
        return BY_NAME[stage].step(ctx, msg)
    except Exception as exc:
        if db_timeout(exc):  # bounded by the server (STYLE.md 19): retried like an outage
            raise TransientError(describe(exc)) from exc
        if is_deterministic_db_error(exc):
            raise DatabaseRejected(describe(exc)) from exc
        if isinstance(exc, TRANSIENT):
            raise TransientError(describe(exc)) from exc
        raise


def run_batch(stage: str, ctx: Context, msgs: Sequence[StageMessage]) -> list[BatchOutcome]:
    """Run one stage for a batch of articles: each article's own failure is returned in its place; an
    outage (the whole batch cannot run) becomes `TransientError`; anything else that stops the whole batch
    is raised as it is, and the caller goes on one article at a time."""
    try:
        return BY_NAME[stage].batch(ctx, msgs)
    except Exception as exc:
        from workers.core.errors import db_timeout, describe, is_deterministic_db_error

        if db_timeout(exc) or (isinstance(exc, TRANSIENT) and not is_deterministic_db_error(exc)):
            raise TransientError(describe(exc)) from exc
        raise


def stages_from(start: str) -> tuple[str, ...]:
    """The stage names from `start` to the end, for a retry or reprocess that resumes mid-pipeline."""
    if start not in BY_NAME:
        raise ValueError(f"unknown stage {start!r}; stages are {', '.join(STAGE_NAMES)}")
    return STAGE_NAMES[STAGE_NAMES.index(start) :]


def dead_letter(
    ctx: Context,
    *,
    stage: str,
    msg: StageMessage | None,
    payload: str,
    error: BaseException,
    reason: str,
    attempts: int,
) -> int:
    """Record that `stage` could not process `msg` (kept until `newsflow retry`); returns the dead letter's id."""
    with transaction(ctx.database_url) as session:
        return repo.record_dead_letter(
            session, stage=stage, message=msg, payload=payload, error=error, reason=reason, attempts=attempts
        )


def dead_letter_unless_finished(
    ctx: Context,
    *,
    stage: str,
    msg: StageMessage,
    payload: str,
    error: BaseException,
    reason: str,
    attempts: int,
) -> int | None:
    """Record a dead letter for `msg` at `stage` unless another attempt already finished that stage (a stale
    attempt: a worker paused past its time limit while the message was run again); returns the dead
    letter's id, or None when it ended quietly. One transaction: the check and the write."""
    version = current_version(stage)
    with transaction(ctx.database_url) as session:
        if repo.stage_finished(session, msg.article_id, stage, version):
            return None
        return repo.record_dead_letter(
            session, stage=stage, message=msg, payload=payload, error=error, reason=reason, attempts=attempts
        )


def close_superseded(session: Any, article_ids: Sequence[str]) -> None:
    """In the store's transaction: close the just-stored articles' dead letters that a stale attempt wrote
    while this one went on (timeout, worker lost), with a note and a journal row each."""
    from workers.db.models import DeadLetterNoteRow, StageJournalRow

    closed = repo.close_superseded_dead_letters(session, article_ids)
    if not closed:
        return
    now = datetime.now(UTC)
    note = "superseded: the article was stored by another attempt"
    session.add_all(DeadLetterNoteRow(dead_letter_id=i, action="superseded", note=note) for i, _, _ in closed)
    session.add_all(
        StageJournalRow(
            article_id=a,
            stage=st,
            event="superseded",
            started_at=now,
            ended_at=now,
            detail={"dead_letter_id": i, "note": note},
        )
        for i, a, st in closed
    )


def current_version(stage: str) -> str:
    """The version the running code records for `stage`; a record with another one is stale."""
    from importlib import import_module

    if stage not in BY_NAME:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NAMES)}")
    version: str = import_module(f"workers.stages.{stage}").VERSION
    return version


def stage_done(session: Session, article_id: str, stage: str) -> bool:
    """True if `stage`'s durable result for the article exists (for store: the stored article)."""
    if stage == STAGE_NAMES[-1]:
        query = select(exists().where(ArticleRow.id == article_id))
    else:
        query = select(exists().where(StageResultRow.article_id == article_id, StageResultRow.stage == stage))
    return bool(session.scalar(query))
