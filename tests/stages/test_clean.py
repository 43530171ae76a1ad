"""Golden, learning, guard and normalisation tests for the clean stage (`workers.stages.clean`)."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from schemas.cleaned import RemovalReason
from schemas.raw import RawArticle
from tests.samples import (
    SAMPLE_CHROME,
    SAMPLE_FIRST,
    SAMPLE_LAST,
    SAMPLE_LEAD,
    SAMPLE_PAGE,
    SAMPLE_SOURCE,
    SAMPLE_TITLE,
)
from workers.core.errors import NoContent, NotHtml, PermanentError, TooDeep, TooLarge
from workers.stages.clean import VERSION, clean, line_keys

GOLDEN = Path(__file__).parent / "golden"
AID = "0" * 32


def _raw(body: str, **kwargs: object) -> RawArticle:
    return RawArticle.model_validate({"source": "example.com", "body": body, **kwargs})


def _expected_slice(text: str, first: str, last: str) -> str:
    lines = [line.strip() for line in text.split("\n")]
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i, line in enumerate(lines) if line.endswith(last))
    return "\n\n".join(line for line in lines[start : end + 1] if line)


# --- golden text dumps -------------------------------------------------------------------


def test_sample_text_dump_is_exact() -> None:
    """The sample dump (tests/pages/) yields its title, the body from the dateline to the credits, no chrome."""
    body = SAMPLE_PAGE.read_text(encoding="utf-8")
    article = clean(_raw(body, source=SAMPLE_SOURCE), AID)
    assert article.title == SAMPLE_TITLE
    assert article.text == _expected_slice(body, SAMPLE_FIRST, SAMPLE_LAST)
    assert article.text.startswith(SAMPLE_FIRST)
    assert article.text.count(SAMPLE_LEAD) == 1
    for chrome in (
        *SAMPLE_CHROME,
        "Latest Stories",
        "Advertise",
        "Marine jobs board",
        "editorial team",
    ):
        assert chrome not in article.text
    assert article.dateline == SAMPLE_FIRST
    assert article.credits == (
        "Reuters writers Inês Duarte in Lisbon and Pablo Ferreira in Vigo contributed to this story.",
    )
    assert article.section == "Europe"
    assert article.language == "en"
    assert article.version == VERSION
    reasons = Counter(r.reason for r in article.removed)
    assert reasons["repeated_paragraph"] == 1
    assert reasons["footer"] >= 1


def test_own_golden_text_dump_is_exact() -> None:
    """A dump with the same kinds of chrome (nav, counters, share bar, ad, newsroom footer) comes out exact."""
    body = (GOLDEN / "harbour-ferry-strike.txt").read_text(encoding="utf-8")
    expected = (GOLDEN / "harbour-ferry-strike.expected.txt").read_text(encoding="utf-8").strip()
    article = clean(_raw(body, source="bayside.example"), AID)
    assert article.title == "Harbour Ferry Crews Walk Out Over Night-Shift Rosters"
    assert article.text == expected
    assert article.dateline == "PORT ELLIS (AP) —"
    assert article.credits == (
        "Associated Press writer Tomas Reyes in Port Ellis contributed to this story.",
    )
    reasons = {r.reason for r in article.removed}
    assert {"nav", "share_bar", "ad", "footer"} <= reasons


def test_title_hint_wins_and_is_not_repeated_in_text() -> None:
    """A title hint from the scraper is used as the title and its line is not left in the text."""
    body = (GOLDEN / "harbour-ferry-strike.txt").read_text(encoding="utf-8")
    hint = "Harbour Ferry Crews Walk Out Over Night-Shift Rosters"
    article = clean(_raw(body, title=hint), AID)
    assert article.title == hint
    assert hint not in article.text


# --- source-adaptive boilerplate ---------------------------------------------------------

_WORDS = [
    "harbour",
    "council",
    "budget",
    "river",
    "school",
    "hospital",
    "bridge",
    "tram",
    "market",
    "festival",
    "library",
    "museum",
    "airport",
    "railway",
    "station",
    "stadium",
    "factory",
    "orchard",
    "vineyard",
    "reservoir",
    "clinic",
    "court",
    "parliament",
    "election",
    "teachers",
    "nurses",
    "drivers",
    "farmers",
    "fishermen",
    "builders",
    "students",
    "pensioners",
    "residents",
]
_CHROME_LINES = (
    "Bayside Herald Morning Briefing",
    "Your harbour, your stories",
    "Weather desk 31° sunny",
    "Reader tips welcome at the harbour desk",
)
_SYNDICATED = (
    "The region has been governed by a coalition of independents since the boundary review of "
    "2019, and its council meets in the old customs house on the quay every second Tuesday."
)
_COMMON_SENTENCE = "The council did not respond to a request for comment."


def _synthetic_article(index: int) -> str:
    rng = random.Random(index)

    def sentence() -> str:
        words = rng.sample(_WORDS, 12)
        return (
            f"{words[0].capitalize()} leaders in the {words[1]} district said the {words[2]} and "
            f"{words[3]} plans for the {words[4]} would reach {words[5]} and {words[6]} by "
            f"{rng.randint(2025, 2030)}, citing {words[7]} and {words[8]} figures."
        )

    paragraphs = [" ".join(sentence() for _ in range(2)) for _ in range(6)]
    lines = [
        "Home",
        "Bayside Herald",
        f"Story number {index} about the {_WORDS[index]} plan",
        f"SEASIDE – {paragraphs[0]}",
        paragraphs[1],
        _CHROME_LINES[0],
        paragraphs[2],
        _CHROME_LINES[1],
        paragraphs[3] + " " + _COMMON_SENTENCE,
        _CHROME_LINES[2],
        paragraphs[4],
        _SYNDICATED,
        _CHROME_LINES[3],
        paragraphs[5],
        _COMMON_SENTENCE,
        "Privacy Policy",
    ]
    return "\n\n".join(lines)


def test_source_chrome_is_learned_and_article_text_kept() -> None:
    """After 20 articles, lines in >= N of them are removed as source chrome; shared prose stays."""
    raws = [_raw(_synthetic_article(i), source="bayside.example") for i in range(20)]
    before = [clean(raw, f"{i:032x}") for i, raw in enumerate(raws)]
    for article in before:  # the premise: generic rules keep this chrome
        for line in _CHROME_LINES:
            assert line in article.text

    n_required = 5
    seen = Counter(key for raw in raws for key in line_keys(raw))
    for i, raw in enumerate(raws):
        chrome = frozenset(key for key in line_keys(raw) if seen[key] >= n_required)
        article = clean(raw, f"{i:032x}", chrome=chrome)
        for line in _CHROME_LINES:
            assert line not in article.text
        assert _SYNDICATED in article.text
        assert article.text.count(_COMMON_SENTENCE) == 2
        assert article.text.startswith("SEASIDE – ")
        learned = [r.text for r in article.removed if r.reason == "source_boilerplate"]
        assert set(_CHROME_LINES) <= set(learned)
        assert _SYNDICATED not in learned
        assert _COMMON_SENTENCE not in learned


def test_chrome_seen_in_too_few_articles_is_kept() -> None:
    """A line shared by fewer than N articles is not passed as chrome and so stays in the text."""
    raws = [_raw(_synthetic_article(i)) for i in range(3)]
    seen = Counter(key for raw in raws for key in line_keys(raw))
    chrome = frozenset(key for key in line_keys(raws[0]) if seen[key] >= 5)
    assert chrome == frozenset()
    assert _CHROME_LINES[0] in clean(raws[0], AID, chrome=chrome).text


def test_line_keys_skip_prose_and_match_html_blocks() -> None:
    """Prose sentences are never candidate keys; a short block has the same key in HTML and text form."""
    text_keys = line_keys(_raw("Weather desk 31° sunny\n\n" + _COMMON_SENTENCE))
    html_keys = line_keys(
        _raw(f"<html><body><div>Weather desk 31&deg; sunny</div><p>{_COMMON_SENTENCE}</p></body></html>")
    )
    assert len(text_keys) == 1
    assert text_keys == html_keys
    assert all(len(key) == 16 for key in text_keys)


# --- HTML --------------------------------------------------------------------------------

_HTML_ARTICLE = """<!DOCTYPE html><html lang="en"><head><title>Tram line opens | Bayside Herald</title>
<meta property="og:site_name" content="Bayside Herald">
<meta property="article:published_time" content="2024-03-05T08:00:00+00:00">
<meta name="author" content="Jane Doe"></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<article><h1>Tram line opens after a decade of delays</h1>
<p>SEASIDE (AP) — The city's first tram line opened on Tuesday, ten years after construction began
and four years later than the council had promised when the project was approved.</p>
<div class="share">Share on Facebook</div>
<p>Thousands of residents queued at the harbour stop to ride the first cars, which ran every six
minutes between the railway station and the new hospital on the hill above the bay.</p>
<p>The project cost twice its original budget, a fact the mayor acknowledged in a short speech
before cutting the ribbon, saying the delays had taught the city hard lessons about planning.</p>
<p>Associated Press writer Jane Doe contributed to this report.</p></article>
<footer>© 2024 Bayside Herald. All rights reserved. <a href="/privacy">Privacy Policy</a></footer>
</body></html>"""


def test_html_article_body_and_metadata() -> None:
    """An HTML page yields its paragraphs without nav/share/footer, and its title, date, dateline, credits."""
    article = clean(_raw(_HTML_ARTICLE, url="https://bayside.example/tram"), AID)
    assert article.text.startswith("SEASIDE (AP) — The city's first tram line")
    assert article.text.endswith("contributed to this report.")
    assert "Share on Facebook" not in article.text
    assert "Privacy Policy" not in article.text
    assert article.text.count("\n\n") == 3
    assert article.title == "Tram line opens after a decade of delays"
    assert article.published_at is not None
    assert article.published_at.year == 2024
    assert article.dateline == "SEASIDE (AP) —"
    assert article.credits == ("Associated Press writer Jane Doe contributed to this report.",)
    assert article.language == "en"


def test_content_type_is_sniffed() -> None:
    """A body without content_type is cleaned as HTML when it looks like markup."""
    article = clean(_raw(_HTML_ARTICLE), AID)
    assert "<p>" not in article.text
    assert "SEASIDE (AP)" in article.text


# --- normalisation -----------------------------------------------------------------------


def test_normalisation_repairs_and_strips() -> None:
    """Mojibake, entities, NUL/control, zero-width and bidi characters are fixed; NFC; paragraphs kept."""
    body = (
        "The cafÃ© owner said the rent had doubled since the spring, and that she would close the shop.\x00\n\n"
        "Officials said the re\u0301view of the bu\u200bsiness rates &amp; fees would finish\u202e in May this year.\n\n"
        "Tenants\u0007 groups said they would keep campaigning until the council changed the rules for small shops."
    )
    article = clean(_raw(body, content_type="text/plain"), AID)
    assert "café owner" in article.text
    assert "review" in article.text.replace("\u00e9", "e")
    assert "\u0301" not in article.text
    assert "business rates & fees" in article.text
    for bad in ("\x00", "\x07", "\u200b", "\u202e", "Ã"):
        assert bad not in article.text
    assert article.text.count("\n\n") == 2


# --- guards ------------------------------------------------------------------------------


def _timed_clean(raw: RawArticle) -> tuple[float, object]:
    # Warm up first: lazy imports and the language model load once per process, not per page.
    clean(_raw(_HTML_ARTICLE), AID)
    start = time.perf_counter()
    try:
        outcome: object = clean(raw, AID)
    except PermanentError as error:
        outcome = error
    return time.perf_counter() - start, outcome


_PROSE = (
    "<p>"
    + "The ferry crews said the dispute over rosters would go on until the operator agreed to talks. " * 6
    + "</p>"
)


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        (
            "nested_divs",
            "<html><body>" + "<div>" * 10_000 + _PROSE + "</div>" * 10_000 + "</body></html>",
            TooDeep,
        ),
        (
            "scripts_only",
            "<html><head><script>" + "var a = 1;\n" * 20_000 + "</script></head><body></body></html>",
            NoContent,
        ),
        (
            "pdf_as_html",
            "%PDF-1.7\n%\u00e2\u00e3\u00cf\u00d3\n1 0 obj << /Type /Catalog >> endobj\n" * 100,
            NotHtml,
        ),
    ],
)
def test_pathological_html_dead_letters_fast(name: str, body: str, expected: type[Exception]) -> None:
    """Pathological inputs finish in under a second with a clear dead-letter reason."""
    elapsed, outcome = _timed_clean(_raw(body, content_type="text/html"))
    assert isinstance(outcome, expected), (name, outcome)
    assert elapsed < 1.0


def test_huge_attribute_and_huge_token_finish_fast() -> None:
    """A page with a multi-megabyte attribute and a 10 MB unbroken token is cleaned or refused in < 1 s."""
    attribute = '<html><body><div data-x="' + "a" * 7_000_000 + '">x</div>' + _PROSE + "</body></html>"
    elapsed, outcome = _timed_clean(_raw(attribute, content_type="text/html"))
    assert elapsed < 1.0
    assert isinstance(outcome, (TooLarge, NoContent)) or "ferry crews" in getattr(outcome, "text", "")
    token = "word " * 50 + "x" * 10_000_000
    elapsed, outcome = _timed_clean(_raw(token, content_type="text/plain"))
    assert elapsed < 1.0
    assert isinstance(outcome, PermanentError) or "x" * 100 not in getattr(outcome, "text", "x" * 100)


def test_body_over_html_cap_is_too_large() -> None:
    """HTML beyond MAX_HTML_BYTES is refused as too_large before parsing."""
    from workers.stages.cleaning.guards import MAX_HTML_BYTES

    body = "<html><body>" + _PROSE * (MAX_HTML_BYTES // len(_PROSE) + 10) + "</body></html>"
    elapsed, outcome = _timed_clean(_raw(body, content_type="text/html"))
    assert isinstance(outcome, TooLarge)
    assert outcome.reason == "too_large"
    assert elapsed < 1.0


def test_invalid_utf8_is_cleaned() -> None:
    """Bytes decoded with replacement or surrogate escapes do not crash cleaning."""
    data = (
        "Caf\xe9 prices rose again this week, the owners said, blaming energy costs and rent. " * 4
    ).encode("latin-1")
    body = data.decode("utf-8", "surrogateescape")
    elapsed, outcome = _timed_clean(_raw(body, content_type="text/plain"))
    assert elapsed < 1.0
    assert "prices rose again" in getattr(outcome, "text", "")
    assert "\udce9" not in getattr(outcome, "text", "")


@pytest.mark.parametrize(
    "body",
    [
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
        '<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
        "<html><body>" + _PROSE + "<p>&lol4;</p></body></html>",
        '<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<html><body>" + _PROSE + "<p>&xxe;</p></body></html>",
    ],
    ids=["billion_laughs", "external_entity"],
)
def test_xml_entities_are_never_expanded(body: str) -> None:
    """Entity bombs and external entities are neither expanded nor resolved, and finish fast."""
    elapsed, outcome = _timed_clean(_raw(body, content_type="text/html"))
    assert elapsed < 1.0
    text = getattr(outcome, "text", "")
    assert "ferry crews" in text
    assert "lollol" not in text
    assert "root:" not in text


def test_empty_text_dump_is_no_content() -> None:
    """A dump with only chrome lines is dead-lettered as no_content."""
    with pytest.raises(NoContent) as info:
        clean(_raw("Home\n\nShare\n\nAdvertisement\n\n800 1", content_type="text/plain"), AID)
    assert info.value.reason == "no_content"


# --- metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opening", "dateline"),
    [
        ("WASHINGTON (AP) — ", "WASHINGTON (AP) —"),
        ("NEW YORK, Oct. 1 (Reuters) - ", "NEW YORK, Oct. 1 (Reuters) -"),
        ("ST. LOUIS – ", "ST. LOUIS –"),
        ("NASA said on Monday that ", None),
    ],
)
def test_dateline_is_extracted(opening: str, dateline: str | None) -> None:
    """Datelines of the usual wire forms are found; an acronym starting a sentence is not one."""
    body = (
        opening
        + "the launch window would open next week, weather permitting, officials told reporters at the site."
    )
    body += "\n\nThe mission had been delayed twice this year because of problems with the rocket's second stage engine."
    article = clean(_raw(body, content_type="text/plain"), AID)
    assert article.dateline == dateline
    assert article.text.startswith(opening.strip())


def test_authors_and_dates_in_text_dump() -> None:
    """Byline and date lines of a dump become authors and dates; junk author names are rejected."""
    body = (
        "Local News\n\nHarbour Ferry Crews Walk Out Over Night-Shift Rosters\n\nBy Mara Lindqvist and Tomas Reyes\n\n"
        "By Email the author\n\nPublished March 4, 2024 at 6:15 pm\n\nUpdated: March 5, 2024\n\n3 Minute Read\n\n"
        + (GOLDEN / "harbour-ferry-strike.expected.txt").read_text(encoding="utf-8")
    )
    article = clean(_raw(body, content_type="text/plain"), AID)
    assert article.authors == ("Mara Lindqvist", "Tomas Reyes")
    assert article.published_at is not None
    assert (article.published_at.month, article.published_at.day, article.published_at.hour) == (3, 4, 18)
    assert article.updated_at is not None
    assert article.updated_at.day == 5
    assert "Minute Read" not in article.text
    assert "Email the author" not in article.text


def test_repeated_paragraph_kept_once() -> None:
    """A paragraph repeated verbatim or as a prefix of a longer one is kept once, the longer version."""
    first = "The bridge will close for repairs from Monday, the transport department said in a statement."
    longer = first + " Drivers are advised to use the ring road, which will have extra lanes open."
    other = "Engineers found cracks in two of the supporting piers during a routine inspection last month."
    body = "\n\n".join([first, other, longer, other])
    article = clean(_raw(body, content_type="text/plain"), AID)
    assert article.text == "\n\n".join([other, longer])
    assert [r.reason for r in article.removed].count("repeated_paragraph") == 2


# --- combining extractors and text-dump structure ----------------------------------------


def test_merge_trims_unconfirmed_margins_and_fills_agreed_gaps() -> None:
    """Short primary lines the secondary does not confirm are trimmed at the margins; its prose fills gaps."""
    from workers.stages.cleaning.merge import merge

    body = [
        "The harbour authority approved the new ferry terminal on Monday after a two-year review of plans.",
        "Construction is expected to start in the spring and to last about eighteen months, officials said.",
        "The terminal will have four berths and a covered waiting hall for up to six hundred passengers at once.",
    ]
    missing = (
        "Residents had objected to the original design, which placed the car park on the beach, and the "
        "council asked for it to be moved inland before it would approve the scheme."
    )
    primary = ["Sign in to read more", body[0], body[1], body[2], "Most read this week"]
    secondary = [body[0], body[1], missing, body[2], "Cookie settings"]
    removed: list[tuple[RemovalReason, str]] = []
    merged = merge(primary, secondary, removed)
    assert merged == [body[0], body[1], missing, body[2]]
    assert ("chrome", "Sign in to read more") in removed
    assert ("chrome", "Most read this week") in removed


def test_tiny_primary_falls_back_to_secondary() -> None:
    """When the primary extractor found almost nothing, the secondary's text is used."""
    from workers.stages.cleaning.merge import merge

    secondary = [_COMMON_SENTENCE.replace("council", f"council of district {i}") * 3 for i in range(8)]
    assert merge(["Subscribe"], secondary, []) == secondary
    assert merge([], secondary, []) == secondary


