"""The article as stored and as `newsflow run --json` / `newsflow show --json` print it."""

from datetime import datetime

from pydantic import Field

from schemas._base import Frozen
from schemas.dedup import VerdictKind
from schemas.tagged import EntityLabel


class StoredMention(Frozen):
    start: int
    end: int
    text: str


class StoredEntity(Frozen):
    name: str
    label: EntityLabel
    count: int
    mentions: tuple[StoredMention, ...]


class StoredArticle(Frozen):
    """One stored article with its entities and the version of each stage that made it."""

    id: str
    url: str | None
    source: str
    title: str | None
    published_at: datetime | None
    language: str | None
    text: str
    dateline: str | None
    credits: tuple[str, ...]
    authors: tuple[str, ...] = ()
    duplicate_of: str | None
    dedup: VerdictKind
    cluster_id: str
    entities: tuple[StoredEntity, ...]
    versions: dict[str, str] = Field(description="Stage name to the version that produced its part.")
