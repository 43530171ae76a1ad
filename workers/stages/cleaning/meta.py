"""Metadata found in text: bylines, dates, datelines and wire/agency credits."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

_BYLINE = re.compile(r"^(?:written |posted |story |words )?by[:\s]+(.{3,120})$", re.I)
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


def find_authors(lines: list[str]) -> list[str]:
    """Return the authors named in byline lines ("By A and B"), junk rejected, order kept."""
    return split_authors([m.group(1) for line in lines if (m := _BYLINE.match(line.strip()))])


_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[./-](\d{1,2})[./-](\d{4})\b")
_YMD_DATE = re.compile(r"\b(\d{4})[/.](\d{1,2})[/.](\d{1,2})\b")


def parse_date(text: str, dayfirst: bool | None = None) -> datetime | None:  # noqa: PLR0911, PLR0912  # one return per written form
    """Return the first date written in `text` (English month names, ISO, or numeric), or None.

    A numeric date (04/09/2025) is read day first when `dayfirst` is true, month first when it is
    false; when it is None only an unambiguous numeric date (a part above 12) is read.
    """
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
    m = _YMD_DATE.search(text)
    if m:
        try:
            return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            pass
    m = _NUMERIC_DATE.search(text)
    if m:
        a, b, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if a > 12 >= b:
            order: bool | None = True
        elif b > 12 >= a:
            order = False
        else:
            order = dayfirst
        if order is not None:
            day, month = (a, b) if order else (b, a)
            try:
                return datetime(year, month, day)
            except ValueError:
                return None
    return None


_MONTH_FIRST_REGIONS = frozenset({"us", "ph", "ca", "fm", "pw", "mh"})


def dayfirst_of(language_tag: str | None, lines: list[str]) -> bool:
    """Whether the page writes numeric dates day first (31/12/2025) or month first (12/31/2025).

    The page's other numeric dates decide when one of them has a part above 12; otherwise its
    language: English without a region or with a month-first region (US, Philippines, Canada) is
    month first, every other language day first.
    """
    votes = 0
    for line in lines:
        for m in _NUMERIC_DATE.finditer(line):
            a, b = int(m.group(1)), int(m.group(2))
            votes += (a > 12 >= b) - (b > 12 >= a)
    if votes:
        return votes > 0
    parts = re.split(r"[-_]", (language_tag or "").strip().lower())
    if not parts[0]:
        return False
    if parts[0] == "en":
        return len(parts) > 1 and parts[1] not in _MONTH_FIRST_REGIONS
    return True


_URL_DATE = re.compile(r"/((?:19|20)\d{2})[/-]?(0[1-9]|1[0-2])[/-]?(0[1-9]|[12]\d|3[01])(?:/|-|_|\.|$)")


def url_date(url: str) -> datetime | None:
    """The day a URL's path names (/2025/09/04/, /2025-09-04-, /20250904/), or None."""
    m = _URL_DATE.search(urlsplit(url).path)
    if not m:
        return None
    try:
        return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
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


_ROLE_WORDS = re.compile(
    r"\b(?:senior|chief|staff|contributing|associate|deputy|executive|managing|lead|guest|freelance|"
    r"special|news|sports?|political|business|tech(?:nology)?|science|health|"
    r"writer|editor|reporter|correspondent|contributor|columnist|journalist|author|photographer|"
    r"producer|analyst|critic|blogger|founder|ceo|cto|director|manager|specialist|strategist|"
    r"consultant|expert|intern|fellow|host|anchor|publisher)s?\b.*$",
    re.I,
)
_NAME_PREFIX = re.compile(
    r"^(?:(?:written|posted|reported|story|words|text|article|reviewed|edited|compiled)\s+)?"
    r"(?:by|von|par|por|door|di|av|af|author|authors|autor|auteur|written by)\s*[:\s]\s*",
    re.I,
)
_CREDENTIAL = re.compile(r"^(?:[A-Z]{2,5}|Ph\.?D\.?|M\.?D\.?|[A-Z]\.[A-Z]\.?|R\.?N\.?|M\.?S\.?)$")
_NOT_NAME = re.compile(
    r"@|https?:|www\.|\.com\b|\d|\b(?:admin|administrator|"
    r"anonymous|unknown|share|follow|email|e-mail|subscribe|comments?|read|more|view|posts?|"
    r"profile|about|contact|updated|published|min|ago|our|home|menu|search|login|sign|"
    r"facebook|twitter|linkedin|instagram|pinterest|print|reading|time|see|all|articles?|"
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    re.I,
)
_GLUED = re.compile(r"[a-z][A-Z][a-z]+[A-Z]")
"""Words glued by a page's markup ("SizeSmallMediumLarge"); one inner capital (DeSiato, McIntyre) is fine."""
_AUTHORS_SPLIT = re.compile(r"\s*(?:,|;|\||&|\+|/|\band\b|\bund\b|\bet\b|\by\b|\be\b|\bwith\b)\s*")