def test_comment_thread_after_short_article_is_not_the_body() -> None:
    """A long reader-comment thread below a short article does not win the body; the article does."""
    article = [
        "SEASIDE – The harbour ferry will run a reduced timetable over the holidays, the operator said on Friday.",
        "Services on the northern route will stop at eight in the evening instead of midnight until January.",
        "The operator said the change would let it carry out repairs to two of its older vessels.",
    ]
    thread: list[str] = ["Comments"]
    for n in range(8):
        thread += [
            f"reader{n} said:",
            f"{n + 1} hours ago",
            "I have taken this ferry every day for twenty years and it has never been this unreliable, "
            "and the operator keeps raising prices while cutting services for those of us who depend on it.",
            "Reply",
        ]
    article_text = "\n\n".join(article)
    result = clean(_raw(article_text + "\n\n" + "\n\n".join(thread), content_type="text/plain"), AID)
    assert result.text == article_text
    assert "comments" in {r.reason for r in result.removed}


def test_cjk_text_dump_is_read_as_prose() -> None:
    """Japanese lines, written without spaces, count as prose: the body is found and chrome dropped."""
    body = "\n\n".join(
        [
            "ホーム",
            "シェア",
            "先日、不正に改造したスマートフォンを販売したとして、商標法違反の疑いで二十代の男性が逮捕されたというニュースを耳にしました。",
            "報道によると、今回販売されたのは、いわゆる改造された端末で、機能制限を解除したものだということです。",
            "メーカーはこうした改造を認めておらず、保証の対象外になると説明しています。",
            "Copyright © 2024 Example Inc. All rights reserved.",
        ]
    )
    result = clean(_raw(body, content_type="text/plain"), AID)
    assert result.text.startswith("先日、")
    assert result.text.endswith("説明しています。")
    assert "Copyright" not in result.text
    assert result.language == "ja"


