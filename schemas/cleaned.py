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


PageKind = Literal["article", "service", "product", "collection", "forum", "listing", "documentation"]
"""What a page is (the clean stage's page-kind classifier); only `article` pages are stored by default."""


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
    page_kind: PageKind = Field(
        default="article", description="What the page is; a page the classifier is unsure of is an article."
    )
    page_kind_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="The classifier's confidence in `page_kind` (None: not judged).",
    )
    page_kind_model: str | None = Field(
        default=None, description="Version of the page-kind model that judged."
    )

    @property
    def word_count(self) -> int:
        """Whitespace-separated words in the text."""
        return len(self.text.split())
