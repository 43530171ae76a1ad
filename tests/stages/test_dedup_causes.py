"""The three causes of false and missed duplicates seen end to end (issue 8), on small fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.cleaned import CleanedArticle
from schemas.dedup import DedupVerdict
from workers.db.dedup_index import ensure_verdict
from workers.db.engine import dispose_all, transaction, upgrade
from workers.stages.dedup import (
    DedupParams,
    body_paragraphs,
    evidence_from_bytes,
    evidence_to_bytes,
    fingerprint,
    words,
)

PARAMS = DedupParams()

STORY = (
    "The city council voted on Tuesday to close the old harbour bridge to cars from next spring, after "
    "engineers found that corrosion had weakened two of its main supports beyond cheap repair.\n\n"
    "Mayor Ellen Doyle said the decision was painful but unavoidable, and promised a shuttle bus for the "
    "four thousand commuters who cross the bridge each morning on their way to the port district.\n\n"
    "Shop owners on the south bank warned that fewer visitors would reach them, and asked the council to "
    "speed up plans for a new crossing that has been discussed for more than a decade without funding.\n\n"
    "A public hearing on the shuttle routes will be held next month at the library, the council said."
)
OTHER_STORY = (
    "Volunteers planted more than two thousand trees along the river on Saturday, the largest single "
    "day of planting since the flood, in a project the regional park service hopes to repeat each year.\n\n"
    "Organisers said the saplings, mostly willow and alder, would hold the banks together and give shade "
    "to the fish that returned after the water quality improved, according to the last survey."
)
# Chrome a cleaner may leave in: short nav lines, and long prose-like lines (a site blurb, a donation
# appeal) that look like an article's own sentences.
SITE_CHROME_HEAD = [
    "Home | News | Sports | Business | Opinion | Contact Us",
    "About us | Membership | Contact Us",
    "The Valley Courier has served readers across the county since 1921, with local news, sports, "
    "obituaries and community events delivered every morning to your door and your phone.",
]
SITE_CHROME_TAIL = [
    "Support independent local journalism: our reporters cover the council meetings, school boards "
    "and courts that nobody else attends, and your subscription is what keeps them there.",
    "Copyright 2008 Valley Courier Media. All rights reserved.",
]


def cleaned(article_id: str, text: str, url: str) -> CleanedArticle:
    """A cleaned article for these tests."""
    return CleanedArticle(article_id=article_id, version="test", text=text, url=url or None)


def wrapped(body: str) -> str:
    """`body` inside the site's chrome, as a cleaner that kept the chrome would emit it."""
    return "\n\n".join([*SITE_CHROME_HEAD, body, *SITE_CHROME_TAIL])


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A migrated SQLite database (the stage's rules do not depend on the dialect)."""
    url = f"sqlite:///{tmp_path}/dedup.db"
    upgrade(url)
    yield url
    dispose_all()


def decide(url: str, article: CleanedArticle, source: str) -> DedupVerdict:
    """ensure_verdict in its own transaction."""
    with transaction(url) as session:
        return ensure_verdict(session, article, PARAMS, source=source)


def test_leftover_chrome_does_not_match_the_page_it_came_from(db: str) -> None:
    """Cause 1: a copy of story A wrapped in site B's chrome joins A, never B (whose text kept that chrome)."""
    site_b_page = decide(
        db, cleaned("b" * 32, wrapped(OTHER_STORY), "https://courier.example/trees"), "courier.example"
    )
    original = decide(db, cleaned("a" * 32, STORY, "https://harbour.example/bridge"), "harbour.example")
    copy_text = wrapped(STORY.replace("Tuesday", "Monday").rsplit("\n\n", 1)[0])
    copy = decide(db, cleaned("c" * 32, copy_text, "https://wire.example/bridge-closing"), "wire.example")
    assert (site_b_page.kind, original.kind) == ("unique", "unique")
    assert (copy.kind, copy.duplicate_of) == ("near_duplicate", "a" * 32)
    assert copy.reason.startswith("body_")
    # and the chrome alone is nobody's duplicate: site B's page and the copy share only chrome
    stub = decide(
        db, cleaned("d" * 32, wrapped("Photo gallery"), "https://courier.example/photos"), "courier.example"
    )
    assert stub.kind == "unique"


def test_two_articles_cleaned_to_the_same_short_chrome_are_not_exact_duplicates(db: str) -> None:
    """Cause 2: two different pages of one site whose cleaned text is the same 20 characters stay unique."""
    first = decide(
        db, cleaned("e" * 32, "| Breaking News: | |", "https://courier.example/a1"), "courier.example"
    )
    second = decide(
        db, cleaned("f" * 32, "| Breaking News: | |", "https://courier.example/a2"), "courier.example"
    )
    assert (first.kind, second.kind) == ("unique", "unique")
    assert second.duplicate_of is None
    assert second.reason.startswith("below_floor")
    # the floor: at least min_body_words words of prose; chrome lines are not prose
    nav_only = fingerprint(
        cleaned("h" * 32, "\n\n".join(SITE_CHROME_HEAD[:2] * 10), "https://x.example/n"), PARAMS
    )
    assert not nav_only.keyed
    assert nav_only.bands == ()


def test_same_site_articles_sharing_chrome_are_not_merged(db: str) -> None:
    """Cause 2, longer chrome: two different articles of one site in the same prose-like chrome stay apart."""
    one = decide(db, cleaned("i" * 32, wrapped(STORY), "https://courier.example/bridge"), "courier.example")
    two = decide(
        db, cleaned("j" * 32, wrapped(OTHER_STORY), "https://courier.example/trees"), "courier.example"
    )
    stub = decide(db, cleaned("k" * 32, wrapped("Video"), "https://courier.example/video"), "courier.example")
    assert (one.kind, two.kind, stub.kind) == ("unique", "unique", "unique")
    # the stub's prose is all learned chrome of its source by now: below the floor
    assert stub.reason.startswith("below_floor")


def test_copy_in_heavy_chrome_is_found(db: str) -> None:
    """Cause 3: a copy whose cleaned text is mostly chrome (Jaccard of whole texts far below LSH reach) is found."""
    original = decide(db, cleaned("l" * 32, STORY, "https://harbour.example/bridge"), "harbour.example")
    heavy = [f"Local | Sports {n} | Weather | Traffic | Obituaries {n} | Classifieds" for n in range(120)]
    heavy += [f"Photos: Scenes From The County Fair, Day {n}" for n in range(120)]
    copy_text = "\n\n".join([*heavy[:120], STORY, *heavy[120:]])
    story_words, copy_words = set(words(STORY)), words(copy_text)
    # whole-text overlap is tiny: the chrome is most of the text
    assert sum(w in story_words for w in copy_words) < 0.2 * len(copy_words)
    whole = fingerprint(cleaned("m" * 32, copy_text, "https://wire.example/x"), PARAMS)
    assert whole.keyed
    copy = decide(db, cleaned("m" * 32, copy_text, "https://wire.example/x"), "wire.example")
    assert original.kind == "unique"
    assert (copy.kind, copy.duplicate_of) == ("near_duplicate", "l" * 32)


def test_body_paragraphs_keep_prose_and_drop_chrome_lines() -> None:
    """Nav, link lists and title-case labels are not prose; sentences, and shouted wire copy, are."""
    assert body_paragraphs("Home | News | Sports | Business | Opinion | Contact Us", PARAMS) == []
    assert body_paragraphs("Top Stories From Around The World Today In Pictures And Video", PARAMS) == []
    line = "The council voted on Tuesday to close the bridge to cars from next spring."
    assert body_paragraphs(line, PARAMS) == [line]
    shouted = "THE COUNCIL VOTED ON TUESDAY TO CLOSE THE BRIDGE, ENGINEERS SAID. IT IS OLD."
    assert body_paragraphs(shouted, PARAMS) == [shouted]


def test_evidence_round_trips_through_bytes() -> None:
    """The stored evidence reads back equal; unknown bytes read as no evidence."""
    fp = fingerprint(cleaned("n" * 32, STORY, "https://harbour.example/bridge"), PARAMS)
    back = evidence_from_bytes(evidence_to_bytes(fp.evidence))
    assert back is not None
    assert back.body.tolist() == fp.evidence.body.tolist()
    assert back.core.tolist() == fp.evidence.core.tolist()
    assert (back.level, back.body_words, back.body_shingles) == (0, fp.evidence.body_words, fp.shingles)
    assert evidence_from_bytes(b"junk") is None
    assert evidence_from_bytes(None) is None


def test_copies_without_source_or_url_are_not_taken_for_one_sources_chrome(db: str) -> None:
    """With no source, URL or site name nothing is learned, so copies from unknown outlets still match."""
    first = decide(db, cleaned("o" * 32, STORY, ""), "")
    with transaction(db) as session:
        second = ensure_verdict(session, cleaned("p" * 32, STORY.replace("Tuesday", "Monday"), ""), PARAMS)
    assert first.kind == "unique"
    assert (second.kind, second.duplicate_of) == ("near_duplicate", "o" * 32)
