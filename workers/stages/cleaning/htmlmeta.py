"""Metadata of an HTML page judged by evidence: every source proposes candidates, agreement decides.

Sources: JSON-LD (article objects, their `author` arrays and `Person` objects, `@graph` references),
Open Graph and other meta tags (article:*, author, parsely-*, sailthru.*, dc.*), microdata
(`itemprop`), `rel=author` links, the visible byline and date near the headline, the URL's date, and
htmldate's reading of the page. Each candidate carries its source's weight; candidates that agree
(the same day, the same person) add up, and the field keeps the best supported value. The tree is
only read, never changed.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from lxml.html import HtmlElement

from workers.stages.cleaning.meta import (
    FUTURE_SLACK,
    dayfirst_of,
    fold_name,
    parse_date,
    person_name,
    split_authors,
    url_date,
)

_ARTICLE_TYPES = re.compile(r"article|posting|report|news|blog|webpage|review|recipe|howto|opinion", re.I)
_MAX_JSONLD_CHARS = 500_000
_TITLE_SPLIT = re.compile(r"\s+[|–—·»:-]\s+|\s+[|–—·»]\s*|\s*[|–—·»]\s+")
_WORDS = re.compile(r"\w+")
_BYLINE_CLASS = re.compile(r"author|byline|writer|contributor|posted-by|postedby", re.I)
_NOT_BYLINE_CLASS = re.compile(r"comment|avatar|related|bio\b|about-author|author-box|widget|footer", re.I)
_DATE_CLASS = re.compile(r"date|time|posted|published|byline|meta", re.I)
_MODIFIED_WORDS = re.compile(
    r"\b(updated|modified|last updated|edited|revised|aktualisiert|mis à jour)\b", re.I
)
_COPYRIGHT = re.compile(r"©|\(c\)|copyright", re.I)

# How much one candidate of each source counts. Structured, article-level sources weigh most; a
# visible byline near the headline is strong evidence; loose page-wide guesses weigh little.
AUTHOR_WEIGHTS = {
    "jsonld": 3.0,
    "meta": 2.0,
    "microdata": 2.0,
    "byline": 2.5,
    "rel": 1.5,
    "class": 1.5,
    "near": 1.0,
    "phrase": 1.5,
}
_DECLARED_SOURCES = frozenset({"jsonld", "meta", "microdata", "byline", "rel", "phrase", "class"})
"""Sources that mark a text as the author (a field, a "By" line, a link or element so named): one word is then a name."""
DATE_WEIGHTS = {
    "jsonld": 3.0,
    "meta": 3.0,
    "microdata": 2.0,
    "time": 1.5,
    "visible": 3.5,
    "url": 2.5,
    "htmldate": 1.0,
    "modified": 0.5,
}
_PUBLISHED_META = (
    "article:published_time",
    "article:published",
    "og:published_time",
    "og:article:published_time",
    "parsely-pub-date",
    "sailthru.date",
    "publishdate",
    "publish-date",
    "publish_date",
    "pubdate",
    "datepublished",
    "dc.date",
    "dc.date.issued",
    "dc.date.created",
    "dcterms.date",
    "dcterms.issued",
    "dcterms.created",
    "citation_publication_date",
    "citation_date",
    "date",
    "article.published",
    "cxenseparse:recs:publishtime",
    "og:pubdate",
    "release_date",
)
_MODIFIED_META = (
    "article:modified_time",
    "og:updated_time",
    "article:modified",
    "dateModified",
    "datemodified",
    "dcterms.modified",
    "last-modified",
)
_AUTHOR_META = (
    "author",
    "article:author",
    "parsely-author",
    "sailthru.author",
    "dc.creator",
    "dcterms.creator",
    "byl",
    "citation_author",
    "og:article:author",
    "article:author_name",
    "cxenseparse:author",
)


def _jsonld_objects(tree: HtmlElement) -> Iterator[dict[str, Any]]:
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        text = (script.text or "").strip()
        if not text or len(text) > _MAX_JSONLD_CHARS:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            try:  # a trailing comma or a stray control character is common: read what survives
                data = json.loads(re.sub(r",\s*([}\]])", r"\1", text.replace("\n", " ")), strict=False)
            except ValueError:
                continue
        stack: list[Any] = [data]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(reversed(item))
            elif isinstance(item, dict):
                if "@graph" in item:
                    stack.append(item["@graph"])
                keys = ("mainEntity", "mainEntityOfPage", "itemListElement", "hasPart")
                stack.extend(item[k] for k in keys if isinstance(item.get(k), dict | list))
                yield item


def _kinds(obj: dict[str, Any]) -> list[str]:
    kind = obj.get("@type")
    return [k for k in (kind if isinstance(kind, list) else [kind]) if isinstance(k, str)]


def _names(value: Any, people: dict[str, dict[str, Any]], depth: int = 0) -> list[tuple[str, bool]]:
    """(name, is an organisation) of a JSON-LD author value: a string, a Person, a list, an @id."""
    if depth > 3:
        return []
    if isinstance(value, str):
        return [(value, False)]
    if isinstance(value, list):
        return [n for item in value for n in _names(item, people, depth + 1)]
    if isinstance(value, dict):
        ref = value.get("@id")
        if "name" not in value and isinstance(ref, str) and ref in people:
            value = people[ref]
        name = value.get("name")
        if isinstance(name, list):
            name = next((n for n in name if isinstance(n, str)), None)
        if isinstance(name, dict):
            name = name.get("@value")
        if not isinstance(name, str):
            given, family = value.get("givenName"), value.get("familyName")
            name = " ".join(x for x in (given, family) if isinstance(x, str)) or None
        if isinstance(name, str):
            org = any(k in {"Organization", "NewsMediaOrganization", "Corporation"} for k in _kinds(value))
            return [(name, org)]
    return []


def _date(value: object, dayfirst: bool | None = None) -> datetime | None:
    if isinstance(value, list) and value:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    found: datetime | None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        found = parse_date(text, dayfirst=dayfirst)
    if found is None or not 1995 <= found.year <= 2100:
        return None
    return found


def _meta(tree: HtmlElement) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for element in tree.xpath("//meta[@content]"):
        key = (element.get("property") or element.get("name") or element.get("itemprop") or "").strip()
        content = (element.get("content") or "").strip()
        if key and content:
            found[key.lower()].append(content)
    return found


def _text(element: HtmlElement) -> str:
    try:
        return " ".join(element.text_content().split())
    except ValueError:
        return ""


def _class_of(element: HtmlElement) -> str:
    return " ".join(
        str(element.get(attr) or "") for attr in ("class", "id", "itemprop", "rel", "data-testid")
    )


class _Page:
    """What the sources say about one page, read once."""

    def __init__(self, tree: HtmlElement, url: str | None) -> None:
        self.tree = tree
        self.url = url
        self.meta = _meta(tree)
        self.objects = list(_jsonld_objects(tree))
        self.people = {
            obj["@id"]: obj for obj in self.objects if isinstance(obj.get("@id"), str) and "name" in obj
        }
        self.articles = [obj for obj in self.objects if any(_ARTICLE_TYPES.search(k) for k in _kinds(obj))]
        # Article types first: a NewsArticle says more about the page than the WebPage around it.
        self.articles.sort(
            key=lambda o: not any(re.search(r"article|posting|report|news|blog", k, re.I) for k in _kinds(o))
        )
        lang = (tree.get("lang") or self.first("og:locale") or self.first("content-language") or "").strip()
        self.lang_tag = lang
        self.language = (
            re.split(r"[-_]", lang)[0].lower() if re.match(r"^[A-Za-z]{2,3}([-_]|$)", lang) else None
        )
        self.h1 = self._headline_element()
        self.header_lines = self._header_lines()
        self.dayfirst = dayfirst_of(lang, self.header_lines)

    def first(self, key: str) -> str | None:
        values = self.meta.get(key)
        return values[0] if values else None

    def _headline_element(self) -> HtmlElement | None:
        for h1 in self.tree.xpath("//h1")[:5]:
            if 3 <= len(_text(h1)) <= 300:
                return h1
        return None

    def _header_lines(self) -> list[str]:
        """The visible text lines around the headline: the byline and dateline live there."""
        start = self.h1
        if start is None:
            return []
        lines: list[str] = []
        # The lines before the headline inside its container, then the lines after it.
        parent = start.getparent()
        if parent is not None:
            for sibling in start.itersiblings(preceding=True):
                text = _text(sibling)
                if text and len(text) < 200:
                    lines.insert(0, text)
                if len(lines) >= 4:
                    break
        count = 0
        for element in start.iterdescendants() if False else _following(start):
            tag = element.tag if isinstance(element.tag, str) else ""
            if tag in {"script", "style", "noscript", "svg", "button", "nav", "form"}:
                continue
            for piece in (element.text, *(child.tail for child in element)):
                text = " ".join((piece or "").split())
                if text:
                    lines.append(text)
                    count += 1
            if count >= 40:
                break
        return lines


def _following(element: HtmlElement) -> Iterator[HtmlElement]:
    """The elements after `element` in document order (its own subtree left out)."""
    node: HtmlElement | None = element
    while node is not None:
        for sibling in node.itersiblings():
            yield sibling
            yield from sibling.iterdescendants()
        node = node.getparent()


# --- authors --------------------------------------------------------------------------------------


def _author_candidates(page: _Page) -> list[tuple[str, list[str]]]:  # noqa: PLR0912  # one branch per source
    """(source, names) proposals; each proposal is one source's list of people, in its order."""
    found: list[tuple[str, list[str]]] = []
    for obj in page.articles:
        ld_names = _names(obj.get("author"), page.people) or _names(obj.get("creator"), page.people)
        people = split_authors([n for n, org in ld_names if not org], strict=False)
        if people:
            found.append(("jsonld", people))
    for key in _AUTHOR_META:
        # One tag per author (citation_author) or one tag for all: the key's values are one proposal.
        values = [v for v in page.meta.get(key, []) if not v.startswith(("http://", "https://"))]
        names = split_authors(values[:12], strict=False)
        if names:
            found.append(("meta", names))
    for index in range(1, 5):
        # Slack-style labels: twitter:label1 "Written by", twitter:data1 "Jane Doe".
        label = (page.first(f"twitter:label{index}") or "").strip().lower()
        data = page.first(f"twitter:data{index}")
        if data and label in {"written by", "author", "by", "est. author"}:
            names = split_authors([data], strict=False)
            if names:
                found.append(("meta", names))
    micro = [
        _text(e.xpath('.//*[@itemprop="name"]')[0]) if e.xpath('.//*[@itemprop="name"]') else _text(e)
        for e in page.tree.xpath('//*[@itemprop="author" or @itemprop="creator"]')[:8]
        if not _in_comments(e)
    ][:3]
    micro = [m for m in micro if m] or [
        c for e in page.tree.xpath('//*[@itemprop="author"]/@content')[:5] for c in [str(e)]
    ]
    if micro:
        names = split_authors(micro)
        if names:
            found.append(("microdata", names))
    rel = [_text(e) for e in page.tree.xpath('//a[contains(concat(" ", @rel, " "), " author ")]')[:6]]
    for source, people in (
        ("rel", split_authors(rel)),
        ("byline", _visible_byline(page)),
        ("phrase", _phrased_byline(page)),
        ("near", _name_by_date(page)),
    ):
        if people:
            found.append((source, people))
    classed: list[str] = []
    for element in page.tree.xpath(
        "//*[contains(@class, 'author') or contains(@class, 'byline') or contains(@class, 'Author')"
        " or contains(@class, 'Byline') or contains(@id, 'author') or contains(@class, 'writer')]"
    )[:30]:
        if _NOT_BYLINE_CLASS.search(_class_of(element)) or _in_comments(element):
            continue
        text = _text(element)
        if 3 <= len(text) <= 120:
            classed.append(text)
    if classed:
        names = split_authors(classed[:4])
        if names:
            found.append(("class", names))
    return found


