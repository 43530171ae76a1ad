"""Metadata judged by evidence: authors, dates and headlines from small page heads and bylines."""

from __future__ import annotations

import json
from datetime import datetime

from schemas.raw import RawArticle
from workers.stages.clean import clean
from workers.stages.cleaning.html import parse_html
from workers.stages.cleaning.htmlmeta import extract_metadata
from workers.stages.cleaning.meta import dayfirst_of, not_after, parse_date, split_authors

AID = "0" * 32
BODY = (
    "<p>The county council voted on Tuesday to reopen the old ferry terminal after a four-year closure, "
    "councillors said.</p><p>Work on the pier will begin in the spring and should be finished before "
    "the summer season, the operator said.</p>"
)


def _page(head: str = "", header: str = "", lang: str = "en", body: str = BODY) -> str:
    return (
        f'<html lang="{lang}"><head>{head}</head><body><article><h1>Ferry terminal to reopen</h1>'
        f"{header}{body}</article></body></html>"
    )


def _meta(html: str, url: str | None = None, fetched_at: datetime | None = None) -> dict[str, object]:
    tree = parse_html(html)
    assert tree is not None
    return extract_metadata(tree, url=url, fetched_at=fetched_at)


def _ld(obj: object) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


def test_jsonld_author_array_gives_every_author() -> None:
    """A JSON-LD `author` array of Person objects gives every person, in order."""
    head = _ld(
        {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": "Ferry terminal to reopen",
            "author": [{"@type": "Person", "name": "Jane Doe"}, {"@type": "Person", "name": "John Roe"}],
        }
    )
    assert _meta(_page(head))["authors"] == ["Jane Doe", "John Roe"]


def test_jsonld_person_in_graph_by_reference() -> None:
    """An article in an @graph whose author is an @id reference to a Person object gets the person's name,
    and the publishing Organization is not an author."""
    head = _ld(
        {
            "@context": "https://schema.org",
            "@graph": [
                {"@type": "Organization", "@id": "#org", "name": "Gazette Media"},
                {"@type": "Person", "@id": "#p1", "name": "Amira Haddad"},
                {
                    "@type": "BlogPosting",
                    "headline": "Ferry terminal to reopen",
                    "author": {"@id": "#p1"},
                    "publisher": {"@id": "#org"},
                },
            ],
        }
    )
    assert _meta(_page(head))["authors"] == ["Amira Haddad"]


def test_rel_author_link() -> None:
    """A `rel=author` link names the author when nothing declares one."""
    header = '<p class="meta">Posted in News by <a rel="author" href="/u/kim">Kim Lee</a></p>'
    assert _meta(_page(header=header))["authors"] == ["Kim Lee"]


def test_visible_byline_several_authors_and_a_role() -> None:
    """A visible "By A, B and C" byline gives three people; a role and a desk after them are not people."""
    header = "<div><span>By</span></div><div>Zackery Cuevas, Maria Lopez and Tom Baker</div>"
    assert _meta(_page(header=header))["authors"] == ["Zackery Cuevas", "Maria Lopez", "Tom Baker"]
    assert split_authors(["Zackery Cuevas Writer; Hardware"]) == ["Zackery Cuevas"]
    assert split_authors(["By Ann Wu & Bo Li"]) == ["Ann Wu", "Bo Li"]
    assert split_authors(["Email the author", "jane@example.com", "https://x.example/jane"]) == []


def test_meta_author_that_is_the_site_name_gives_way_to_a_person() -> None:
    """A meta author naming the site loses to the person in the byline."""
    head = '<meta name="author" content="Gazette"><meta property="og:site_name" content="Gazette">'
    header = "<p>By Jane Doe</p>"
    assert _meta(_page(head, header), url="https://gazette.example/a")["authors"] == ["Jane Doe"]


def test_modified_date_is_not_the_publication_date() -> None:
    """article:modified_time and an "Updated" line are the update; the published time is the publication."""
    head = (
        '<meta property="article:published_time" content="2025-03-02T09:00:00+00:00">'
        '<meta property="article:modified_time" content="2025-11-20T10:00:00+00:00">'
    )
    header = "<p>Updated November 20, 2025</p>"
    meta = _meta(_page(head, header))
    assert isinstance(meta["published_at"], datetime)
    assert meta["published_at"].date().isoformat() == "2025-03-02"
    assert isinstance(meta["updated_at"], datetime)
    assert meta["updated_at"].date().isoformat() == "2025-11-20"


def test_copyright_year_is_no_date() -> None:
    """A copyright line near the headline is not a publication date."""
    header = "<p>© March 3, 2019 Gazette Media</p>"
    assert _meta(_page(header=header))["published_at"] is None


def test_day_month_order_from_language_and_other_dates() -> None:
    """04/09/2025 is 4 September on a British or French page, April 9 on an American one; another date
    on the page with a day above 12 decides over the language."""
    header = "<p>Published 04/09/2025</p>"
    british = _meta(_page(header=header, lang="en-GB"))["published_at"]
    american = _meta(_page(header=header, lang="en-US"))["published_at"]
    assert isinstance(british, datetime)
    assert isinstance(american, datetime)
    assert (british.month, british.day) == (9, 4)
    assert (american.month, american.day) == (4, 9)
    assert dayfirst_of("en-US", ["Updated 25/12/2025"]) is True
    assert parse_date("04/09/2025") is None  # ambiguous without an order


def test_future_date_is_refused() -> None:
    """A date after the page's fetch is refused; the other evidence (the URL's date) stands."""
    head = '<meta property="article:published_time" content="2031-01-01T00:00:00Z">'
    fetched = datetime(2025, 6, 1, 12, 0)
    meta = _meta(_page(head), url="https://gazette.example/2025/05/30/ferry", fetched_at=fetched)
    assert isinstance(meta["published_at"], datetime)
    assert meta["published_at"].date().isoformat() == "2025-05-30"
    assert not_after(datetime(2031, 1, 1), fetched) is None
    assert not_after(datetime(2025, 6, 1, 20, 0), fetched) == datetime(2025, 6, 1, 20, 0)


def test_clean_stage_refuses_a_future_date() -> None:
    """Through the stage, a page whose only date lies after its fetch gets no publication date."""
    head = '<meta property="article:published_time" content="2031-01-01T00:00:00Z">'
    raw = RawArticle(source="gazette.example", body=_page(head), fetched_at=datetime(2025, 6, 1))
    assert clean(raw, AID).published_at is None
    assert clean(raw.model_copy(update={"fetched_at": None}), AID).published_at is not None


def test_headline_without_site_name_and_entities() -> None:
    """The declared title loses its site name and its HTML entities; an <h1> in capitals keeps the case."""
    head = (
        '<meta property="og:site_name" content="The Gazette">'
        "<title>Ferry terminal to reopen &amp;#038; expand | The Gazette</title>"
    )
    html = (
        f"<html><head>{head}</head><body><h1>FERRY TERMINAL TO REOPEN &amp; EXPAND</h1>{BODY}</body></html>"
    )
    assert _meta(html, url="https://thegazette.example/x")["title"] == "Ferry terminal to reopen & expand"


def test_headline_not_the_site_name() -> None:
    """A <title> that is only the site's name is no headline: the <h1> is."""
    head = '<meta property="og:site_name" content="The Go Blog"><title>The Go Blog</title>'
    html = f"<html><head>{head}</head><body><h1>Defer, Panic, and Recover</h1>{BODY}</body></html>"
    assert _meta(html, url="https://go.dev/blog/defer")["title"] == "Defer, Panic, and Recover"
