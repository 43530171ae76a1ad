"""Metadata found in text: bylines, dates, datelines and wire/agency credits."""

from __future__ import annotations

import re
from datetime import datetime

_BYLINE = re.compile(r"^(?:written |posted |story |words )?by[:\s]+(.{3,120})$", re.I)
_AUTHOR_JUNK = re.compile(
    r"\b(email|e-mail|contact|follow|twitter|facebook|read|min(ute)?s?|updated|published|posted|"
    r"staff|editor|news|desk|agency|comments?|share|subscribe|the author|view|more|profile|"
    r"bio|photo|image|avatar|\d{4}|am|pm)\b|@|https?:|www\.",
    re.I,
)
_NAME = re.compile(r"^[A-Z][\w'’.-]*(?: [A-Za-z][\w'’.-]*){0,4}$")
_AUTHOR_SPLIT = re.compile(r"\s*(?:,|;|\band\b|&|\|)\s*")
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        (
            "jan january",
            "feb february",
            "mar march",
            "apr april",
            "may",
            "jun june",
            "jul july",
            "aug august",
            "sep sept september",
            "oct october",
            "nov november",
            "dec december",
        )
    )
    for m in names.split()
}
_MONTH_RE = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_PATTERNS = (
    # October 1, 2017 / Oct. 1, 2017 [, 10:05 am]
    re.compile(
        _MONTH_RE + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})"
        r"(?:\s*(?:at|,|-|–)?\s*(\d{1,2}):(\d{2})\s*([ap]\.?m\.?)?)?",
        re.I,
    ),
    # 1 October 2017
    re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH_RE + r",?\s+(\d{4})", re.I),
    # 2017-10-01[T10:05]
    re.compile(r"\b(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?"),
)
_UPDATED = re.compile(r"\b(updated|modified|last updated)\b", re.I)
_PUBLISHED = re.compile(r"\b(published|posted|first published|on)\b", re.I)
_DATELINE = re.compile(
    r"^((?:[A-Z][A-Z.'’-]+(?:\s+[A-Z][A-Z.'’-]+){0,3})"  # CITY in capitals: BEIJING, NEW YORK, ST. LOUIS
    r"(?:,\s+[A-Z][A-Za-z.]+(?:\s+[A-Z][A-Za-z.]+)?)?"  # optional region: , Calif. / , England
    r"(?:,?\s+[A-Z][a-z]{2,8}\.?\s+\d{1,2})?"  # optional date: , Oct. 1
    r"\s*(?:\((?:AP|Reuters|AFP|UPI|dpa|Bloomberg|CNN|IANS|PTI|Xinhua|[A-Z][A-Za-z ]{1,30})\))?"  # agency
    r"\s*(?:[–—]|--?|:)\s?)"
)
_CREDIT_LINE = re.compile(
    r"\bcontributed (to )?(this|the) (story|report|article)\b|\bcontributed reporting\b|"
    r"^\(?(additional )?reporting by\b|\bediting by\b|^\(?(writing|compiled) by\b|"
    r"^\(?(this|the) (story|report|article) (was|has been) (written|reported|compiled|produced) (by|with)\b",
    re.I,
)


def clean_author(name: str) -> str | None:
    """Return a plausible person name from a byline fragment, or None for junk ("Email the author")."""
    name = re.sub(r"^by[:\s]+", "", name.strip(), flags=re.I).strip(" ,.;:|-–—")
    if not name or len(name) > 60 or _AUTHOR_JUNK.search(name):
        return None
    if not _NAME.match(name) or (len(name.split()) < 2 and not name.isupper()):
        return None if len(name.split()) < 2 else name
    return name


def find_authors(lines: list[str]) -> list[str]:
    """Return the authors named in byline lines ("By A and B"), junk rejected, order kept."""
    authors: list[str] = []
    for line in lines:
        match = _BYLINE.match(line.strip())
        if not match:
            continue
        for part in _AUTHOR_SPLIT.split(match.group(1)):
            name = clean_author(part)
            if name and name not in authors:
                authors.append(name)
    return authors


def parse_date(text: str) -> datetime | None:
    """Return the first date written in `text` (English month names or ISO), or None."""
    for index, pattern in enumerate(_DATE_PATTERNS):
        m = pattern.search(text)
        if not m:
            continue
        try:
            if index == 0:
                month = _MONTHS[m.group(1).lower()[:3]]
                day, year = int(m.group(2)), int(m.group(3))
                hour, minute = (int(m.group(4)), int(m.group(5))) if m.group(4) else (0, 0)
                if m.group(6) and m.group(6).lower().startswith("p") and hour < 12:
                    hour += 12
                if m.group(6) and m.group(6).lower().startswith("a") and hour == 12:
                    hour = 0
                return datetime(year, month, day, hour, minute)
            if index == 1:
                month = _MONTHS[m.group(2).lower()[:3]]
                return datetime(int(m.group(3)), month, int(m.group(1)))
            hour, minute = (int(m.group(4)), int(m.group(5))) if m.group(4) else (0, 0)
            return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), hour, minute)
        except (KeyError, ValueError):
            continue
    return None


def find_dates(lines: list[str]) -> tuple[datetime | None, datetime | None]:
    """Return (published, updated) dates written in short metadata lines, either may be None."""
    published: datetime | None = None
    updated: datetime | None = None
    for line in lines:
        if len(line) > 160:
            continue
        date = parse_date(line)
        if date is None or not 1990 <= date.year <= 2100:
            continue
        if _UPDATED.search(line):
            updated = updated or date
        else:
            published = published or date
    if published is None and updated is not None:
        published = updated
    return published, updated


def find_dateline(paragraph: str) -> str | None:
    """Return the dateline opening a paragraph ("BEIJING –", "WASHINGTON (AP) —"), or None."""
    m = _DATELINE.match(paragraph)
    if not m:
        return None
    dateline = m.group(1).strip()
    city = re.match(r"[A-Z][A-Z.'’-]+", dateline)
    # The capitalised word must be a place name, not an acronym that starts a sentence ("NASA said").
    if (
        city is None
        or len(paragraph) <= len(m.group(1)) + 20
        or (dateline.endswith(":") and "(" not in dateline)
    ):
        return None
    return dateline


def find_credits(paragraphs: list[str]) -> list[str]:
    """Return the wire/agency credit lines among the last paragraphs ("… contributed to this story.")."""
    return [p for p in paragraphs[-6:] if len(p.split()) <= 80 and _CREDIT_LINE.search(p)]