def _in_comments(element: HtmlElement) -> bool:
    for ancestor in element.iterancestors():
        if re.search(r"comment|sidebar|related|footer", _class_of(ancestor), re.I):
            return True
    return False


_BYLINE_LINE = re.compile(
    r"^(?:written |posted |story |words |text |reporting |article )?(?:by|von|par|por|door|di|av|af)[:\s]+(.{3,160})$",
    re.I,
)


_LONE_BY = re.compile(
    r"^(?:written |posted |reported |story )?(?:by|von|par|por|door|author|authors|written by)[:\s]*$", re.I
)


def _visible_byline(page: _Page) -> list[str]:
    """Authors of a "By A, B and C" line near the headline ("By" may stand on a line of its own)."""
    lines = page.header_lines[:30]
    for index, line in enumerate(lines):
        if _LONE_BY.match(line) and index + 1 < len(lines):
            following = [lines[index + 1]]
            # "By / Jane Doe / John Roe / Nov 25": the names that follow, up to the first non-name.
            for extra in lines[index + 2 : index + 5]:
                if person_name(extra) is None:
                    break
                following.append(extra)
            names = split_authors(following, strict=False)
            if names:
                return names
        match = _BYLINE_LINE.match(line)
        if match:
            names = split_authors([match.group(1)], strict=False)
            if names:
                return names
    return []