def test_teaser_card_list_after_article_is_not_the_body() -> None:
    """A list of related-story cards (headline, author, date, one teaser sentence) does not join the body."""
    article = [
        "RIVERTON – The city council voted on Tuesday to rebuild the old stone bridge over the river by 2026.",
        "The bridge, built in 1890, has been closed to cars since engineers found cracks in its arches last year.",
        "Council members said the new design would keep the stone facing so that the crossing looks as it did.",
    ]
    cards: list[str] = []
    for n in range(5):
        cards += [
            f"Local bakery number {n} wins a regional prize",
            "Jane Smith",
            f"November {n + 10}, 2019",
            "The family-run shop on Main Street has been baking bread for three generations, and after the "
            "prize its owners say they will hire more bakers, open on Sundays and start shipping their loaves "
            "to customers across the whole country next spring.",
        ]
    body = "\n\n".join(["Home", "News", *article, *cards, "Contact us"])
    result = clean(_raw(body, content_type="text/plain"), AID)
    assert result.text == "\n\n".join(article)


def test_newsletter_and_follow_promotions_are_removed() -> None:
    """Newsletter, follow-us and unsubscribe promotions below an article are footer, not text; an
    article paragraph that merely mentions unsubscribing is kept."""
    article = [
        "The harbour authority approved the new ferry terminal on Monday after a two-year review of plans.",
        "Passengers who signed up for the old timetable alerts will be moved to the new service, and the "
        "authority stressed that they can unsubscribe at any time by replying to any of the text messages.",
        "Construction is expected to start in the spring and to last about eighteen months, officials said.",
        "The terminal will have four berths and a covered waiting hall for up to six hundred passengers at once.",
    ]
    promos = [
        "No spam, we promise. You can unsubscribe at any time and we will never share your details.",
        "Follow us on Twitter @harbournews and on Facebook for the latest stories from the waterfront.",
    ]
    result = clean(_raw("\n\n".join([*article, *promos]), content_type="text/plain"), AID)
    assert result.text == "\n\n".join(article)