def fold_name(name: str) -> str:
    """A name case- and accent-folded, words joined by one space (for comparing names)."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(re.findall(r"[^\W\d_]+", text))


def person_name(fragment: str, strict: bool = True) -> str | None:
    """A person's name out of one byline fragment, without "By", a role, a date or an address; else None.

    "By Jane Doe" -> "Jane Doe"; "Zackery Cuevas Writer" -> "Zackery Cuevas"; "Email the author",
    "admin", "jane@example.com" -> None. `strict` (for loose sources) wants capitalised words; a
    declared author field or an explicit "By" line may name a person in lower case ("ibby").
    """
    name = " ".join(fragment.split()).strip(" ,.;:|-–—·•()[]\"'")
    name = _NAME_PREFIX.sub("", name).strip(" ,.;:|-–—")
    # "Jane Doe 4 August 2010", "Jane (J.) Doe": a date after the name and a parenthesis go.
    name = _GLUED_MONTH.sub("", _AFTER_NAME.split(name)[0])
    if _MONTH_WORD.match(name):
        return None
    name = " ".join(re.sub(r"\([^)]*\)", " ", name).split()).strip(" ,.;:|-–—")
    name = re.sub(r"^(?:Author|Written by|By)(?=[A-Z])", "", name)
    without_role = _ROLE_WORDS.sub("", name).strip(" ,.;:|-–—")
    if without_role != name and len(without_role.split()) < 2:
        return None  # "Shipping Expert", "Senior Editor": a role, not a person
    name = without_role
    if not name or len(name) > 50 or _CREDENTIAL.match(name) or _NOT_NAME.search(name) or _GLUED.search(name):
        return None
    words = name.split()
    capitalised = all(w[:1].isupper() or w.lower() in _PARTICLES for w in words)
    # A lower-case name is a handle ("ibby", "kirstin boatto"), never a phrase ("Save as PDF", "into yours!").
    handle = name.islower() and len(words) <= 3 and not re.search(r"[!?]", name)
    if len(words) > 5 or not (capitalised or (not strict and handle)) or words[-1].lower() in _TRAILING:
        return None
    if not any(ch.isalpha() for ch in name):
        return None
    return name


_AFTER_NAME = re.compile(r"\s+(?=\d|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d)", re.I)
_GLUED_MONTH = re.compile(r"(?<=[a-z])(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?$")
"""A date's month glued to the name by the page's markup ("Marco BambiniDec")."""
_MONTH_WORD = re.compile(_MONTH_RE + r"$", re.I)
_TRAILING = frozenset({"by", "from", "of", "and", "the", "with", "in", "on", "at"})
"""Words a name never ends with ("Researched by"): the fragment is a phrase cut short."""
_PARTICLES = frozenset(
    {"van", "von", "der", "den", "de", "da", "di", "du", "la", "le", "del", "bin", "al", "ter"}
)


def split_authors(values: list[str], strict: bool = True) -> list[str]:
    """The people named in some author strings ("A, B and C", "A & B", "By A | Writer"), order kept."""
    authors: list[str] = []
    seen: set[str] = set()
    for value in values:
        text = _NAME_PREFIX.sub("", " ".join(value.split()))
        for segment in re.split(r"\s*[;|]\s*", text):
            for part in _AUTHORS_SPLIT.split(segment):
                name = person_name(part, strict)
                if name and fold_name(name) not in seen:
                    seen.add(fold_name(name))
                    authors.append(name)
            if _ROLE_WORDS.search(segment):
                break  # "Jane Doe Writer; Hardware": what follows a role is the desk, not a person
        credit = desk_credit(text) if not authors else None
        if credit:
            seen.add(fold_name(credit))
            authors.append(credit)
    return authors


_CREDIT_WORDS = re.compile(
    r"\b(?:staff|team|desk|newsdesk|editors?|editorial|contributors?|writers?|reporters?|doctors?|"
    r"clinicians?|experts?|newsroom)\b",
    re.I,
)


def desk_credit(value: str) -> str | None:
    """A byline that credits a desk or a team and no person ("News Desk", "By the Lavazza Team"), or None.

    Kept as the page's credit only when the whole byline is that credit: a role after a person's
    name ("Jane Doe, Staff Writer") is never an author of its own.
    """
    text = " ".join(_NAME_PREFIX.sub("", value).split()).strip(" ,.;:|-–—")
    words = text.split()
    if not 1 < len(words) <= 4 or not _CREDIT_WORDS.search(text) or re.search(r"[\d@/:!?]", text):
        return None
    if not all(w[:1].isupper() or w.lower() in {"the", "our", "of", "and", "&"} for w in words):
        return None
    return text


FUTURE_SLACK = timedelta(days=1)
"""How far after the fetch a page's date may lie (time zones, a date-only value) before it is refused."""


def not_after(date: datetime | None, fetched_at: datetime | None) -> datetime | None:
    """`date`, or None when it lies after the page's fetch (a page cannot be published after it was read)."""
    if date is None or fetched_at is None:
        return date

    def naive(value: datetime) -> datetime:
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value

    return None if naive(date) > naive(fetched_at) + FUTURE_SLACK else date