_PHRASED = re.compile(
    r"^(?:(?:view |see )?(?:all |more )?(?:posts|articles|stories|entries) by|written by|posted by|"
    r"authored by|published by|this (?:post|article|story) was written by)\s*:?\s+(.{3,80})$",
    re.I,
)


def _phrased_byline(page: _Page) -> list[str]:
    """Authors named by a short phrase anywhere on the page ("View all posts by Jane Doe")."""
    for element in page.tree.xpath("//body//*[self::a or self::span or self::p or self::div or self::li]")[
        :3000
    ]:
        text = element.text
        if not text or len(text) > 100:
            continue
        match = _PHRASED.match(_text(element))
        if match and not _in_comments(element):
            names = split_authors([match.group(1)])
            if names:
                return names
    return []


def _name_by_date(page: _Page) -> list[str]:
    """A lone capitalised name just before or after the dateline near the headline ("Jane Doe / Dec 19, 2025")."""
    lines = page.header_lines[:20]
    for index, line in enumerate(lines):
        if len(line) > 60 or parse_date(line, dayfirst=page.dayfirst) is None:
            continue
        for near in [*lines[max(0, index - 3) : index][::-1], *lines[index + 1 : index + 2]]:
            name = person_name(near) if 2 <= len(near.split()) <= 4 else None
            if name:
                return [name]
    return []


