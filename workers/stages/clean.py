"""The clean stage: a raw page (HTML or a text dump) in, readable article text and metadata out.

Pure: no I/O, no globals mutated, the same input always gives the same output. Every piece of
the page that is dropped is recorded in `CleanedArticle.removed` with a reason code.
"""

from __future__ import annotations

from datetime import datetime

import py3langid

from schemas.cleaned import CleanedArticle, Removal, RemovalReason
from schemas.limits import MAX_TEXT_CHARS
from schemas.raw import RawArticle
from workers.errors import NoContent
from workers.stages.cleaning.extraction import Extraction
from workers.stages.cleaning.guards import check_html, defuse, drop_huge_tokens, sniff, strip_inert
from workers.stages.cleaning.html import extract_html, page_lines
from workers.stages.cleaning.lines import fold
from workers.stages.cleaning.meta import find_credits, find_dateline
from workers.stages.cleaning.normalise import normalise_text
from workers.stages.cleaning.paragraphs import (
    candidate_keys,
    drop_chrome_lines,
    drop_learned_chrome,
    drop_repeats,
)
from workers.stages.cleaning.textdump import extract_text_dump

VERSION = "clean-1.1"
"""Cleaner version recorded on every article; bump it whenever the output for some input changes."""

MAX_REMOVALS = 400
"""Most removal records kept per article (the audit of a huge page is cut, never the article)."""

_REMOVAL_TEXT = 300
LANGUAGE_SAMPLE_CHARS = 1000
"""Characters of the article text that language identification reads."""


def _extract(raw: RawArticle, chrome: frozenset[str]) -> Extraction:
    if sniff(raw) == "text/html":
        body = strip_inert(defuse(raw.body))
        check_html(body)
        extraction = extract_html(body, raw.url)
        # One normalisation pass over all paragraphs (one line each) is much cheaper than one per line.
        joined = normalise_text("\n".join(" ".join(p.split()) for p in extraction.paragraphs))
        extraction.paragraphs = [p for p in joined.split("\n") if p.strip()]
        extraction.paragraphs = drop_learned_chrome(extraction.paragraphs, chrome, extraction.removed)
        extraction.paragraphs = drop_chrome_lines(extraction.paragraphs, extraction.removed)
        if raw.title:
            extraction.title = raw.title.strip() or extraction.title
        return extraction
    return extract_text_dump(normalise_text(drop_huge_tokens(raw.body)), raw.title, chrome)


def _language(text: str, hint: str | None) -> str | None:
    if hint:
        return hint
    # A thousand characters decide the language as well as three thousand (same result on every
    # benchmark page), at a third of the cost.
    lang, _score = py3langid.classify(text[:LANGUAGE_SAMPLE_CHARS])
    return str(lang) if lang else None


def clean(raw: RawArticle, article_id: str, *, chrome: frozenset[str] = frozenset()) -> CleanedArticle:
    """Return the cleaned article of one raw page; pure and deterministic (so idempotent).

    `chrome` holds the learned keys (see `line_keys`) of this source's boilerplate lines: lines
    and short blocks with those keys are removed as `source_boilerplate`. Raises `NotHtml`,
    `TooLarge`, `TooDeep` or `NoContent` (all `PermanentError`) for input that cannot be cleaned.
    """
    extraction = _extract(raw, chrome)
    removed = extraction.removed
    paragraphs = extraction.paragraphs
    if extraction.title and paragraphs and fold(paragraphs[0]) == fold(extraction.title):
        removed.append(("title", paragraphs.pop(0)))

    dateline: str | None = None
    body_start = 0
    for index, paragraph in enumerate(paragraphs[:4]):
        dateline = find_dateline(paragraph)
        if dateline:
            body_start = index
            break
    paragraphs = drop_repeats(paragraphs, removed, body_start=body_start)
    credits = tuple(find_credits(paragraphs))

    text = "\n\n".join(paragraphs)
    if len(text) > MAX_TEXT_CHARS:
        text = (
            text[:MAX_TEXT_CHARS].rsplit("\n\n", 1)[0]
            if "\n\n" in text[:MAX_TEXT_CHARS]
            else text[:MAX_TEXT_CHARS]
        )
    if not text.strip():
        raise NoContent("no article text found", reason="no_content")

    published: datetime | None = extraction.published_at or raw.published_at
    return CleanedArticle(
        article_id=article_id,
        version=VERSION,
        title=extraction.title,
        text=text,
        published_at=published,
        updated_at=extraction.updated_at,
        authors=tuple(extraction.authors),
        dateline=dateline,
        credits=credits,
        section=extraction.section,
        site_name=extraction.site_name,
        language=_language(text, raw.language or extraction.language),
        url=raw.url or extraction.url,
        removed=tuple(
            Removal(reason=reason, text=snippet[:_REMOVAL_TEXT]) for reason, snippet in removed[:MAX_REMOVALS]
        ),
    )


def line_keys(raw: RawArticle) -> frozenset[str]:
    """Return the keys of the page's candidate boilerplate lines/blocks (folded text → 16-hex xxh64).

    Only short or boilerplate-like lines are candidates; prose sentences never are. Pure. Raises
    the same guard errors as `clean` for input that cannot be parsed.
    """
    if sniff(raw) == "text/html":
        body = strip_inert(defuse(raw.body))
        check_html(body)
        return candidate_keys(page_lines(body))
    return candidate_keys(normalise_text(drop_huge_tokens(raw.body)).split("\n"))


__all__ = ["MAX_REMOVALS", "VERSION", "RemovalReason", "clean", "line_keys"]
