"""Issue 28: copies the index must not lose and stories it must not merge, built from real pages.

Each case puts a story into a real site's chrome: the repo's example pages (examples/: The Valley Post's
HTML page, The Harbour Times' text dump) and the clean stage's golden text dump (The Bayside Herald),
their article swapped for another story. Every item goes through the REAL clean stage (with the chrome
its source has taught it, as the pipeline's clean step) and the real dedup index, on SQLite and
PostgreSQL, one transaction each.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from schemas import RawArticle
from schemas.dedup import DedupVerdict
from workers.core.ids import article_id
from workers.core.settings import Settings
from workers.db import repo
from workers.db.dedup_index import ensure_verdict
from workers.db.engine import transaction, upgrade
from workers.stages import clean as clean_stage
from workers.stages.dedup import DedupParams, raw_key

ROOT = Path(__file__).resolve().parents[2]
VALLEY_HTML = (ROOT / "examples" / "valleypost-library.html").read_text(encoding="utf-8")
HARBOUR_TXT = (ROOT / "examples" / "harbourtimes-wind-farm.txt").read_text(encoding="utf-8")
BAYSIDE_TXT = (Path(__file__).parent / "golden" / "harbour-ferry-strike.txt").read_text(encoding="utf-8")
T0 = datetime(2026, 5, 4, 6, tzinfo=UTC)
PARAMS = DedupParams()


def _story_lines(dump: str, first: str, last: str) -> list[str]:
    """The article paragraphs of a text dump, from the line starting `first` to the one starting `last`,
    without the share buttons and ad labels between them."""
    lines = [line.strip() for line in dump.split("\n") if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if line.startswith(last))
    return [line for line in lines[start : end + 1] if not line.startswith(("Share on", "Advertisement"))]


WIND = _story_lines(HARBOUR_TXT, "OSLO (Coastal Press)", "Coastal Press writer")
FERRY = _story_lines(BAYSIDE_TXT, "PORT ELLIS (AP)", "Associated Press writer")
LIBRARY = [html.unescape(p) for p in re.findall(r"<p>(.*?)</p>", VALLEY_HTML.split("<article>")[1])]


# --- the sites ------------------------------------------------------------------------------------


def valley_page(title: str, paragraphs: list[str], path: str, *, layout: str = "web") -> str:
    """The Valley Post's HTML page (examples/valleypost-library.html) with another story in it; the
    print layout is the story alone with a short print header."""
    body = "".join(f"<p>{html.escape(p)}</p>\n" for p in paragraphs)
    if layout == "print":
        return (
            f"<html><head><title>{html.escape(title)} | The Valley Post (print)</title></head><body>"
            f"<div class='print'><p class='masthead'>The Valley Post</p><h1>{html.escape(title)}</h1>{body}"
            f"<p class='url'>Printed from https://valleypost.example{path}</p></div></body></html>"
        )
    head, rest = VALLEY_HTML.split("<article>")
    _, tail = rest.split("</article>")
    head = head.replace("Riverside library reopens after flood repairs", html.escape(title))
    head = head.replace(
        "https://valleypost.example/news/riverside-library-reopens", f"https://valleypost.example{path}"
    )
    share = re.search(r'<div class="share">.*?</div>', rest)
    assert share is not None
    return f"{head}<article>\n<h1>{html.escape(title)}</h1>\n{share.group()}\n{body}</article>{tail}"


def _dump_parts(dump: str, headline: str, first: str, tail_from: str) -> tuple[list[str], list[str]]:
    lines = dump.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if line.startswith(tail_from))
    # the standfirst (the lead's first sentence, repeated above the article) goes with the article
    head = [line for line in lines[: start - 2] if line.strip() != headline]
    return head, lines[end:]


HARBOUR_HEAD, HARBOUR_TAIL = _dump_parts(
    HARBOUR_TXT,
    "Norway Approves North Sea Wind Farm After Fishing Deal",
    "OSLO (Coastal Press)",
    "Advertisement",
)
BAYSIDE_HEAD, BAYSIDE_TAIL = _dump_parts(
    BAYSIDE_TXT,
    "Harbour Ferry Crews Walk Out Over Night-Shift Rosters",
    "PORT ELLIS (AP)",
    "The Bayside Herald newsroom",
)


def dump_page(site: str, headline: str, paragraphs: list[str]) -> str:
    """A text dump of `site` ('harbour' or 'bayside') with another story in its chrome."""
    head, tail = (HARBOUR_HEAD, HARBOUR_TAIL) if site == "harbour" else (BAYSIDE_HEAD, BAYSIDE_TAIL)
    return "\n".join([*head, "", headline, "", "\n\n".join(paragraphs), "", *tail])


def raw(source: str, path: str, body: str, *, hours: float = 0, html_page: bool = True) -> RawArticle:
    """A raw article of `source` at `path`."""
    return RawArticle(
        source=source,
        body=body,
        url=f"https://{source}{path}",
        content_type="text/html" if html_page else "text/plain",
        published_at=T0 + timedelta(hours=hours),
    )


# --- the pipeline: the real clean stage, then the dedup index ------------------------------------------


@dataclass
class Index:
    url: str
    settings: Settings

    def decide(self, item: RawArticle) -> DedupVerdict:
        """Clean `item` with the chrome its source taught (as the clean step), then decide it."""
        keys = clean_stage.line_keys(item)
        aid = article_id(item)
        with transaction(self.url) as session:
            (chrome,) = repo.learn_chrome(
                session, [(item.source, repo.sighting_id(item), keys)], self.settings.chrome_min_articles
            )
        cleaned = clean_stage.clean(item, aid, chrome=chrome)
        with transaction(self.url) as session:
            return ensure_verdict(session, cleaned, PARAMS, source=item.source, raw_key=raw_key(item.body))

    def run(self, items: list[RawArticle]) -> list[DedupVerdict]:
        """Each item's verdict, in order."""
        return [self.decide(item) for item in items]

    def clusters(self, items: list[RawArticle]) -> list[str]:
        """The cluster each item ends in (an earlier-published copy may take a cluster over)."""
        with transaction(self.url) as session:
            return [
                session.execute(
                    text("SELECT cluster_id FROM dedup_signatures WHERE article_id = :a"),
                    {"a": article_id(item)},
                ).scalar_one()
                for item in items
            ]


