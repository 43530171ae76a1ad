"""Copies from the article's own source, through the real pipeline (embedded mode: clean, dedup, tag, store).

A site that runs one story under several URLs (section paths, the print version, a second category) is
the commonest duplicate of a feed; its lines must not be learned as the site's chrome from the copies.
"""

import random
from datetime import UTC, datetime, timedelta

import pytest

from schemas import RawArticle
from workers.core.ids import article_id
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction, upgrade
from workers.runtime import embedded
from workers.runtime.pipeline import Context

SOURCE = "citydesk.example"
T0 = datetime(2026, 4, 1, 8, tzinfo=UTC)
_NOUNS = [
    "council",
    "budget",
    "harbour",
    "school",
    "bridge",
    "hospital",
    "tram",
    "library",
    "market",
    "stadium",
    "festival",
    "river",
]
_PLACES = [
    "Northfield",
    "Eastport",
    "Millbrook",
    "Avonlea",
    "Redcliffe",
    "Kingsbury",
    "Westmere",
    "Ashford",
    "Lakeside",
    "Brookvale",
]
_VERBS = [
    "approved",
    "delayed",
    "reviewed",
    "expanded",
    "questioned",
    "funded",
    "rejected",
    "inspected",
    "reopened",
    "announced",
]
_PEOPLE = [
    "Maria Lopez",
    "Tom Baker",
    "Aisha Khan",
    "Peter Novak",
    "Lena Berg",
    "Omar Haddad",
    "Grace Liu",
    "Ivan Petrov",
]
_EXTRA = [
    "residents",
    "packed",
    "the",
    "hall",
    "while",
    "officials",
    "answered",
    "questions",
    "about",
    "costs,",
    "delays",
    "and",
    "the",
    "timetable",
    "that",
    "contractors",
    "promised",
    "last",
    "spring",
    "before",
    "prices",
    "rose",
    "sharply",
    "across",
    "the",
    "whole",
    "region",
]
SHARED_PARAGRAPH = (
    "City Desk is an independent newsroom funded by its readers. Our reporters cover the council, the "
    "courts, schools and transport across the region, and we correct our mistakes in public."
)


def _story(seed: int, paragraphs: int = 6) -> list[str]:
    """A deterministic news story of `paragraphs` paragraphs of real-looking sentences."""
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(3):
            words = rng.sample(_EXTRA, 9)
            sentences.append(
                f"The {rng.choice(_NOUNS)} committee in {rng.choice(_PLACES)} {rng.choice(_VERBS)} the plan on "
                f"{rng.choice(['Monday', 'Tuesday', 'Friday'])} after {' '.join(words)}, "
                f"{rng.choice(_PEOPLE)} said."
            )
        out.append(" ".join(sentences))
    return out


def _page(title: str, paragraphs: list[str], *, layout: str = "web") -> str:
    """The site's HTML page for a story: its navigation and footer around the article."""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if layout == "print":
        return (
            f"<html><head><title>{title} (print)</title></head><body><div class='print'><h1>{title}</h1>"
            f"{body}<p class='note'>Printed from citydesk.example</p></div></body></html>"
        )
    nav = "".join(
        f"<li><a href='/{s}'>{s.title()}</a></li>" for s in ("news", "sport", "business", "opinion")
    )
    return (
        f"<html><head><title>{title} | City Desk</title></head><body><nav><ul>{nav}</ul></nav>"
        f"<article><h1>{title}</h1>{body}</article>"
        "<footer><p>Sign up for the City Desk morning briefing, delivered to your inbox every weekday.</p>"
        "<p>© 2026 City Desk Media. All rights reserved. Terms | Privacy | Contact</p></footer></body></html>"
    )


def _raw(path: str, body: str, *, hours: int = 0, content_type: str = "text/html") -> RawArticle:
    return RawArticle(
        source=SOURCE,
        body=body,
        url=f"https://{SOURCE}{path}",
        content_type=content_type,
        published_at=T0 + timedelta(hours=hours),
    )


def _background(n: int) -> list[RawArticle]:
    """`n` other stories of the site, so its chrome is learned as the pipeline goes."""
    return [_raw(f"/news/other-{i}", _page(f"Other story {i}", _story(1000 + i)), hours=i) for i in range(n)]


