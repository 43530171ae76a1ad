"""Text dumps from any renderer: candidate runs, the run and headline models, html2text's links."""

from __future__ import annotations

import json

import pytest

from schemas.raw import RawArticle
from workers.stages.clean import clean
from workers.stages.cleaning.extraction import CleanOptions
from workers.stages.cleaning.linemodel import (
    HEADLINE_FEATURES,
    RUN_FEATURES,
    RUN_MODEL_PATH,
    candidate_runs,
    load_model,
    runs_from_json,
)
from workers.stages.cleaning.lines import analyse
from workers.stages.cleaning.textdump import unline_links

AID = "0" * 32

ARTICLE = [
    "The county council voted on Tuesday to reopen the old ferry terminal after a four-year closure.",
    "Councillors said the decision followed a survey in which most residents backed the plan.",
    "Work on the pier will begin in the spring and should be finished before the summer season.",
    "The ferry operator said it would run six crossings a day once the terminal reopens next year.",
    "Local businesses welcomed the news, saying the closure had cost them a large share of visitors.",
]


def _dump(lines: list[str]) -> RawArticle:
    return RawArticle(source="gazette.example", body="\n\n".join(lines), content_type="text/plain")


def test_run_model_file_loads_and_matches_features() -> None:
    """The shipped run and headline models are plain JSON with one coefficient per feature."""
    data = json.loads(RUN_MODEL_PATH.read_text(encoding="utf-8"))
    runs, headline = runs_from_json(data)
    assert len(runs.logistic.coef) == len(RUN_FEATURES) == len(data["runs"]["coef"])
    assert len(headline.coef) == len(HEADLINE_FEATURES) == len(data["headline"]["coef"])
    assert 0.0 < runs.keep_from < 1.0
    model = load_model()
    assert model.runs == runs
    assert model.headline == headline
    with pytest.raises(ValueError, match="features"):
        runs_from_json({**data, "runs": {**data["runs"], "features": data["runs"]["features"][:-1]}})
    with pytest.raises(ValueError, match="headline"):
        runs_from_json({"version": "x", "runs": data["runs"]})


def test_candidate_runs_bridge_short_gaps_only() -> None:
    """Prose lines at most three lines apart are one run; a longer stretch of chrome starts another."""
    lines = [
        "Home",
        ARTICLE[0],
        "Photo: the old pier",
        ARTICLE[1],
        ARTICLE[2],
        "Share",
        "Tweet",
        "Email",
        "Print",
        "Read the Gazette every Thursday in print or online, where the archive goes back many years.",
    ]
    infos = [analyse(line) for line in lines]
    assert candidate_runs(infos) == [(1, 5), (9, 10)]
    assert candidate_runs([analyse("Home"), analyse("Menu")]) == []


def test_body_run_beats_a_denser_footer() -> None:
    """A two-line body above a denser footer of outlet prose (a table layout's) is chosen; the rules alone lose it."""
    nav = ["News", "Sport", "Weather", "Jobs", "Cars", "Homes", "Contact", "Archive"]
    footer = [
        "The Gazette, 12 Harbour Road, Seaside SE1 2AB, telephone 01234 567890, email newsdesk@gazette.example.",
        "Gazette Media Ltd is registered in England and Wales under company number 01234567 at the address above.",
        "Subscriptions, back issues, reader offers, weddings, obituaries, classified adverts, puzzles and the TV guide.",
        "Read the Gazette every Thursday in print or online at gazette.example, where the archive goes back to 1998.",
    ]
    lines = [*nav, "Ferry Terminal To Reopen", *ARTICLE[:2], *nav, *footer]
    article = clean(_dump(lines), AID)
    assert article.text.startswith(ARTICLE[0] + "\n\n" + ARTICLE[1])
    assert article.title == "Ferry Terminal To Reopen"
    rules = clean(_dump(lines), AID, options=CleanOptions(use_line_model=False))
    assert ARTICLE[0] not in rules.text  # the densest run of prose is the footer


def test_headline_is_chosen_over_chrome_and_byline() -> None:
    """The headline comes from the lines before the body: not a search box, an offer or a byline."""
    lines = [
        "Local Search Site Search",
        "GREAT GAMING OFFERS!",
        "Click for South of Boston *",
        "Ferry Terminal To Reopen After Four Years",
        "By Peter Griffiths",
        "March 4, 2024",
        *ARTICLE,
    ]
    article = clean(_dump(lines), AID)
    assert article.title == "Ferry Terminal To Reopen After Four Years"
    assert "Peter Griffiths" not in article.text
    rules = clean(_dump(lines), AID, options=CleanOptions(use_line_model=False))
    assert rules.text.startswith(ARTICLE[0])


def test_html2text_underlined_links_are_spelt_with_spaces() -> None:
    """html2text draws a link's spaces as underscores; a dump full of them gets its spaces back."""
    dump = "\n".join(
        ["Dow_Jones_Newswires", "Private_Markets", "Risk_&_Compliance", "WSJ_Pro", "New_York_Post"]
    )
    assert unline_links(dump + "\nThe new_variable name.") == (
        "Dow Jones Newswires\nPrivate Markets\nRisk_&_Compliance\nWSJ Pro\nNew York Post\nThe new variable name."
    )
    assert unline_links("The value of max_len and min_len is set in config_file.") == (
        "The value of max_len and min_len is set in config_file."
    )
    body = "Home_Page\n\nTop_Stories\n\nWorld_News\n\nMore_Sport\n\nLocal_Weather\n\n" + "\n\n".join(
        [ARTICLE[0].replace("old ferry", "old_ferry"), *ARTICLE[1:]]
    )
    article = clean(RawArticle(source="x", body=body, content_type="text/plain"), AID)
    assert article.text.startswith(ARTICLE[0])


@pytest.mark.parametrize(
    ("head", "headline"),
    [
        (
            [
                "Skip to content",
                "Seaside Gazette",
                "Your town, your news",
                "• News",
                "• Sport",
                "• Opinion",
                "• Subscribe",
                "Search for... [                    ]",
                "Seaside Gazette",
                "Your town, your news",
                "Ferry terminal to reopen after four years - Seaside Gazette",
                "• Home",
                "• Local News",
                "Ferry terminal to reopen after four years",
                "• by Jane Smith",
                "• 6 Comments",
                "Hero image for Ferry terminal to reopen after four years",
            ],
            "Ferry terminal to reopen after four years",
        ),
        (
            [
                "Locations:",
                "Harbour|Old Town|Riverside|",
                "• Health Essentials",
                "• Find a Doctor",
                "• Careers",
                "Advertisement",
                "What a Daily Walk Can Do for Your Heart — Health Essentials",
                "November 28, 2025/Living Healthy/Wellness",
                "What a Daily Walk Can Do for Your Heart",
                "Woman walking along the sea front in the morning",
            ],
            "What a Daily Walk Can Do for Your Heart",
        ),
    ],
)
def test_headline_below_a_site_suffixed_title_line(head: list[str], headline: str) -> None:
    """The headline is found below the menus and a "<title> - Site" line, its site suffix never kept."""
    article = clean(_dump([*head, *ARTICLE]), AID)
    assert article.title == headline
    assert article.text.startswith(ARTICLE[0])