@pytest.fixture(params=["sqlite_url", "postgres_url"])
def index(request: pytest.FixtureRequest) -> Index:
    url: str = request.getfixturevalue(request.param)
    upgrade(url)
    return Index(url, Settings(database_url=url))


# --- 1. a site that carries a story twice must not hide the other sites' copies ----------------------


def test_a_story_carried_twice_by_one_site_is_found_on_the_other_sites(index: Index) -> None:
    """The wire story on The Valley Post under two URLs (the page and its print version), then on The
    Harbour Times (its real page) and The Bayside Herald: all four one cluster. Copies of one story are
    one story: their lines are never the site's chrome."""
    backgrounds = [
        raw("baysideherald.example", "/local/ferry-strike", BAYSIDE_TXT, html_page=False),
        raw("valleypost.example", "/news/riverside-library-reopens", VALLEY_HTML),
    ]
    title = "Norway approves North Sea wind farm after fishing deal"
    story = [
        raw("valleypost.example", "/world/wind-farm", valley_page(title, WIND, "/world/wind-farm"), hours=1),
        raw(
            "valleypost.example",
            "/print/wind-farm",
            valley_page(title, WIND, "/print/wind-farm", layout="print"),
            hours=1,
        ),
        raw("harbourtimes.example", "/business/wind-farm", HARBOUR_TXT, hours=2, html_page=False),
        raw(
            "baysideherald.example",
            "/world/wind-farm-approved",
            dump_page("bayside", title, WIND),
            hours=3,
            html_page=False,
        ),
    ]
    verdicts = index.run([*backgrounds, *story])
    assert [v.kind for v in verdicts[:3]] == ["unique"] * 3
    assert all(v.kind != "unique" for v in verdicts[3:]), [(v.kind, v.reason) for v in verdicts[3:]]
    clusters = index.clusters([*backgrounds, *story])
    assert len(set(clusters[2:])) == 1
    assert len(set(clusters)) == 3