def test_strip_inert_cuts_scripts_styles_comments_but_keeps_json_ld_and_unclosed() -> None:
    """Scripts, styles and comments are cut to their first closing; JSON-LD and unclosed elements stay."""
    from workers.stages.cleaning.guards import strip_inert

    body = (
        "<p>a</p><script>var x = '</p>';</script ><SCRIPT type='application/ld+json'>{}</SCRIPT>"
        "<style x='>'>p {}</style><!-- note -->b<!-->c-->d<script>never closed"
    )
    assert strip_inert(body) == "<p>a</p><SCRIPT type='application/ld+json'>{}</SCRIPT>bd<script>never closed"
    assert strip_inert("<p>plain</p>") == "<p>plain</p>"


def test_readability_second_opinion_reads_our_parse() -> None:
    """The wide second opinion (readability-lxml on our parse, hidden elements dropped) finds the article."""
    from workers.stages.cleaning.html import _full_secondary

    prose = " ".join([_COMMON_SENTENCE] * 3)
    body = (
        "<html><body><nav><a href='/'>Home</a></nav><article>"
        f"<p>{prose}</p><p>{prose}</p><p style='display: none'>Hidden promotion text.</p>"
        "</article></body></html>"
    )
    lines = _full_secondary(body)
    assert lines == [prose, prose]


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii text",
        "Don’t panic — it’s fine.",
        "CafÃ© au lait",
        "donâ€™t stop",
        "Ã\xa0 bientôt",
        "ok Â here",
        "вЂ” dash",
        "Тот же текст по-русски, без ошибок кодировки.",
        "日本語のテキスト",
    ],
)
def test_mojibake_test_agrees_with_ftfy(text: str) -> None:
    """The windowed mojibake test gives ftfy's own `is_bad` answer, clean text and mojibake alike."""
    from ftfy.badness import is_bad

    from workers.stages.cleaning.normalise import looks_like_mojibake

    long_text = "Plain words and a quote’s curl. " * 80 + text
    assert looks_like_mojibake(text) == is_bad(text)
    assert looks_like_mojibake(long_text) == is_bad(long_text)