def _clusters(url: str, raws: list[RawArticle]) -> list[tuple[str, str]]:
    """(verdict, cluster) of each stored article, in the order given."""
    out = []
    with transaction(url) as session:
        for raw in raws:
            stored = repo.fetch_article(session, article_id(raw))
            assert stored is not None, raw.url
            out.append((stored.dedup, stored.cluster_id))
    return out


@pytest.fixture(params=["sqlite_url", "postgres_url"])
def ctx(request: pytest.FixtureRequest) -> Context:
    url: str = request.getfixturevalue(request.param)
    upgrade(url)
    return Context(Settings(database_url=url, tag_duplicates=False))


def test_byte_identical_pages_of_one_source_are_one_cluster(ctx: Context) -> None:
    """Four stories, each sent twice by the site under two URLs with identical HTML: four clusters of two,
    the second copy an exact duplicate (raw key), whatever the site's learned chrome."""
    background = _background(6)
    pairs = []
    for n in range(4):
        page = _page(f"Story {n}", _story(n))
        pairs.append((_raw(f"/world/{n}", page, hours=10 + n), _raw(f"/print/story-{n}", page, hours=10 + n)))
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    report = embedded.run([*background, *first, *second], ctx)
    assert report.failures == []
    got_first = _clusters(ctx.database_url, first)
    got_second = _clusters(ctx.database_url, second)
    assert [kind for kind, _ in got_second] == ["exact_duplicate"] * 4
    assert [c for _, c in got_second] == [c for _, c in got_first]
    assert len({c for _, c in got_first}) == 4
    assert [kind for kind, _ in _clusters(ctx.database_url, background)] == ["unique"] * 6


def test_cleaned_identical_copy_of_one_source_is_an_exact_duplicate(ctx: Context) -> None:
    """The same story saved twice as text by the site (different bytes, identical cleaned text)."""
    text = "Harbour plan approved\n\n" + "\n\n".join(_story(7))
    a = _raw("/news/harbour", text, content_type="text/plain")
    b = _raw("/local/harbour-plan", text + "\n\n\n", hours=1, content_type="text/plain")
    report = embedded.run([*_background(6), a, b], ctx)
    assert report.failures == []
    (kind_a, cluster_a), (kind_b, cluster_b) = _clusters(ctx.database_url, [a, b])
    assert (kind_a, kind_b) == ("unique", "exact_duplicate")
    assert cluster_a == cluster_b == article_id(a)


def test_near_copies_of_one_source_under_several_urls_are_one_cluster(ctx: Context) -> None:
    """Headline changed, a paragraph added, the print layout: one cluster with the original."""
    story = _story(21)
    original = _raw("/news/tram-line", _page("Tram line delayed", story))
    headline = _raw("/transport/tram", _page("Tram extension faces new delay", story), hours=1)
    added = _raw("/news/tram-line-update", _page("Tram line delayed", [*story, *_story(99, 1)]), hours=2)
    printed = _raw("/print/tram-line", _page("Tram line delayed", story, layout="print"), hours=3)
    copies = [headline, added, printed]
    report = embedded.run([*_background(6), original, *copies], ctx)
    assert report.failures == []
    got = _clusters(ctx.database_url, [original, *copies])
    assert got[0] == ("unique", article_id(original))
    assert all(kind != "unique" for kind, _ in got[1:]), got
    assert {c for _, c in got} == {article_id(original)}


def test_two_stories_of_one_source_sharing_a_paragraph_stay_apart(ctx: Context) -> None:
    """Different stories that both end with the site's standard paragraph are two articles, however many."""
    stories = [
        _raw(f"/news/story-{n}", _page(f"Story {n}", [*_story(300 + n), SHARED_PARAGRAPH]), hours=n)
        for n in range(4)
    ]
    report = embedded.run(stories, ctx)
    assert report.failures == []
    got = _clusters(ctx.database_url, stories)
    assert [kind for kind, _ in got] == ["unique"] * 4
    assert len({c for _, c in got}) == 4
