"""The tag stage's error classes of issue 29, one test each: rules on hand-set spans (blank pipeline, no
model) and, where the model's own output is the point, the default English model (loaded once)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import spacy

from schemas.cleaned import CleanedArticle
from tests.stages.test_tag import _doc, _run
from workers.stages import tag as tag_stage
from workers.stages.store import assemble
from workers.stages.tagging import languages, rules
from workers.stages.tagging.normalise import CharSpan, build_entities
from workers.stages.tagging.tables import is_place_name


def test_caption_words_are_no_acronyms() -> None:
    """ "FILE PHOTO:" gives no ORG "PHOTO" (a shouted run, a credit word); a lone acronym still is one."""
    doc = _doc("FILE PHOTO: Police stand guard in Paris. BREAKING NEWS here. The CEO of DAB spoke.", [])
    assert _run(doc, "acronyms") == [("DAB", "ORG")]


def test_an_acronym_defined_in_parentheses_takes_its_names_label() -> None:
    """ "Johnson Space Center (JSC)": the model's ORG for "JSC" gives way to the name's FAC."""
    doc = _doc(
        "Staff of the Johnson Space Center (JSC) left.", [("Johnson Space Center", "FAC"), ("JSC", "ORG")]
    )
    assert _run(doc, "acronyms") == [("Johnson Space Center", "FAC"), ("JSC", "FAC")]


def test_gazetteer_places_keep_the_models_place_label_in_the_vote() -> None:
    """A town, region or country the model called a place once stays a place against an ORG majority;
    a form the gazetteer does not know keeps the majority."""
    text = "Sapporo won. Sapporo said. Sapporo grew. Hokkaido and Hokkaido. Corpus Christi, Corpus Christi. Acme, Acme, Acme."
    doc = _doc(
        text,
        [
            ("Sapporo", "GPE"),
            ("Sapporo", "ORG"),
            ("Sapporo", "ORG"),
            ("Hokkaido", "ORG"),
            ("Hokkaido", "GPE"),
            ("Corpus Christi", "ORG"),
            ("Corpus Christi", "GPE"),
            ("Acme", "ORG"),
            ("Acme", "ORG"),
            ("Acme", "GPE"),
        ],
    )
    labels = {(t, label) for t, label in _run(doc, "label_vote")}
    assert labels == {("Sapporo", "GPE"), ("Hokkaido", "GPE"), ("Corpus Christi", "GPE"), ("Acme", "ORG")}
    assert is_place_name("Corpus Christi")
    assert is_place_name("hokkaido")
    assert not is_place_name("Acme")


def test_the_is_kept_where_it_is_part_of_the_name() -> None:
    """ "The" capitalised mid-sentence before a company or paper stays ("shares in The Hut Group"); at a
    sentence start it goes, and both forms are one entity named with it."""
    text = "Shares in The Hut Group fell, he told The Sunday Times. The Hut Group declined to comment."
    doc = _doc(text, [("The Hut Group", "ORG"), ("The Sunday Times", "ORG"), ("The Hut Group", "ORG")])
    spans = _run(doc, "trim")
    assert spans == [("The Hut Group", "ORG"), ("The Sunday Times", "ORG"), ("Hut Group", "ORG")]
    chars = [
        CharSpan(text.index("The Hut Group"), text.index("The Hut Group") + 13, "ORG"),
        CharSpan(text.rindex("Hut Group"), text.rindex("Hut Group") + 9, "ORG"),
    ]
    [entity] = build_entities(text, chars)
    assert (entity.name, entity.count) == ("The Hut Group", 2)


def test_earth_capitalised_mid_sentence_is_kept() -> None:
    """A word capitalised mid-sentence ("orbit the Earth") is a name even when the text also writes it in
    lower case; one capitalised only at a sentence start ("Iodine") is still dropped."""
    doc = _doc(
        "Satellites orbit the Earth. The earth is warm. Iodine tablets ran out; the iodine went.",
        [("Earth", "LOC"), ("Iodine", "PERSON")],
    )
    assert _run(doc, "drop_common_words") == [("Earth", "LOC")]


def test_particles_join_a_persons_name() -> None:
    """ "Ursula von" PERSON + "Leyen" LOC → "Ursula von der Leyen"; "Vincent" + "van Gogh" untagged → one."""
    doc = _doc(
        "Ursula von der Leyen met Vincent van Gogh fans in Brussels.",
        [("Ursula von", "PERSON"), ("Leyen", "LOC"), ("Vincent", "PERSON"), ("Brussels", "GPE")],
    )
    assert _run(doc, "join_particles") == [
        ("Ursula von der Leyen", "PERSON"),
        ("Vincent van Gogh", "PERSON"),
        ("Brussels", "GPE"),
    ]


def test_photo_credits_are_cut_from_names() -> None:
    """ "REUTERS / Sandra Sanders" ORG → the agency and the photographer, a PERSON."""
    doc = _doc("A man walks by. REUTERS / Sandra Sanders", [("REUTERS / Sandra Sanders", "ORG")])
    assert _run(doc, "split_slash") == [("REUTERS", "ORG"), ("Sandra Sanders", "PERSON")]


def test_sign_off_names_are_persons() -> None:
    """Names after "Reporting by" / "Editing by" are reporters, persons, whatever the model said; "owned
    by Google" is no sign-off."""
    doc = _doc(
        "It is owned by Google.\n(Reporting by Jane Doe and John Roe in London; Editing by Ann Lee)",
        [("Google", "ORG"), ("Jane Doe", "ORG"), ("John Roe", "ORG"), ("London", "GPE"), ("Ann Lee", "ORG")],
    )
    assert _run(doc, "credit_persons") == [
        ("Google", "ORG"),
        ("Jane Doe", "PERSON"),
        ("John Roe", "PERSON"),
        ("London", "GPE"),
        ("Ann Lee", "PERSON"),
    ]