def test_headline_teaser_pairs_below_related_heading_are_cut() -> None:
    """Below a "Top stories" heading, headline + one-sentence teaser pairs are not article text."""
    article = [
        "HARBOURTON – The port authority said on Monday that the new container crane will arrive in March.",
        "The crane, built in Finland, will double the number of ships the port can unload in a single day.",
        "Unions welcomed the investment but asked for talks on training dock workers to operate the machine.",
    ]
    tail = ["Top stories"]
    for n in range(3):
        tail += [
            f"Island ferry timetable number {n} changes",
            "The operator said the winter timetable would start a week earlier this year because of storms "
            "and repairs that are planned at both of the island's harbours.",
        ]
    result = clean(_raw("\n\n".join([*article, *tail]), content_type="text/plain"), AID)
    assert result.text == "\n\n".join(article)


# --- issue 12: columns, no content, audit, learned line model ----------------------------------

_FERRY = (
    "The council voted on Tuesday to extend the ferry service to the northern islands, a decision "
    "that residents had sought for more than a decade."
)
_FERRY_MORE = (
    "The first crossings will run in the spring, and the operator expects to add a second boat "
    "before the summer if bookings are strong."
)


def test_columns_are_split_before_lines_are_judged() -> None:
    """A nav column and the body on one line (w3m's rendering of a table layout) become separate lines."""
    from workers.stages.cleaning.textdump import split_columns

    assert split_columns("Home   News   Sport") == "Home\nNews\nSport"
    assert split_columns("Home | Contact | About") == "Home\nContact\nAbout"
    assert split_columns("a plain sentence, one space apart.") == "a plain sentence, one space apart."
    body = "\n".join(
        [
            "Local Paper",
            f"Home   Weather   Sport   {_FERRY}",
            f"Jobs | Cars | Homes   {_FERRY_MORE}",
            "Copyright 2008 Local Paper",
        ]
    )
    article = clean(_raw(body, content_type="text/plain"), AID)
    assert "Weather" not in article.text
    assert "Cars" not in article.text
    # Two cells of body text, each its own run between nav cells: both are the article.
    assert article.text == f"{_FERRY}\n\n{_FERRY_MORE}"


