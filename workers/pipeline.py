"""The pipeline, declared once: the stage order and the step each stage runs.

A step is what a task does around its pure stage function: load the article's input records,
call the stage, persist its output record (with the stage version), all keyed by article id.
The Celery tasks (`workers.tasks`) and the embedded runner (`workers.embedded`) both call these
steps, so the two modes share one code path. Every step is idempotent: running it again for the
same article leaves the same rows.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis.exceptions
import sqlalchemy.exc

from schemas import CleanedArticle, DedupVerdict, StageMessage, TaggedArticle
from workers.db import repo
from workers.db.engine import transaction
from workers.errors import TransientError
from workers.settings import Settings
from workers.stages import store as store_stage

# The clean, dedup and tag stages import trafilatura, numpy and spaCy (seconds of start-up), so
# each step imports its stage itself: a producer or `newsflow status` never pays for them.

if TYPE_CHECKING:
    from workers.stages.dedup import DedupParams

Outcome = Mapping[str, Any]
"""Small facts a step reports for its summary log line (counts and versions, never text)."""


@dataclass(frozen=True)
class Context:
    """What a step needs besides its message: the settings (and through them the database)."""

    settings: Settings

    @property
    def database_url(self) -> str:
        return self.settings.database_url


def clean_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Clean the raw article, learning its source's chrome first; records the `clean` result."""
    from workers.stages import clean as clean_stage

    with transaction(ctx.database_url) as session:
        raw = repo.load_raw(session, msg.article_id)
        keys = clean_stage.line_keys(raw)
        repo.learn_lines(session, raw.source, msg.article_id, keys)
    with transaction(ctx.database_url) as session:
        chrome = repo.chrome_keys(session, raw.source, keys, ctx.settings.chrome_min_articles)
    cleaned = clean_stage.clean(raw, msg.article_id, chrome=chrome)
    with transaction(ctx.database_url) as session:
        repo.upsert_result(session, msg.article_id, "clean", cleaned.version, cleaned)
    return {"version": cleaned.version, "chars": len(cleaned.text), "removed": len(cleaned.removed)}


def dedup_params(settings: Settings) -> "DedupParams":
    """Dedup parameters from the settings."""
    from workers.stages.dedup import DedupParams

    return DedupParams(threshold=settings.dedup_threshold)


def dedup_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Decide whether the cleaned article repeats an earlier one; records the `dedup` verdict."""
    from workers.db import dedup_index

    with transaction(ctx.database_url) as session:
        cleaned = repo.require_result(session, msg.article_id, "clean", CleanedArticle)
        verdict = dedup_index.ensure_verdict(session, cleaned, dedup_params(ctx.settings))
        repo.upsert_result(session, msg.article_id, "dedup", verdict.version, verdict)
    return {"version": verdict.version, "verdict": verdict.kind, "duplicate_of": verdict.duplicate_of}


def _skip_tagging(verdict: DedupVerdict, settings: Settings) -> bool:
    return verdict.kind in ("exact_duplicate", "near_duplicate") and not settings.tag_duplicates


def tag_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Tag the cleaned article's entities (duplicates skipped unless configured); records `tag`."""
    from workers.stages import tag as tag_stage

    with transaction(ctx.database_url) as session:
        cleaned = repo.require_result(session, msg.article_id, "clean", CleanedArticle)
        verdict = repo.require_result(session, msg.article_id, "dedup", DedupVerdict)
    nlp = tag_stage.load_model(ctx.settings.tagger_model)
    if _skip_tagging(verdict, ctx.settings):
        model, model_version = tag_stage.model_info(nlp)
        tagged = TaggedArticle(
            article_id=msg.article_id,
            version=tag_stage.VERSION,
            model=model,
            model_version=model_version,
            skipped=f"{verdict.kind} of {verdict.duplicate_of}",
        )
    else:
        tagged = tag_stage.tag(cleaned, nlp)
    with transaction(ctx.database_url) as session:
        repo.upsert_result(session, msg.article_id, "tag", tagged.version, tagged)
    return {
        "version": tagged.version,
        "entities": len(tagged.entities),
        "skipped": tagged.skipped is not None,
    }


def store_step(ctx: Context, msg: StageMessage) -> Outcome:
    """Assemble and upsert the stored article with its entities, mentions and duplicate link."""
    with transaction(ctx.database_url) as session:
        raw = repo.load_raw(session, msg.article_id)
        cleaned = repo.require_result(session, msg.article_id, "clean", CleanedArticle)
        verdict = repo.require_result(session, msg.article_id, "dedup", DedupVerdict)
        tagged = repo.load_result(session, msg.article_id, "tag", TaggedArticle)
        # The index knows the cluster's canonical now; the verdict knew it when it was decided.
        cluster = repo.current_cluster(session, msg.article_id) or verdict.cluster_id
        article = store_stage.assemble(
            raw, cleaned, verdict.model_copy(update={"cluster_id": cluster}), tagged
        )
        if verdict.supersedes is not None:
            repo.repoint_cluster(session, verdict.supersedes, cluster)
        repo.upsert_article(
            session,
            article,
            tagged,
            canonical_url=verdict.canonical_url,
            similarity=verdict.similarity,
            reason=verdict.reason,
        )
    return {"version": store_stage.VERSION, "verdict": article.dedup, "entities": len(article.entities)}


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: its name and the step that runs it."""

    name: str
    step: Callable[[Context, StageMessage], Outcome]


STAGES: tuple[Stage, ...] = (
    Stage("clean", clean_step),
    Stage("dedup", dedup_step),
    Stage("tag", tag_step),
    Stage("store", store_step),
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
    from workers.errors import DatabaseRejected, describe, is_deterministic_db_error

    try:
        return BY_NAME[stage].step(ctx, msg)
    except Exception as exc:
        if is_deterministic_db_error(exc):
            raise DatabaseRejected(describe(exc)) from exc
        if isinstance(exc, TRANSIENT):
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


def current_version(stage: str) -> str:
    """The version the running code records for `stage`; a record with another one is stale."""
    from importlib import import_module

    if stage not in BY_NAME:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NAMES)}")
    version: str = import_module(f"workers.stages.{stage}").VERSION
    return version