def test_companies_diseases_and_stray_persons() -> None:
    """ "Pfizer" PERSON beside "Pfizer Inc" is the company; "COVID-19" is no ORG; a one-word PERSON the
    model tags once among untagged repeats ("Brexit") goes, a supported one ("Tillerson") stays."""
    doc = _doc(
        "Pfizer said Pfizer Inc would ship. COVID-19 spread. Brexit looms; Brexit talks; after Brexit. "
        "Rex Tillerson left. Tillerson said.",
        [
            ("Pfizer", "PERSON"),
            ("Pfizer Inc", "ORG"),
            ("COVID-19", "ORG"),
            ("Brexit", "PERSON"),
            ("Rex Tillerson", "PERSON"),
            ("Tillerson", "PERSON"),
        ],
    )
    assert _run(doc, "company_persons", "drop_diseases", "person_votes") == [
        ("Pfizer", "ORG"),
        ("Pfizer Inc", "ORG"),
        ("Rex Tillerson", "PERSON"),
        ("Tillerson", "PERSON"),
    ]


def test_a_name_run_into_lower_case_words_is_cut() -> None:
    """ "Kim Jong Un, and Trump exchange insults": "Trump exchange" ORG → "Trump", the person."""
    doc = _doc(
        "Donald Trump spoke. Kim and Trump exchange insults.",
        [("Donald Trump", "PERSON"), ("Trump exchange", "ORG")],
    )
    assert _run(doc, "person_tails") == [("Donald Trump", "PERSON"), ("Trump", "PERSON")]


def test_every_new_rule_is_idempotent() -> None:
    """Running the default rules over their own output changes nothing (the new rules included)."""
    doc = _doc(
        "FILE PHOTO: Ursula von der Leyen told The Sunday Times. REUTERS / Sandra Sanders\n"
        "(Reporting by Jane Doe; Editing by Ann Lee)",
        [
            ("Ursula von", "PERSON"),
            ("Leyen", "GPE"),
            ("The Sunday Times", "ORG"),
            ("REUTERS / Sandra Sanders", "ORG"),
        ],
    )
    once = rules.apply_rules(doc, rules.model_spans(doc))
    assert rules.apply_rules(doc, once) == once


# --- with the model ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nlp() -> spacy.language.Language:
    """The default English model, NER only (cached per process: one load for the session)."""
    return tag_stage.load_model(tag_stage.DEFAULT_MODEL)


def test_tag_command_text_gets_the_dateline_fix(nlp: spacy.language.Language) -> None:
    """Plain text (`newsflow tag`) with a wire dateline: PARIS and ANKARA are places in title case."""
    for city, text in (
        (
            "Paris",
            "PARIS (Reuters) - France will raise its defence budget next year, the minister said on Tuesday.",
        ),
        (
            "Ankara",
            "Weather report\nANKARA, March 3 (Reuters) - Turkey will hold talks with Greece next week, officials said.",
        ),
    ):
        entities = {e.name: e for e in tag_stage.tag_text(text, nlp)}
        assert entities[city].label == "GPE", entities
        assert entities[city].mentions[0].text == city.upper()


def test_default_model_is_the_pinned_md(nlp: spacy.language.Language) -> None:
    """The default English model is en_core_web_md 3.7.1 (the official release's meta: vectors of 514,157
    keys, 20,000 x 300), NER only; the `nlp` fixture loading it under `filterwarnings = error` proves its
    W095 is silenced."""
    assert tag_stage.model_info(nlp) == ("en_core_web_md", "3.7.1")
    assert nlp.pipe_names == ["ner"]
    assert nlp.vocab.vectors.shape == (20_000, 300)
    assert nlp.vocab.vectors.n_keys == 514_157


