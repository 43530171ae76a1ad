"""What a producer submits: one raw scraped page."""

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter

from schemas._base import Frozen
from schemas.limits import (
    MAX_BODY_BYTES,
    MAX_LANGUAGE_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    mib,
)

ContentType = Literal["text/html", "text/plain"]


def _control_chars(value: str) -> list[str]:
    return sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) == "Cc"})


def _no_control(value: str) -> str:
    # A NUL or an escape sequence in a name or an address is never data (PostgreSQL refuses NUL
    # in text columns; ESC forges terminal output): refused at the producer, with the code points.
    found = _control_chars(value)
    if found:
        raise ValueError(f"must not contain control characters ({', '.join(found[:5])})")
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000)")
    return value


def _http_url(value: str) -> str:
    if not value.lower().startswith(("http://", "https://")) or len(value) < 9:
        raise ValueError("must be an absolute http:// or https:// URL")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain whitespace")
    return _no_control(value)


def _body_size(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_BODY_BYTES:
        raise ValueError(f"is {size} bytes, the limit is {MAX_BODY_BYTES} bytes ({mib(MAX_BODY_BYTES)})")
    return value


Url = Annotated[str, StringConstraints(max_length=MAX_URL_CHARS), AfterValidator(_http_url)]
Body = Annotated[str, AfterValidator(_body_size)]


class RawArticle(Frozen):
    """A raw article as submitted by a producer; field names are the public JSON contract."""

    source: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SOURCE_CHARS),
        AfterValidator(_no_control),
    ] = Field(description="Outlet or feed the page came from, e.g. 'ctnnews.com'.")
    body: Body = Field(description="The page as fetched: HTML or a text dump.")
    url: Url | None = Field(default=None, description="Where the page was fetched from.")
    fetched_at: datetime | None = Field(default=None, description="When it was fetched (ISO 8601).")
    content_type: ContentType | None = Field(
        default=None, description="text/html or text/plain; sniffed from the body when absent."
    )
    title: Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS), AfterValidator(_no_nul)] | None = (
        Field(default=None, description="Hint: the title, if the scraper knows it.")
    )
    published_at: datetime | None = Field(default=None, description="Hint: publication time.")
    language: (
        Annotated[
            str,
            StringConstraints(max_length=MAX_LANGUAGE_CHARS, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"),
        ]
        | None
    ) = Field(default=None, description="Hint: BCP 47 language tag, e.g. 'en'.")


RAW_ARTICLE = TypeAdapter(RawArticle)