def _site_words(page: _Page) -> set[str]:
    names = [page.first("og:site_name") or "", page.first("application-name") or ""]
    for obj in page.objects:
        if any(k in {"Organization", "NewsMediaOrganization", "WebSite"} for k in _kinds(obj)):
            name = obj.get("name")
            if isinstance(name, str) and len(name.split()) <= 5:
                names.append(name)
    host = (urlsplit(page.url).hostname or "") if page.url else ""
    folded = {fold_name(n) for n in names if n}
    if host:
        folded.add(host.removeprefix("www.").split(".")[0])
    return {f for f in folded if f}


def _choose_authors(page: _Page) -> list[str]:
    """The best supported list of people; the site's own name only when the page credits nothing else."""
    proposals = _author_candidates(page)
    site = _site_words(page)

    def is_site(name: str) -> bool:
        folded = fold_name(name)
        return folded in site or folded.replace(" ", "") in site

    support: dict[str, float] = defaultdict(float)
    # Each source counts once per person: five JSON-LD objects repeating one name are one witness.
    for source, surname in {(s, _surname(n)) for s, names in proposals for n in names}:
        support[surname] += AUTHOR_WEIGHTS[source]

    def credible(source: str, name: str) -> bool:
        # A one-word name from the page's loose text ("Cloud", "Grow") needs a second witness.
        return (
            len(name.split()) > 1
            or source in _DECLARED_SOURCES
            or support[_surname(name)] > AUTHOR_WEIGHTS[source]
        )

    best: tuple[float, list[str]] | None = None
    for source, names in proposals:
        people = [n for n in names if credible(source, n)]
        # The site's name beside people is the site, not a co-author; alone it is the page's credit.
        people = [n for n in people if not is_site(n)] or people
        if not people:
            continue
        score = sum(support[_surname(n)] for n in people) / len(people) + 0.1 * AUTHOR_WEIGHTS[source]
        if best is None or score > best[0]:
            best = (score, people)
    if best is None:
        return []
    chosen = list(best[1])
    surnames = {_surname(n) for n in chosen}
    # Another source that names the same person and more (a byline with both authors where the
    # meta tag has the first) adds the others: co-authors travel together.
    for source, names in proposals:
        if surnames & {_surname(n) for n in names}:
            for name in names:
                if _surname(name) not in surnames and not is_site(name) and credible(source, name):
                    chosen.append(name)
                    surnames.add(_surname(name))
    return chosen