def test_version_warning_stays_for_other_models(tmp_path: Path) -> None:
    """W095 is silenced only for the vetted model and version: another model trained with an older spaCy
    still warns."""
    blank = spacy.blank("en")
    blank.meta.update({"name": "other", "version": "0.1.0", "spacy_version": ">=3.7.2,<3.8.0"})
    blank.to_disk(tmp_path / "other")
    with pytest.warns(UserWarning, match=r"\[W095\] Model 'en_other' \(0\.1\.0\)"):
        tag_stage.spacy_load(str(tmp_path / "other"))


# --- languages per paragraph ----------------------------------------------------------------------

ENGLISH_PARAGRAPH = (
    "The European Commission said on Tuesday that it would propose new rules on energy prices next month, "
    "after talks between ministers in Brussels ended without an agreement."
)
FRENCH_PARAGRAPH = (
    "La présidente de la Commission européenne, Ursula von der Leyen, a déclaré mardi à Bruxelles que les "
    "ministres devaient trouver un accord avant la fin du mois sur les prix de l'énergie."
)
GERMAN_PARAGRAPH = (
    "Die Bundesregierung in Berlin erklärte am Dienstag, sie wolle den Vorschlag der Kommission genau "
    "prüfen und sich mit den anderen Mitgliedstaaten abstimmen."
)


def test_runs_tile_the_text_by_language() -> None:
    """English, French and German paragraphs give three runs tiling the text, each with its language;
    the German one without a model says why; short lines follow their neighbours."""
    text = f"Energy talks\n\n{ENGLISH_PARAGRAPH}\n\n{FRENCH_PARAGRAPH}\n\nPhoto: AFP\n\n{GERMAN_PARAGRAPH}"
    plan = languages.runs("en", text, {"en", "fr"})
    assert [r.language for r in plan] == ["en", "fr", "de"]
    assert [r.untagged for r in plan] == [None, None, "no model for 'de'"]
    assert plan[0].start == 0
    assert plan[-1].end == len(text)
    assert all(a.end == b.start for a, b in itertools.pairwise(plan))
    assert text[plan[1].start :].startswith("La présidente")
    assert languages.runs("en", f"{ENGLISH_PARAGRAPH}\n\n{ENGLISH_PARAGRAPH}", {"en"}) == [
        languages.Run(0, 2 * len(ENGLISH_PARAGRAPH) + 2, "en")
    ]


def test_mixed_article_goes_to_each_languages_model(nlp: spacy.language.Language) -> None:
    """An article mixing English, French and German paragraphs: the French one is read by the French
    model (Ursula von der Leyen one person, no "Bruxelles" PERSON), the German one is listed untagged
    with the reason, and the stored language is the one most of the text was tagged in."""
    text = f"{ENGLISH_PARAGRAPH}\n\n{ENGLISH_PARAGRAPH}\n\n{FRENCH_PARAGRAPH}\n\n{GERMAN_PARAGRAPH}"
    article = CleanedArticle(article_id="b" * 32, version="t", text=text, language="en")
    taggers = tag_stage.Taggers({"en": tag_stage.DEFAULT_MODEL, "fr": "fr_core_news_sm"})
    (tagged,) = tag_stage.tag_routed([article], taggers)
    names = {(e.name, e.label) for e in tagged.entities}
    assert ("Ursula von der Leyen", "PERSON") in names
    assert not any(name == "Bruxelles" and label == "PERSON" for name, label in names)
    assert tagged.language == "en"
    assert tagged.untagged is None
    [part] = tagged.untagged_parts
    assert (part.language, part.reason) == ("de", "no model for 'de'")
    assert text[part.start : part.end].strip() == GERMAN_PARAGRAPH
    assert not any(part.start <= m.start < part.end for e in tagged.entities for m in e.mentions)


def test_stored_language_is_the_one_the_text_was_tagged_in(nlp: spacy.language.Language) -> None:
    """An English page declared lang="fr" is tagged by the English model and stored as "en"."""
    from schemas import DedupVerdict, RawArticle

    text = f"{ENGLISH_PARAGRAPH}\n\n{ENGLISH_PARAGRAPH}"
    cleaned = CleanedArticle(article_id="c" * 32, version="t", text=text, language="fr")
    taggers = tag_stage.Taggers({"en": tag_stage.DEFAULT_MODEL, "fr": "fr_core_news_sm"})
    (tagged,) = tag_stage.tag_routed([cleaned], taggers)
    assert (tagged.language, tagged.model) == ("en", "en_core_web_md")
    raw = RawArticle(source="s", body=text)
    verdict = DedupVerdict(
        article_id=cleaned.article_id,
        version="t",
        kind="unique",
        cluster_id=cleaned.article_id,
        reason="unique",
        text_key="k",
    )
    assert assemble(raw, cleaned, verdict, tagged).language == "en"
