"""The intermediate result of an extractor, before the shared post-processing of the clean stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.cleaned import RemovalReason


@dataclass(slots=True)
class Extraction:
    """Paragraphs and metadata found by one extractor, with what it dropped and why."""

    paragraphs: list[str]
    removed: list[tuple[RemovalReason, str]] = field(default_factory=list)
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published_at: datetime | None = None
    updated_at: datetime | None = None
    section: str | None = None
    site_name: str | None = None
    language: str | None = None
    url: str | None = None
