"""What the clean stage produces: the article text and metadata, with an audit of what was removed."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from schemas._base import Frozen

RemovalReason = Literal[
    "nav",
    "share_bar",
    "footer",
    "byline",
    "ad",
    "related",
    "comments",
    "repeated_paragraph",
    "source_boilerplate",
    "chrome",
    "title",
    "markup",
    "empty",
    "outside_article",  # left out of the article body by the extractors (menus, sidebars, footers)
]


class Removal(Frozen):
    """One piece of the page that cleaning dropped, and why."""

    reason: RemovalReason
    text: str = Field(max_length=300, description="The removed text, cut to 300 characters.")


class CleanedArticle(Frozen):
    """A cleaned article: readable text in paragraphs ('\\n\\n' between them) plus metadata."""

    article_id: str
    version: str = Field(description="Cleaner version that produced this record.")
    title: str | None = None
    text: str = Field(min_length=1)
    published_at: datetime | None = None
    updated_at: datetime | None = None
    authors: tuple[str, ...] = ()
    dateline: str | None = None
    credits: tuple[str, ...] = ()
    section: str | None = None
    site_name: str | None = None
    language: str | None = None
    url: str | None = None
    removed: tuple[Removal, ...] = ()

    @property
    def word_count(self) -> int:
        """Whitespace-separated words in the text."""
        return len(self.text.split())