def test_a_live_blog_revised_under_one_url_is_found_on_another_site(index: Index) -> None:
    """A live blog revised under one URL (two updates added on top) is a revision whose reason shows its
    real similarity (all of the earlier version in it: containment 1.0); a copy of it on another site
    then joins its cluster instead of coming out new with no body."""
    updates = [
        "Crews have reopened the coast road north of Millbrook after clearing the last of the fallen trees, "
        "the highways agency said, but drivers should expect delays through the evening.",
        "The regional power company says about 4,000 homes are still without electricity, down from 11,000 "
        "at the height of the storm, and that most should be reconnected by midnight.",
        "The Met Office has lifted its amber wind warning for the Valley but kept a yellow warning for rain "
        "in place until 6am tomorrow, with up to 40mm expected on high ground.",
        "Firefighters rescued two people from a car trapped by floodwater on the B6001 near Hathersage this "
        "afternoon; neither was hurt, South Yorkshire Fire and Rescue said.",
        "Sheffield City Council has opened a rest centre at the Octagon for residents who had to leave their "
        "homes on Riverside Close, where the river burst its banks shortly after noon.",
        "Gusts of 78mph were recorded at Emley Moor this morning, the strongest in the region since 2022. Train "
        "services between Sheffield and Manchester have been suspended until further notice.",
    ]
    first = valley_page("Storm Freya: live updates", updates[2:], "/live/storm-freya")
    revised = valley_page("Storm Freya: live updates", updates, "/live/storm-freya")
    items = [
        raw("baysideherald.example", "/local/ferry-strike", BAYSIDE_TXT, html_page=False),
        raw("valleypost.example", "/news/riverside-library-reopens", VALLEY_HTML),
        raw("valleypost.example", "/live/storm-freya", first, hours=1),
        raw("valleypost.example", "/live/storm-freya?utm_source=rss", revised, hours=2),
        raw(
            "baysideherald.example",
            "/uk/storm-freya-live",
            dump_page("bayside", "Storm Freya live", updates),
            hours=3,
            html_page=False,
        ),
    ]
    verdicts = index.run(items)
    assert [v.kind for v in verdicts[:3]] == ["unique"] * 3
    revision = verdicts[3]
    assert (revision.kind, revision.duplicate_of) == ("revision", article_id(items[2]))
    # 4. the reason measures the bodies: all of the earlier version is in the revision
    assert "containment=1.000" in revision.reason, revision.reason
    assert revision.similarity is not None
    assert 0.5 < revision.similarity < 0.8, revision.reason
    copy = verdicts[4]
    assert copy.kind in {"near_duplicate", "exact_duplicate"}, copy.reason
    assert index.clusters(items[2:]) == [article_id(items[2])] * 3


# --- 2. short stories of one site sharing a long standard paragraph are not merged -------------------