def test_chrome_only_page_is_no_content() -> None:
    """A page of nav links and short labels, with no prose sentence, is dead-lettered `no_content`."""
    from workers.stages.clean import has_content

    body = (
        "<html><body><h1>Latest</h1><ul><li><a href=/a>Sport results</a></li><li><a href=/b>Weather today</a>"
    )
    body += "</li><li><a href=/c>Contact the newsroom</a></li></ul><p>Read more</p></body></html>"
    with pytest.raises(NoContent) as caught:
        clean(_raw(body), AID)
    assert caught.value.reason == "no_content"
    assert not has_content(["Sport results", "Weather today", "Home | News | Sport"])
    assert has_content(["Ministers met in Paris on Friday to agree the budget."])  # a one-sentence brief


def test_html_audit_lists_every_dropped_block() -> None:
    """Every visible block of an HTML page is either in the text or in `removed` with a reason."""
    body = (
        "<html><body><nav><a href=/>Front page</a> <a href=/x>Regional politics</a></nav>"
        "<div class=sidebar><p>Weekend crossword puzzle</p></div><article><h1>Ferry extended</h1>"
        f"<p>{_FERRY}</p><p>{_FERRY.replace('council', 'assembly')}</p></article>"
        "<footer><p>Registered office: 1 Harbour Road</p></footer></body></html>"
    )
    article = clean(_raw(body), AID)
    listed = " ".join(r.text for r in article.removed)
    for block in ("Front page", "Weekend crossword puzzle", "Registered office: 1 Harbour Road"):
        assert block not in article.text
        assert block in listed
    assert {r.reason for r in article.removed} <= set(RemovalReason.__args__)  # type: ignore[attr-defined]