def _surname(name: str) -> str:
    words = fold_name(name).split()
    return words[-1] if words else ""


# --- dates ----------------------------------------------------------------------------------------


def _date_candidates(page: _Page) -> tuple[list[tuple[str, datetime]], list[datetime]]:  # noqa: PLR0912  # one branch per source
    """(publication proposals as (source, date), modification dates)."""
    published: list[tuple[str, datetime]] = []
    modified: list[datetime] = []
    dayfirst = page.dayfirst
    for obj in page.articles:
        for key, source in (("datePublished", "jsonld"), ("dateCreated", "jsonld"), ("uploadDate", "jsonld")):
            date = _date(obj.get(key), dayfirst)
            if date:
                published.append((source, date))
                break
        date = _date(obj.get("dateModified"), dayfirst)
        if date:
            modified.append(date)
    for key in _PUBLISHED_META:
        for value in page.meta.get(key, [])[:1]:
            date = _date(value, dayfirst)
            if date:
                published.append(("meta", date))
    for key in _MODIFIED_META:
        for value in page.meta.get(key.lower(), [])[:1]:
            date = _date(value, dayfirst)
            if date:
                modified.append(date)
    for element in page.tree.xpath('//*[@itemprop="datePublished"]')[:2]:
        date = _date(element.get("content") or element.get("datetime") or _text(element), dayfirst)
        if date:
            published.append(("microdata", date))
    for element in page.tree.xpath("//time[@datetime]")[:6]:
        if _in_comments(element):
            continue
        context = (
            _class_of(element) + " " + _class_of(element.getparent())
            if element.getparent() is not None
            else ""
        )
        date = _date(element.get("datetime"), dayfirst)
        if not date:
            continue
        if _MODIFIED_WORDS.search(context) or _MODIFIED_WORDS.search(
            _text(element.getparent()) if element.getparent() is not None else ""
        ):
            modified.append(date)
        else:
            published.append(("time", date))
    visible = _visible_dates(page)
    published.extend(("visible", d) for d in visible[0])
    modified.extend(visible[1])
    if page.url:
        date = url_date(page.url)
        if date:
            published.append(("url", date))
    return published, modified