SHORT = [
    "Sheffield's Central Library will close for two weeks from Monday while contractors replace the roof "
    "above the reading room, the council said. Books can be returned at Highfield and Crookes, and loans "
    "due during the closure have been extended by a fortnight for all members.",
    "A fire broke out in a derelict warehouse off Attercliffe Road on Tuesday night. Four crews attended "
    "and nobody was hurt, South Yorkshire Fire and Rescue said, but the road stayed closed until the "
    "morning while the building was made safe by a demolition team.",
    "Tickets for the Tramlines festival went on sale on Wednesday and the Saturday passes sold out within "
    "an hour, organisers said. They apologised to fans who waited in the online queue and promised more "
    "resale slots in June, after complaints from hundreds of local fans.",
    "Stagecoach will cut the number 52 bus to one an hour in the evenings from next month, blaming a "
    "shortage of drivers. Councillors said the change would leave shift workers in Crookes and Walkley "
    "stranded after ten o'clock, with no other way to get home.",
    "A 14-year-old from Hillsborough has won a national young poets prize for a poem about her "
    "grandmother's allotment. She will read it at the Crucible in May, and her school plans to print it "
    "on a banner at the gates for everyone to read.",
    "The Botanical Gardens will open their glass pavilions late on Friday evenings through the summer, "
    "with live music and a bar. The trust that runs the gardens said the events should raise money to "
    "repair the curator's house, which has been closed since the storm.",
]
NOTE_SENTENCES = [
    "Editor's note: The Valley Post is an independent, reader-funded newsroom that has covered Sheffield "
    "and the surrounding valleys since 1898.",
    "Our reporters attend the council meetings, court hearings and school board sessions that shape daily "
    "life here, and we publish what we find without fear or favour.",
    "We follow the Editors' Code of Practice and correct our mistakes openly: if you spot an error in this "
    "article, email corrections@valleypost.example and an editor will reply within two working days.",
    "Stories marked as briefs are written from statements, press releases and calls to the organisations "
    "involved, and may be updated as more information becomes available.",
    "We do not accept payment for coverage, and advertisers have no say over what we report.",
    "If you value local journalism, please consider becoming a member: membership starts at three pounds a "
    "month, gives you early access to our investigations and keeps our reporting free for everyone.",
    "You can also support us by sharing our stories, sending us tips in confidence through our secure form, "
    "or joining one of the public newsroom meetings we hold on the first Tuesday of every month.",
    "To contact the newsroom about this or any other story, write to news@valleypost.example or call us "
    "on 0114 496 0000 during office hours.",
    "Letters for publication should include your full name and the area where you live, and may be edited "
    "for length and clarity before they appear in print or online.",
    "Our complaints policy, the names of our editors and the details of our ownership are published on "
    "the About page, which we review every year.",
    "Photographs published with briefs come from our own photographers unless stated otherwise, and may "
    "not be reproduced without permission.",
    "Thank you for reading The Valley Post, and for helping to keep independent local news alive in South "
    "Yorkshire for another year.",
]


def note_of(words: int) -> str:
    """The site's standard editor's note, about `words` words long (one paragraph)."""
    out: list[str] = []
    n = 0
    while sum(len(s.split()) for s in out) < words:
        out.append(NOTE_SENTENCES[n % len(NOTE_SENTENCES)])
        n += 1
    return " ".join(out)


@pytest.mark.parametrize("note_words", [260, 600])
def test_short_stories_sharing_a_long_standard_note_stay_apart(index: Index, note_words: int) -> None:
    """Six different 40-50-word stories of one site, each followed by the same long editor's note, are six
    stories (the parts that are not the note must match too); the print copy of one of them is still
    its copy."""
    note = note_of(note_words)
    assert all(40 <= len(s.split()) <= 50 for s in SHORT)
    items = [
        raw(
            "valleypost.example",
            f"/briefs/{n}",
            valley_page(f"Brief {n}", [story, note], f"/briefs/{n}"),
            hours=n,
        )
        for n, story in enumerate(SHORT)
    ]
    printed = raw(
        "valleypost.example",
        "/print/briefs/4",
        valley_page("Brief 4", [SHORT[4], note], "/print/briefs/4", layout="print"),
        hours=9,
    )
    verdicts = index.run([*items, printed])
    assert [v.kind for v in verdicts[:6]] == ["unique"] * 6, [(v.kind, v.reason) for v in verdicts]
    assert len(set(index.clusters(items))) == 6
    assert verdicts[6].kind in {"near_duplicate", "exact_duplicate"}, verdicts[6].reason
    assert verdicts[6].duplicate_of == article_id(items[4])


# --- 3. a copy that is a subset of the other -----------------------------------------------------------