def test_line_model_file_loads_and_matches_features() -> None:
    """The shipped line model is plain JSON with one coefficient per feature, and it corrects the rules."""
    import json

    from workers.stages.cleaning.linemodel import FEATURES, MODEL_PATH, load_model, model_from_json

    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    model = load_model()
    assert len(model.coef) == len(FEATURES) == len(data["coef"])
    assert 0.0 <= model.drop_below < model.add_from
    with pytest.raises(ValueError, match="features"):
        model_from_json({**data, "features": data["features"][:-1]})
    assert model.decide([True, False], [0.99, 0.0]) == [True, False]


# --- issue 13 defects ----------------------------------------------------------------------------


def test_doctype_and_entity_guards_are_linear() -> None:
    """Many unclosed DTD subsets or entity declarations are defused in linear time (was quadratic)."""
    from workers.stages.cleaning.guards import defuse

    for unit in ('<!DOCTYPE x [<!ENTITY a "b">', "<!ENTITY "):
        body = unit * (260 * 1024 // len(unit))
        start = time.process_time()
        defuse(body)
        assert time.process_time() - start < 0.5
    body = '<!DOCTYPE html [<!ENTITY lol "lol"><!ENTITY b "&lol;&lol;">]><html><p>&b;</p><!ENTITY x "y">'
    assert defuse(body) == "<html><p>&b;</p>"


def test_size_guard_runs_before_any_declaration_scan() -> None:
    """An oversized page is refused `too_large` at once, before the DTD scans run over it."""
    body = "<html><body>" + '<!DOCTYPE x [<!ENTITY a "b">' * 120_000 + "</body></html>"
    start = time.process_time()
    with pytest.raises(TooLarge):
        clean(_raw(body), AID)
    assert time.process_time() - start < 2.0


def test_impossible_meta_date_is_no_date() -> None:
    """A declared 2024-02-30 is treated as no date, never read leniently as another day (2024-02-01)."""
    body = (
        '<html><head><meta name="date" content="2024-02-30"></head><body><article>'
        f"<p>{_FERRY}</p><p>{_FERRY}</p></article></body></html>"
    )
    assert clean(_raw(body), AID).published_at is None
    valid = body.replace("2024-02-30", "2024-02-20")
    published = clean(_raw(valid), AID).published_at
    assert published is not None
    assert published.date().isoformat() == "2024-02-20"


def test_control_characters_never_reach_title_or_text() -> None:
    """NUL, ESC and other C0 controls in the title, meta fields or body are removed from every field."""
    nul_prose = _FERRY.replace("council", "coun\x00cil")
    body = (
        "<html><head><title>Ferry\x00 deal\x1b[31m agreed</title>"
        '<meta property="og:site_name" content="Harbour\x07 News"></head><body><article>'
        f"<p>{nul_prose}</p><p>{_FERRY}</p></article></body></html>"
    )
    article = clean(_raw(body), AID)
    # The raw schema refuses a NUL in a title hint; a record built without validation (an older
    # producer, a direct database write) must still come out clean.
    base = _raw(f"<p>{_FERRY}</p>", title="Title with NUL")
    hinted = clean(base.model_construct(**{**dict(base), "title": "Title\x00 with\x1f NUL"}), AID)
    fields = [article.title, article.text, article.site_name, hinted.title, hinted.text]
    for value in fields:
        assert value is not None
        assert not any(ord(c) < 32 and c not in "\n\t" for c in value), repr(value)
    assert hinted.title == "Title with NUL"


def test_latin1_page_declared_utf8_keeps_accents(tmp_path: Path) -> None:
    """A Latin-1 page that says UTF-8 keeps its accents when read from a file."""
    from workers.ingest.archives import read_path

    page = f'<html><head><meta charset="utf-8"></head><body><p>Café à Genève. {_FERRY}</p></body></html>'
    path = tmp_path / "page.html"
    path.write_bytes(page.encode("latin-1"))
    (record,) = list(read_path(path, source="example.com"))
    assert record.article is not None
    assert "Café à Genève" in clean(record.article, AID).text


# --- issue 16: the HTML ensemble, layout tables, the no_content rule ---------------------------

_LAYOUT_TABLE = (
    "<html><body><table><tr><td><a href=/>Home</a></td><td><a href=/news>News</a></td>"
    "<td><a href=/sport>Sport</a></td><td><a href=/weather>Weather</a></td></tr></table>"
    "<table width=100%><tr><td class=nav><a href=/a>Local</a><br><a href=/b>Business</a><br>"
    "<a href=/c>Obituaries</a></td><td class=story><h1>Ferry service extended</h1>"
    f"<p>{_FERRY}</p><p>{_FERRY.replace('council', 'assembly')}</p>"
    f"<p>{_FERRY.replace('Tuesday', 'Wednesday').replace('decade', 'generation')}</p></td>"
    "<td class=ads><a href=/ad>Cheap flights to Lisbon</a></td></tr></table>"
    "<table><tr><td>Copyright 2008 Local Paper</td><td><a href=/privacy>Privacy</a></td></tr></table>"
    "</body></html>"
)


def test_layout_table_cells_are_blocks_never_joined_with_pipes() -> None:
    """A page laid out in tables yields its article without ` | `-joined cells or the nav kept."""
    article = clean(_raw(_LAYOUT_TABLE), AID)
    assert " | " not in article.text
    assert article.text.startswith("The council voted on Tuesday")
    for chrome in ("Home", "Sport", "Obituaries", "Cheap flights", "Copyright 2008"):
        assert chrome not in article.text
    listed = " ".join(r.text for r in article.removed)
    assert "Obituaries" in listed


def test_page_blocks_split_cells_skip_hidden_and_measure_links() -> None:
    """Each cell is its own block, hidden elements are not text, link characters are counted."""
    from workers.stages.cleaning.ensemble import page_blocks
    from workers.stages.cleaning.html import parse_html

    tree = parse_html(
        "<html><body><table><tr><td><a href=/>Home page</a></td><td>Plain cell</td></tr></table>"
        "<div hidden>Hidden copy</div><p style='display:none'>Also hidden</p><p>Read <a href=/x>this</a></p>"
        "</body></html>"
    )
    assert tree is not None
    blocks = page_blocks(tree)
    assert [b.text for b in blocks] == ["Home page", "Plain cell", "Read this"]
    assert [b.tag for b in blocks] == ["td", "td", "p"]
    assert [b.link_chars for b in blocks] == [8, 0, 4]


def test_short_block_votes_need_their_neighbours() -> None:
    """A one-word block counts as found only where the text has it beside the same words."""
    from workers.stages.cleaning.ensemble import _tokens, coverage, text_grams

    blocks = [_tokens("Home"), _tokens("News"), _tokens("Sport"), _tokens(_FERRY), _tokens("News")]
    grams = text_grams(["News", _FERRY])
    shares = coverage(blocks, grams)
    assert shares[:3] == [0.0, 0.0, 0.0]  # "News" on its own, before "Sport", is not the text's "News"
    assert shares[3] == 1.0
    twice = coverage([_tokens(_FERRY), _tokens(_FERRY)], text_grams([_FERRY]))
    assert twice == [1.0, 0.0]  # a repeated copy is voted for once


def test_ensemble_model_file_is_plain_json_and_evaluated_like_its_trees() -> None:
    """The shipped model is versioned JSON over FEATURES; a hand-made tree is evaluated as written."""
    import json
    import math

    from workers.stages.cleaning.ensemble import (
        FEATURES,
        MODEL_FORMAT,
        MODEL_PATH,
        load_model,
        model_from_json,
    )

    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    assert data["format"] == MODEL_FORMAT
    assert data["features"] == list(FEATURES)
    assert data["version"].startswith("ensemble-model-")
    assert load_model().feature.shape[0] == len(data["trees"])
    tree = {"feature": [0, -1, -1], "threshold": [0.5, 0, 0], "left": [1, 0, 0], "right": [2, 0, 0]}
    tiny = {
        **data,
        "base": 0.0,
        "learning_rate": 1.0,
        "depth": 1,
        "trees": [{**tree, "value": [0.0, -2.0, 3.0]}],
    }
    model = model_from_json(tiny)
    row_low = [0.0] * len(FEATURES)
    row_high = [1.0] * len(FEATURES)
    low, high = model.scores([row_low, row_high])
    assert math.isclose(low, 1 / (1 + math.exp(2.0)), rel_tol=1e-6)
    assert math.isclose(high, 1 / (1 + math.exp(-3.0)), rel_tol=1e-6)
    with pytest.raises(ValueError, match="format"):
        model_from_json({**tiny, "format": "other"})


def test_no_content_only_when_no_extractor_finds_prose() -> None:
    """When the model keeps nothing, another extractor's prose is the article; chrome alone is no_content."""
    import dataclasses

    from workers.stages.cleaning.ensemble import load_model
    from workers.stages.cleaning.extraction import CleanOptions

    keeps_nothing = dataclasses.replace(load_model(), threshold=2.0)
    article = clean(_raw(_LAYOUT_TABLE), AID, options=CleanOptions(ensemble_model=keeps_nothing))
    assert _FERRY in article.text
    assert " | " not in article.text
    chrome_only = (
        "<html><body><ul><li><a href=/a>Sport</a></li><li><a href=/b>Weather</a></li></ul></body></html>"
    )
    with pytest.raises(NoContent):
        clean(_raw(chrome_only), AID, options=CleanOptions(ensemble_model=keeps_nothing))


def test_verse_is_content_and_menus_are_not() -> None:
    """Four punctuated lines of a poem count as prose; unpunctuated menu items never do."""
    from workers.stages.clean import has_content

    poem = [
        "I wander often from the way,",
        "And sin afflicts me every day:",
        "Oh, when shall I be pure?",
        "Christ leads me to the path again,",
    ]
    assert has_content(poem)
    assert not has_content(poem[:3])
    assert not has_content(
        ["Sport results today", "Weather in the region", "Contact the newsroom", "Jobs and cars"]
    )