def _visible_dates(page: _Page) -> tuple[list[datetime], list[datetime]]:
    """Dates written in the short lines near the headline: (published, updated)."""
    published: list[datetime] = []
    updated: list[datetime] = []
    for line in page.header_lines[:30]:
        if len(line) > 120 or _COPYRIGHT.search(line):
            continue
        date = parse_date(line, dayfirst=page.dayfirst)
        if date is None or not 1995 <= date.year <= 2100:
            continue
        (updated if _MODIFIED_WORDS.search(line) else published).append(date)
        if len(published) >= 2:
            break
    return published[:1], updated[:1]


def _naive(date: datetime) -> datetime:
    return date.astimezone(UTC).replace(tzinfo=None) if date.tzinfo else date


def _choose_date(page: _Page, fetched_at: datetime | None) -> tuple[datetime | None, datetime | None]:
    """(published, updated): the day the evidence agrees on; never after the fetch."""
    proposals, modified = _date_candidates(page)
    limit = _naive(fetched_at) + FUTURE_SLACK if fetched_at else None
    # htmldate reads the declared fields leniently (an impossible 2024-02-30 becomes 2024-02-01): it
    # is heard only on pages that declare no date, so a date we could not read is never another day.
    found = None if _declares_date(page) else _htmldate(page.tree, page.url)
    if found:
        proposals.append(("htmldate", found))
    # A modification date is the last resort of a publication date: the page was out by then.
    proposals.extend(("modified", d) for d in modified)
    proposals = [(s, d) for s, d in proposals if limit is None or _naive(d) <= limit]
    if not proposals:
        return None, _latest(modified, limit)
    days: dict[Any, float] = defaultdict(float)
    # Each source counts once per day: five JSON-LD objects repeating one value are one witness.
    for source, day in {(s, d.date()) for s, d in proposals}:
        days[day] += DATE_WEIGHTS[source]
    # The best supported day; on a tie the earlier (a page is published before it is updated).
    best_day = max(days, key=lambda d: (days[d], -d.toordinal()))
    best = next(d for s, d in sorted(proposals, key=lambda p: -DATE_WEIGHTS[p[0]]) if d.date() == best_day)
    return best, _latest(modified, limit)


def _latest(dates: list[datetime], limit: datetime | None) -> datetime | None:
    kept = [d for d in dates if limit is None or _naive(d) <= limit]
    return max(kept, key=_naive) if kept else None


def _declares_date(page: _Page) -> bool:
    """True when the page declares a publication date (meta, JSON-LD or <time>), valid or not."""
    if any(page.meta.get(key) for key in _PUBLISHED_META) or page.tree.xpath("//time[@datetime]"):
        return True
    return any(isinstance(obj.get("datePublished"), str) for obj in page.objects)


def _htmldate(tree: HtmlElement, url: str | None) -> datetime | None:
    """htmldate's fast (non-extensive) search; None when it finds nothing."""
    from htmldate import find_date

    try:
        found = find_date(tree, url=url, extensive_search=False, original_date=True, outputformat="%Y-%m-%d")
    except (ValueError, TypeError):
        return None
    return _date(found) if found else None


# --- headline -------------------------------------------------------------------------------------


def _fix_text(text: str) -> str:
    """A title as written: entities decoded ("&#038;"), UTF-8 read as Latin-1 repaired, spaces collapsed."""
    text = html.unescape(html.unescape(" ".join(text.split())))
    if re.search("[\u00c2-\u00f4][\u0080-\u00bf]", text):
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            text = text.encode("latin-1").decode("utf-8")
    return text


_LEADING_DATE = re.compile(r"^(?:[A-Z][a-z]{2,8}\.? \d{1,2},? \d{4}|\d{4}-\d{2}-\d{2})\s+")


def _strip_site(title: str, site: set[str]) -> str:
    """ "Headline | Site" -> "Headline": the parts that name the site go, the first other part stays."""
    parts = [p.strip() for p in _TITLE_SPLIT.split(title) if p.strip()]
    if len(parts) < 2:
        return title
    kept = [p for p in parts if not _names_site(p, site)]
    if not kept:
        return max(parts, key=len)
    if len(kept) == len(parts):
        # No part names the site: the longest is the headline, the rest the site or section.
        return max(parts, key=len)
    return kept[0] if len(kept[0].split()) >= 3 or len(kept) == 1 else max(kept, key=len)