@pytest.mark.parametrize("print_first", [False, True])
def test_a_print_copy_with_fewer_lines_is_a_copy_whichever_arrives_first(
    index: Index, print_first: bool
) -> None:
    """The Harbour Times' page (its real text dump: its chrome not learned yet, the site's first page)
    and the print copy of the story (fewer lines: the lead four paragraphs, 128 words, no chrome) are one story,
    whichever arrives first."""
    page = raw("harbourtimes.example", "/business/wind-farm", HARBOUR_TXT, html_page=False)
    printed_html = (
        "<html><head><title>Norway approves wind farm (print)</title></head><body><div class='print'>"
        "<h1>Norway Approves North Sea Wind Farm After Fishing Deal</h1>"
        + "".join(f"<p>{html.escape(p)}</p>" for p in WIND[:4])
        + "</div></body></html>"
    )
    printed = raw("harbourtimes.example", "/print/wind-farm", printed_html, hours=1)
    order = [printed, page] if print_first else [page, printed]
    first, second = index.run(order)
    assert first.kind == "unique"
    assert (second.kind, second.duplicate_of) == ("near_duplicate", article_id(order[0])), second.reason


CAPTIONS = [
    "Turbines of a test floating wind farm turn off the coast of Karmøy, western Norway, on a calm morning in "
    "September; the new farm will use the same floating foundations, anchored to the seabed. (AP Photo/Lise Aserud)",
    "Energy Minister Ingrid Solberg speaks during a news conference at the energy ministry in Oslo, Norway, on "
    "Tuesday, after the government approved the floating wind farm. (Coastal Press Photo/Lena Berg)",
    "Fishing boats are moored in the harbour of Austevoll, south of Bergen, close to the trawling grounds that the "
    "developer agreed to keep open to fishing boats. (Photo by Marit Hommedal/NTB via Getty Images)",
    "Anders Haugen, who leads the Norwegian Fishermen's Association, stands on the quay in Bergen, Norway, where "
    "members met to vote on the agreement last week. (Coastal Press Photo/Lena Berg, File)",
    "A trawler heads out from Bergen before dawn on Wednesday, past the wind measurement buoy that the developer "
    "anchored in the fjord two years ago to test the conditions. (AP Photo/Lise Aserud)",
    "Protesters from coastal communities hold banners outside the parliament building in Oslo in March, when the "
    "original plan would have closed two traditional trawling grounds. (Photo by Marit Hommedal/NTB via Getty Images)",
    "Workers assemble a floating turbine foundation at the Gulen industrial harbour north of Bergen, Norway, where "
    "the first of the project's sixty units will be built. (Coastal Press Photo/Lena Berg)",
    "Members of the Norwegian Fishermen's Association listen to the terms of the agreement at a meeting in Ålesund "
    "last week, before voting to accept the deal by a wide margin. (AP Photo/Lise Aserud, File)",
    "An undersea power cable is loaded onto a ship in Haugesund, Norway; new cables would carry electricity from "
    "the North Sea to Germany and Britain. (Photo by Marit Hommedal/NTB via Getty Images)",
]


def test_a_text_dump_that_keeps_photo_captions_is_a_copy(index: Index) -> None:
    """The Harbour Times' page, then another site's text dump of its lead as a photo gallery, with the
    captions the dump kept (more words than the story): a copy, contained in the page once the captions
    and credits are left out (they do not count against it)."""
    page = raw("harbourtimes.example", "/business/wind-farm", HARBOUR_TXT, html_page=False)
    # a photo gallery: the lead four paragraphs (128 words), captions after each, more under the gallery
    lines = [
        line for paragraph, caption in zip(WIND[:4], CAPTIONS, strict=False) for line in (paragraph, caption)
    ]
    lines += CAPTIONS[4:]
    dump = dump_page("bayside", "Norway approves wind farm", lines)
    copy = raw("baysideherald.example", "/world/norway-wind", dump, hours=2, html_page=False)
    background = raw("baysideherald.example", "/local/ferry-strike", BAYSIDE_TXT, html_page=False)
    verdicts = index.run([background, page, copy])
    assert [v.kind for v in verdicts[:2]] == ["unique", "unique"]
    assert (verdicts[2].kind, verdicts[2].duplicate_of) == ("near_duplicate", article_id(page)), verdicts[
        2
    ].reason
