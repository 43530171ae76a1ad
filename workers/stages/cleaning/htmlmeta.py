"""Metadata of an HTML page from its parsed tree: JSON-LD, meta tags, <time>, headings; htmldate last."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from lxml.html import HtmlElement

from workers.stages.cleaning.meta import clean_author, parse_date

_ARTICLE_TYPES = re.compile(r"article|posting|report|news|blog", re.I)
_MAX_JSONLD_CHARS = 500_000
_TITLE_SPLIT = re.compile(r"\s+[|–—·»-]\s+")
_WORDS = re.compile(r"\w+")


def _jsonld_objects(tree: HtmlElement) -> Iterator[dict[str, Any]]:
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        text = script.text or ""
        if not text.strip() or len(text) > _MAX_JSONLD_CHARS:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        stack: list[Any] = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict):
                if "@graph" in item:
                    stack.append(item["@graph"])
                yield item


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _names(value.get("name"))
    if isinstance(value, list):
        return [name for item in value for name in _names(item)]
    return []


def _date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return parse_date(text)


def _meta(tree: HtmlElement) -> dict[str, str]:
    found: dict[str, str] = {}
    for element in tree.xpath("//meta[@content]"):
        key = (
            (element.get("property") or element.get("name") or element.get("itemprop") or "").strip().lower()
        )
        content = (element.get("content") or "").strip()
        if key and content and key not in found:
            found[key] = content
    return found


def _text(element: HtmlElement) -> str:
    return " ".join(element.text_content().split())


def extract_metadata(tree: HtmlElement) -> dict[str, Any]:  # noqa: PLR0912, PLR0915  # each field falls back through its sources in order
    """Return title, authors, published_at, updated_at, section, site_name, language, url of a page tree."""
    meta = _meta(tree)
    ld_title = ld_section = ld_site = None
    ld_authors: list[str] = []
    ld_published = ld_updated = None
    for obj in _jsonld_objects(tree):
        kind = obj.get("@type")
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(isinstance(k, str) and _ARTICLE_TYPES.search(k) for k in kinds):
            continue
        ld_title = ld_title or (obj.get("headline") if isinstance(obj.get("headline"), str) else None)
        ld_published = ld_published or _date(obj.get("datePublished"))
        ld_updated = ld_updated or _date(obj.get("dateModified"))
        ld_authors = ld_authors or _names(obj.get("author"))
        section = obj.get("articleSection")
        ld_section = ld_section or (section[0] if isinstance(section, list) and section else section)
        ld_site = ld_site or next(iter(_names(obj.get("publisher"))), None)

    h1s = [_text(h) for h in tree.xpath("//h1")[:5]]
    h1s = [h for h in h1s if 3 <= len(h) <= 300]
    head_title = next((_text(t) for t in tree.xpath("//head/title")[:1]), "")
    declared = (
        ld_title
        or meta.get("og:title")
        or meta.get("twitter:title")
        or meta.get("parsely-title")
        or head_title
    )
    title: str | None = None
    if declared:
        declared = " ".join(declared.split())
        parts = _TITLE_SPLIT.split(declared)
        # "Headline | Site": the longest part is the headline, the rest the site name.
        stripped = max(parts, key=len) if len(parts) > 1 else declared
        wanted = set(_WORDS.findall(stripped.casefold()))
        # An <h1> that shares most words with the declared title is the page's own, complete headline.
        for h1 in h1s:
            words = set(_WORDS.findall(h1.casefold()))
            if wanted and words and len(words & wanted) >= 0.6 * min(len(words), len(wanted)):
                title = h1
                break
        title = title or stripped
    elif h1s:
        title = h1s[0]

    published = ld_published
    for key in _DATE_KEYS:
        if published is None:
            published = _date(meta.get(key))
    if published is None:
        for element in tree.xpath("//time[@datetime]")[:3]:
            published = _date(element.get("datetime"))
            if published:
                break
    if published is None and not _declares_date(meta, tree):
        # htmldate reads the same declared fields leniently (an impossible 2024-02-30 becomes
        # 2024-02-01): a page that declares a date we could not read gets no date, never another.
        published = _htmldate(tree)
    updated = ld_updated or _date(meta.get("article:modified_time")) or _date(meta.get("og:updated_time"))

    authors: list[str] = []
    candidates = ld_authors or [
        meta.get("author", ""),
        meta.get("parsely-author", ""),
        meta.get("article:author", ""),
    ]
    if not any(candidates):
        candidates = [_text(e) for e in tree.xpath('//*[@rel="author" or @itemprop="author"]')[:3]]
    for candidate in candidates:
        for part in re.split(r"\s*(?:,|;|\band\b|&)\s*", candidate or ""):
            name = clean_author(part)
            if name and name not in authors:
                authors.append(name)

    section = ld_section or meta.get("article:section") or meta.get("parsely-section")
    lang = (tree.get("lang") or meta.get("og:locale") or meta.get("content-language") or "").strip()
    language = re.split(r"[-_]", lang)[0].lower() if re.match(r"^[A-Za-z]{2,3}([-_]|$)", lang) else None
    url = meta.get("og:url") or next(iter(tree.xpath('//link[@rel="canonical"]/@href')), None)
    return {
        "title": title,
        "authors": authors,
        "published_at": published,
        "updated_at": updated,
        "section": section if isinstance(section, str) and len(section) <= 100 else None,
        "site_name": ld_site or meta.get("og:site_name") or meta.get("application-name"),
        "language": language,
        "url": url if isinstance(url, str) and url.startswith(("http://", "https://")) else None,
    }


_DATE_KEYS = (
    "article:published_time",
    "parsely-pub-date",
    "og:published_time",
    "publishdate",
    "pubdate",
    "date",
    "dc.date",
    "dc.date.issued",
    "sailthru.date",
    "datepublished",
)


def _declares_date(meta: dict[str, str], tree: HtmlElement) -> bool:
    """True when the page declares a publication date (meta, JSON-LD or <time>), valid or not."""
    if any(meta.get(key) for key in _DATE_KEYS):
        return True
    if tree.xpath("//time[@datetime]"):
        return True
    return any(isinstance(obj.get("datePublished"), str) for obj in _jsonld_objects(tree))


def _htmldate(tree: HtmlElement) -> datetime | None:
    """Fallback date from htmldate's fast (non-extensive) search; None when it finds nothing."""
    from htmldate import find_date

    try:
        found = find_date(tree, extensive_search=False, original_date=True, outputformat="%Y-%m-%d")
    except (ValueError, TypeError):
        return None
    return _date(found) if found else None