def _names_site(part: str, site: set[str]) -> bool:
    folded = fold_name(part)
    squashed = folded.replace(" ", "")
    return bool(folded) and any(
        folded == s
        or squashed == s.replace(" ", "")
        or (len(s) > 3 and s.replace(" ", "") in squashed and len(squashed) <= len(s) + 12)
        for s in site
    )


def _choose_title(page: _Page) -> str | None:
    """The headline the sources agree on: JSON-LD, Open Graph, Twitter, <title>, <h1>, site names cut."""
    site = _site_words(page)
    ld_title = next(
        (
            o["headline"]
            for o in page.articles
            if isinstance(o.get("headline"), str) and o["headline"].strip()
        ),
        None,
    )
    head_title = next((_text(t) for t in page.tree.xpath("//head/title")[:1]), "")
    h1s = [_fix_text(_text(h)) for h in page.tree.xpath("//h1")[:5]]
    h1s = [_LEADING_DATE.sub("", h) for h in h1s if 3 <= len(h) <= 300]
    declared = [
        ("og", page.first("og:title")),
        ("ld", ld_title),
        ("title", head_title),
        ("twitter", page.first("twitter:title")),
        ("parsely", page.first("parsely-title")),
    ]
    candidates = [
        (source, _strip_site(_fix_text(value), site)) for source, value in declared if value and value.strip()
    ]
    named = [(s, v) for s, v in candidates if v and not _names_site(v, site)]
    h1 = next((h for h in h1s if not _names_site(h, site)), None)
    if not named:
        # Only the site's name is declared: the <h1>, else what is declared rather than nothing.
        return h1 or next((v for _s, v in candidates if v), None) or (h1s[0] if h1s else None)
    candidates = named
    order = {"ld": 0, "og": 1, "twitter": 2, "parsely": 3, "title": 4}
    best = min(candidates, key=lambda c: order[c[0]])[1]
    if h1:
        wanted, words = set(fold_name(best).split()), set(fold_name(h1).split())
        # An <h1> that shares most words with the declared title is the page's own, complete headline.
        if wanted and words and len(words & wanted) >= 0.6 * min(len(words), len(wanted)):
            return h1 if not (h1.isupper() and not best.isupper()) else best
    return best


def extract_metadata(
    tree: HtmlElement, url: str | None = None, fetched_at: datetime | None = None
) -> dict[str, Any]:
    """Return title, authors, published_at, updated_at, section, site_name, language, url of a page tree.

    `url` (where the page was fetched) adds the URL's date as evidence; `fetched_at` bounds the dates
    (none after the fetch). Pure: the tree is only read.
    """
    page = _Page(tree, url)
    published, updated = _choose_date(page, fetched_at)
    if published and updated and _naive(updated) < _naive(published):
        updated = None
    ld_section = next((o.get("articleSection") for o in page.articles if o.get("articleSection")), None)
    if isinstance(ld_section, list):
        ld_section = next((s for s in ld_section if isinstance(s, str)), None)
    section = ld_section or page.first("article:section") or page.first("parsely-section")
    ld_site = next((n for o in page.articles for n, _org in _names(o.get("publisher"), page.people)), None)
    canonical = page.first("og:url") or next(iter(tree.xpath('//link[@rel="canonical"]/@href')), None)
    return {
        "title": _choose_title(page),
        "authors": _choose_authors(page),
        "published_at": published,
        "updated_at": updated,
        "section": section if isinstance(section, str) and len(section) <= 100 else None,
        "site_name": page.first("og:site_name") or ld_site or page.first("application-name"),
        "language": page.language,
        "url": canonical
        if isinstance(canonical, str) and canonical.startswith(("http://", "https://"))
        else None,
    }
