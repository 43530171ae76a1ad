"""Golden, contract, rule and normalisation tests for the tag stage (`workers.stages.tag`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

import workers.stages.tag as tag_module
from schemas.cleaned import CleanedArticle
from schemas.tagged import Entity
from workers.core.errors import PermanentError
from workers.stages.tag import (
    DEFAULT_MODEL,
    VERSION,
    load_model,
    model_info,
    spacy_load,
    tag,
    tag_many,
    tag_text,
)
from workers.stages.tagging import rules
from workers.stages.tagging.normalise import CharSpan, build_entities

GOLDEN = Path(__file__).parent / "golden"
TITLE = "U.S. Secretary of State Rex Tillerson in China to Discuss North Korea"
AID = "a" * 32

PERSONS = {
    "Rex Tillerson",
    "Xi Jinping",
    "Yang Jiechi",
    "Wang Yi",
    "Kim Jong Un",
    "Donald Trump",
    "Joe McDonald",
    "Mathew Pennington",
}
PLACES = {
    "China",
    "Beijing",
    "Washington",
    "North Korea",
    "Pyongyang",
    "Florida",
    "Syria",
    "South China Sea",
    "Asia",
    "United States",
}
ORGS = {"United Nations", "Associated Press", "Communist Party"}


def _sample_body() -> str:
    """The sample article body kept in the repo (tests/stages/golden/tag_tillerson.txt)."""
    return (GOLDEN / "tag_tillerson.txt").read_text(encoding="utf-8").rstrip("\n")


@pytest.fixture(scope="module")
def nlp() -> Language:
    """The default model, NER only, loaded once."""
    return load_model(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def sample() -> CleanedArticle:
    """The CTN News Tillerson article as the clean stage hands it over."""
    return CleanedArticle(article_id=AID, version="clean-test", title=TITLE, text=_sample_body())


@pytest.fixture(scope="module")
def tagged(sample: CleanedArticle, nlp: Language) -> dict[str, Entity]:
    """Entities of the sample article by canonical name."""
    entities = tag(sample, nlp).entities
    return {e.name: e for e in entities}


def _occurrences(text: str, pattern: str) -> int:
    return len(re.findall(pattern, text))


# --- golden ---------------------------------------------------------------------------------


def test_sample_has_every_expected_entity_once(tagged: dict[str, Entity]) -> None:
    """Every expected person, place and organisation appears once, under its canonical name and type."""
    assert {n for n, e in tagged.items() if e.label == "PERSON"} >= PERSONS
    assert {n for n, e in tagged.items() if e.label in {"GPE", "LOC"}} >= PLACES
    assert {n for n, e in tagged.items() if e.label == "ORG"} == ORGS
    partials = {"Tillerson", "Xi", "Trump", "Kim", "Yang", "BEIJING", "U.S.", "U.N.", "Rex", "Jinping"}
    assert not partials & set(tagged)


def test_sample_has_no_state_organisation(tagged: dict[str, Entity]) -> None:
    """ "State" in "Secretary of State" is not tagged as an organisation."""
    assert all(m.text != "State" for e in tagged.values() for m in e.mentions)


def test_sample_mention_counts(tagged: dict[str, Entity], sample: CleanedArticle) -> None:
    """Mention counts equal the occurrences of each name's forms in the text (partials, abbreviations too)."""
    text = sample.text
    expected = {
        "Rex Tillerson": _occurrences(text, r"\bTillerson\b"),
        "Xi Jinping": _occurrences(text, r"\bXi\b"),
        "Donald Trump": _occurrences(text, r"\bTrump\b"),
        "Kim Jong Un": _occurrences(text, r"\bKim\b"),
        "Yang Jiechi": _occurrences(text, r"\bYang\b"),
        "Beijing": _occurrences(text, r"\b(?:Beijing|BEIJING)\b"),
        "China": _occurrences(text, r"\bChina\b") - _occurrences(text, r"South China Sea"),
        "United States": _occurrences(text, r"\bU\.S\."),
        "United Nations": _occurrences(text, r"United Nations|\bU\.N\."),
        "North Korea": _occurrences(text, r"North Korea(?!n)"),
        "Pyongyang": _occurrences(text, r"\bPyongyang\b"),
        "Washington": _occurrences(text, r"\bWashington\b"),
        "Florida": 3,
        "Wang Yi": 1,
    }
    assert {name: tagged[name].count for name in expected} == expected
    assert expected["Rex Tillerson"] == 8
    assert expected["Beijing"] == 9


def test_sample_mentions_point_at_surface_text(tagged: dict[str, Entity], sample: CleanedArticle) -> None:
    """Every mention's offsets cut exactly its text out of cleaned.text; count is the number of mentions."""
    for entity in tagged.values():
        assert entity.count == len(entity.mentions)
        assert entity.first_position == entity.mentions[0].start
        for mention in entity.mentions:
            assert sample.text[mention.start : mention.end] == mention.text
    assert {m.text for m in tagged["Beijing"].mentions} == {"BEIJING", "Beijing"}
    assert {m.text for m in tagged["Rex Tillerson"].mentions} == {"Rex Tillerson", "Tillerson"}


def test_sample_title_countries_and_salience(
    tagged: dict[str, Entity], sample: CleanedArticle, nlp: Language
) -> None:
    """Title flags, ISO codes (countries and demonyms) and the salience order match the article."""
    assert {n for n, e in tagged.items() if e.in_title} == {
        "Rex Tillerson",
        "China",
        "North Korea",
        "United States",
    }
    assert (tagged["China"].country_code, tagged["North Korea"].country_code) == ("CN", "KP")
    assert tagged["United States"].country_code == "US"
    assert tagged["Chinese"].country_code == "CN"
    assert tagged["Chinese"].label == "NORP"
    entities = tag(sample, nlp).entities
    assert [e.salience for e in entities] == sorted((e.salience for e in entities), reverse=True)
    assert {e.name for e in entities[:4]} == {"Rex Tillerson", "China", "North Korea", "United States"}


# --- contract -------------------------------------------------------------------------------


def test_load_model_keeps_ner_only_and_output_unchanged(nlp: Language, sample: CleanedArticle) -> None:
    """The cached NER-only pipeline finds exactly the entities of the full pipeline on the sample."""
    assert nlp.pipe_names == ["ner"]
    assert load_model(DEFAULT_MODEL) is nlp
    full = spacy_load(DEFAULT_MODEL)
    assert "parser" in full.pipe_names
    ents = [(e.start_char, e.end_char, e.label_) for e in nlp(sample.text).ents]
    assert ents == [(e.start_char, e.end_char, e.label_) for e in full(sample.text).ents]


def test_model_info_reads_meta(nlp: Language) -> None:
    """model_info gives the package's model name and version from its meta."""
    assert model_info(nlp) == ("en_core_web_md", "3.7.1")


def test_unknown_model_is_permanent_error() -> None:
    """A model name that is not installed raises PermanentError with reason model_unavailable."""
    with pytest.raises(PermanentError) as info:
        load_model("no_such_model_xyz")
    assert info.value.reason == "model_unavailable"


def test_tag_records_versions_and_is_deterministic(sample: CleanedArticle, nlp: Language) -> None:
    """tag() stamps article id, tagger VERSION and model, and gives the same result twice."""
    first = tag(sample, nlp)
    assert (first.article_id, first.version, first.model, first.model_version) == (
        AID,
        VERSION,
        "en_core_web_md",
        "3.7.1",
    )
    assert first.skipped is None
    assert tag(sample, nlp) == first


def test_tag_many_equals_tag_in_order(sample: CleanedArticle, nlp: Language) -> None:
    """tag_many over a batch returns, in order, what tag() returns for each article."""
    other = CleanedArticle(
        article_id="b" * 32,
        version="clean-test",
        title=None,
        text="Angela Merkel met Emmanuel Macron in Paris on Monday. Merkel said Germany would help.",
    )
    batch = tag_many([other, sample, other], nlp, batch_size=2)
    assert batch == [tag(other, nlp), tag(sample, nlp), tag(other, nlp)]
    names = {e.name for e in batch[0].entities}
    assert {"Angela Merkel", "Emmanuel Macron", "Paris", "Germany"} <= names
    assert "Merkel" not in names


def test_tag_text_offsets_into_text_as_given(nlp: Language) -> None:
    """tag_text keeps offsets into the raw text (leading whitespace, CRLF) and empty text gives nothing."""
    text = "  \r\nU.S. President Donald Trump spoke.\r\nTrump's aides in Washington agreed.\r\n"
    entities = tag_text(text, nlp, title="Trump speaks")
    by_name = {e.name: e for e in entities}
    assert by_name["Donald Trump"].count == 2
    assert by_name["Donald Trump"].in_title
    assert {m.text for m in by_name["Donald Trump"].mentions} == {"Donald Trump", "Trump"}
    for entity in entities:
        for mention in entity.mentions:
            assert text[mention.start : mention.end] == mention.text
    assert tag_text(" \n\t", nlp) == ()


def test_long_text_runs_in_chunks_with_exact_offsets(
    sample: CleanedArticle, nlp: Language, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text longer than CHUNK_CHARS is split at paragraphs and mentions still point at the right text."""
    monkeypatch.setattr(tag_module, "CHUNK_CHARS", 700)
    assert len(tag_module._chunks(sample.text)) > 3
    assert "".join(tag_module._chunks(sample.text)) == sample.text
    entities = tag_text(sample.text, nlp)
    for entity in entities:
        for mention in entity.mentions:
            assert sample.text[mention.start : mention.end] == mention.text
    assert {"Rex Tillerson", "Xi Jinping", "China"} <= {e.name for e in entities}


# --- span rules (blank pipeline, hand-set spans: fast and model-free) ---------------------------


def _doc(text: str, ents: list[tuple[str, str]]) -> Doc:
    """A tokenised doc whose ents are each (surface, label), searched left to right after the previous one."""
    doc = spacy.blank("en")(text)
    spans: list[Span] = []
    for surface, label in ents:
        start = text.index(surface, spans[-1].end_char if spans else 0)
        span = doc.char_span(start, start + len(surface), label=label)
        assert span is not None, surface
        spans.append(span)
    doc.ents = spans
    return doc


def _run(doc: Doc, *names: str) -> list[tuple[str, str]]:
    spans = rules.apply_rules(doc, rules.model_spans(doc), frozenset(names))
    return [(doc[s.start : s.end].text, s.label) for s in spans]


def test_drop_common_words_drops_capitalised_common_nouns_only() -> None:
    """drop_common_words drops a one-word person or place the text also writes in lower case ("Iodine"
    beside "iodine"), never an acronym ("US" beside "us"), an organisation, or a word of a full name."""
    doc = _doc(
        "Iodine tablets ran out. The iodine went to US towns near us. Church leaders met. The church "
        "said Frank Hall spoke; Hall was frank.",
        [
            ("Iodine", "PERSON"),
            ("US", "GPE"),
            ("Church", "ORG"),
            ("Frank Hall", "PERSON"),
            ("Hall", "PERSON"),
        ],
    )
    assert _run(doc, "drop_common_words") == [
        ("US", "GPE"),
        ("Church", "ORG"),
        ("Frank Hall", "PERSON"),
        ("Hall", "PERSON"),
    ]


def test_trim_strips_the_titles_and_possessives() -> None:
    """trim removes a leading "the", person titles (with a country in front) and a possessive 's."""
    doc = _doc(
        "The United Nations met. U.S. Secretary of State Rex Tillerson spoke. Pyongyang's leader left.",
        [
            ("The United Nations", "ORG"),
            ("U.S. Secretary of State Rex Tillerson", "PERSON"),
            ("Pyongyang's", "GPE"),
        ],
    )
    assert _run(doc, "trim") == [("United Nations", "ORG"), ("Rex Tillerson", "PERSON"), ("Pyongyang", "GPE")]


def test_drop_titles_removes_state_after_secretary_of() -> None:
    """drop_titles drops ORG "State" after "Secretary of" and a bare PERSON "President"; real names stay."""
    doc = _doc(
        "Secretary of State Rex Tillerson and President Trump met the State Bank.",
        [("State", "ORG"), ("Rex Tillerson", "PERSON"), ("President", "PERSON"), ("State Bank", "ORG")],
    )
    assert _run(doc, "drop_titles") == [("Rex Tillerson", "PERSON"), ("State Bank", "ORG")]


def test_label_vote_and_surname_follow_the_full_name() -> None:
    """A surname the model tagged ORG becomes PERSON once the full name is a PERSON in the article."""
    doc = _doc(
        "Donald Trump spoke. Later Trump left. Mr Kim met U.N. staff.",
        [("Donald Trump", "PERSON"), ("Trump", "ORG"), ("U.N.", "ORG")],
    )
    assert _run(doc, "label_vote") == [("Donald Trump", "PERSON"), ("Trump", "PERSON"), ("U.N.", "ORG")]


def test_propagate_persons_tags_untagged_surnames() -> None:
    """propagate_persons tags untagged repeats of a full person name's surname, not lowercase words."""
    doc = _doc(
        "Rex Tillerson arrived. Tillerson then left; tillerson is a typo.", [("Rex Tillerson", "PERSON")]
    )
    assert _run(doc, "propagate_persons") == [("Rex Tillerson", "PERSON"), ("Tillerson", "PERSON")]


def test_acronyms_after_names_and_alone() -> None:
    """acronyms tags "(WHO)" with the preceding name's label and a lone acronym as ORG, not CEO or US."""
    doc = _doc(
        "The World Health Organization (WHO) warned. The CEO of DAB said the US agreed.",
        [("World Health Organization", "ORG")],
    )
    assert _run(doc, "acronyms") == [("World Health Organization", "ORG"), ("WHO", "ORG"), ("DAB", "ORG")]


def test_facility_digits_credits_and_lines() -> None:
    """Building names become FAC, names with digits stop being places, credits and line breaks are cut."""
    doc = _doc(
        "At the Museum of Flight, IE6 failed.\nImage: Nick Moreau.\nElection Results\nEddie Chu won.",
        [
            ("Museum of Flight", "ORG"),
            ("IE6", "GPE"),
            ("Image", "PERSON"),
            ("Election Results\nEddie Chu", "PERSON"),
        ],
    )
    assert _run(doc, "facility_label", "drop_digits", "drop_credits", "split_lines") == [
        ("Museum of Flight", "FAC"),
        ("IE6", "PRODUCT"),
        ("Election Results", "PERSON"),
        ("Eddie Chu", "PERSON"),
    ]


def test_every_rule_is_pure_and_idempotent() -> None:
    """Running the default rules twice changes nothing the second time."""
    doc = _doc(
        "The U.S. Secretary of State Rex Tillerson met Xi. "
        "Tillerson's visit to the Museum of Flight (MOF) ended.",
        [("The U.S.", "GPE"), ("Rex Tillerson", "PERSON"), ("Museum of Flight", "ORG")],
    )
    once = rules.apply_rules(doc, rules.model_spans(doc))
    assert rules.apply_rules(doc, once) == once


# --- normalisation ----------------------------------------------------------------------------


def _entities(text: str, spans: list[tuple[str, str, int]], title: str | None = None) -> dict[str, Entity]:
    """Build entities from (surface, label, occurrence index) triples over text."""
    chars = []
    for surface, label, nth in spans:
        starts = [m.start() for m in re.finditer(re.escape(surface), text)]
        chars.append(CharSpan(starts[nth], starts[nth] + len(surface), label))
    return {e.name: e for e in build_entities(text, chars, title)}


def test_case_variants_abbreviations_and_countries_merge() -> None:
    """BEIJING/Beijing, U.S./United States and U.N./United Nations each become one entity (with ISO code)."""
    text = (
        "BEIJING \u2013 The U.S. and the United States. Beijing said the U.N. and the United Nations agreed."
    )
    entities = _entities(
        text,
        [
            ("BEIJING", "GPE", 0),
            ("U.S.", "GPE", 0),
            ("United States", "GPE", 0),
            ("Beijing", "GPE", 0),
            ("U.N.", "ORG", 0),
            ("United Nations", "ORG", 0),
        ],
    )
    assert set(entities) == {"Beijing", "United States", "United Nations"}
    assert entities["Beijing"].count == 2
    assert entities["United States"].country_code == "US"
    assert entities["United Nations"].count == 2
    assert entities["United Nations"].country_code is None


def test_partial_names_resolve_only_when_unambiguous() -> None:
    """Xi → Xi Jinping; Kim stays apart when two full names contain it."""
    text = "Xi Jinping met Kim Jong Un and Kim Yo Jong. Xi smiled. Kim waved."
    entities = _entities(
        text,
        [
            ("Xi Jinping", "PERSON", 0),
            ("Kim Jong Un", "PERSON", 0),
            ("Kim Yo Jong", "PERSON", 0),
            ("Xi", "PERSON", 1),
            ("Kim", "PERSON", 2),
        ],
    )
    assert entities["Xi Jinping"].count == 2
    assert set(entities) == {"Xi Jinping", "Kim Jong Un", "Kim Yo Jong", "Kim"}


def test_demonyms_link_to_their_country() -> None:
    """Chinese and North Koreans keep their NORP entity and carry their country's ISO code."""
    text = "Chinese officials met North Koreans."
    entities = _entities(text, [("Chinese", "NORP", 0), ("North Koreans", "NORP", 0)])
    assert (entities["Chinese"].country_code, entities["North Koreans"].country_code) == ("CN", "KP")


def test_title_flag_ignores_a_name_inside_a_longer_title_name() -> None:
    """ "North" is not in the title "Talks on North Korea" just because "North Korea" is."""
    text = "North Korea fired. The North said so."
    entities = _entities(text, [("North Korea", "GPE", 0), ("North", "LOC", 1)], title="Talks on North Korea")
    assert entities["North Korea"].in_title
    assert not entities["North"].in_title


def test_entity_named_only_in_the_dateline_is_a_place(nlp: Language) -> None:
    """A shouted dateline city the model calls an ORG is stored as a GPE in title case."""
    text = "MANCHESTER – Manchester City Council voted on Thursday to extend the Metrolink tram line."
    cleaned = CleanedArticle(article_id="0" * 32, version="t", text=text, dateline="MANCHESTER –")
    entities = {e.name: e for e in tag(cleaned, nlp).entities}
    assert entities["Manchester"].label == "GPE"
    assert entities["Manchester"].mentions[0].text == "MANCHESTER"
    assert "Manchester City Council" in entities


# --- bounds and defects of issue 13 -----------------------------------------------------------


def test_dateline_place_named_again_in_the_body_is_one_entity(nlp: Language) -> None:
    """ "MANCHESTER –" (the model says ORG) and "Manchester" (GPE) in the body are one place, not two."""
    text = "MANCHESTER – The council in Manchester voted on Thursday to extend the tram line."
    cleaned = CleanedArticle(article_id="0" * 32, version="t", text=text, dateline="MANCHESTER –")
    entities = tag(cleaned, nlp).entities
    keys = [(e.name, e.label) for e in entities]
    assert len(keys) == len(set(keys)), keys
    [place] = [e for e in entities if e.name == "Manchester" and e.label == "GPE"]
    assert [m.text for m in place.mentions] == ["MANCHESTER", "Manchester"]


def _capitalised_names(count: int) -> tuple[str, list[CharSpan]]:
    """A text of `count` distinct two-word names, each followed by its bare first name, as PERSON spans."""
    consonants, vowels = "BCDFGHKLMNPRSTVZ", "aeiou"

    def word(i: int) -> str:
        out = ""
        while True:
            out += consonants[i % 16] + vowels[(i // 16) % 5]
            i //= 80
            if not i:
                return out.capitalize() + "x"

    parts: list[str] = []
    spans: list[CharSpan] = []
    pos = 0
    for i in range(count):
        first, last = word(i), word(i + 7919) + "son"
        for piece in (f"{first} {last}", first):
            spans.append(CharSpan(pos, pos + len(piece), "PERSON"))
            parts.append(piece)
            pos += len(piece) + 2
    return ", ".join(parts), spans


def test_partial_name_merging_is_near_linear() -> None:
    """400 K characters of capitalised names normalise in seconds (29.5 s before), partials still merged."""
    import time

    text, spans = _capitalised_names(20_000)
    assert len(text) > 400_000
    started = time.process_time()
    entities = build_entities(text, spans, title=None)
    elapsed = time.process_time() - started
    assert elapsed < 4.0, elapsed
    # Each bare first name has exactly one host (first names are distinct), so every pair merges.
    assert len(entities) == 20_000
    assert all(e.count == 2 for e in entities)


def test_find_forms_equals_the_regex_alternation() -> None:
    """find_forms finds exactly what one regex alternation of the forms (longest first) finds."""
    import random

    rng = random.Random(7)
    vocab = ["Kim", "Jong", "Un", "O'Brien", "O", "U.S.", "Mr.", "Ann", "Anne", "Anna-Lee", "and", ",", "x"]
    for _ in range(500):
        forms = {
            rng.choice(vocab[:10]) + rng.choice(["", " Jong", " Un", " Ann"])
            for _ in range(rng.randint(1, 6))
        }
        text = " ".join(rng.choice(vocab) for _ in range(30)).replace(" ,", ",")
        pattern = re.compile(
            r"(?<![\w.])(?:"
            + "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
            + r")(?![\w])"
        )
        expected = [(m.start(), m.end(), m.group()) for m in pattern.finditer(text)]
        assert list(rules.find_forms(text, forms)) == expected, (forms, text)


def test_entities_per_article_are_capped(nlp: Language) -> None:
    """At most max_entities entities (the most salient) and MAX_CANDIDATES mentions per article."""
    text = ", ".join(
        f"{n} Smith{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}"
        for i, n in enumerate(["Anna", "Boris", "Carla"] * 300)
    )
    cleaned = CleanedArticle(article_id="0" * 32, version="t", text=text)
    uncapped = tag(cleaned, nlp, max_entities=10_000).entities
    capped = tag(cleaned, nlp, max_entities=25).entities
    assert len(uncapped) > 25
    assert capped == uncapped[:25]


def test_mention_candidates_are_capped(nlp: Language, monkeypatch: pytest.MonkeyPatch) -> None:
    """No more mentions than MAX_CANDIDATES reach normalisation and storage."""
    monkeypatch.setattr(tag_module, "MAX_CANDIDATES", 40)
    text = ", ".join(f"President Anna Smith{chr(97 + i % 26)}" for i in range(200))
    entities = tag(CleanedArticle(article_id="0" * 32, version="t", text=text), nlp).entities
    assert 0 < sum(e.count for e in entities) <= 40


def test_ner_input_is_bounded(nlp: Language, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the first MAX_TAG_CHARS characters are tagged; offsets still point into the text."""
    monkeypatch.setattr(tag_module, "MAX_TAG_CHARS", 200)
    monkeypatch.setattr(tag_module, "CHUNK_CHARS", 120)
    text = "\n\n".join(f"Angela Merkel met Emmanuel Macron in Paris on day {i}." for i in range(40))
    entities = tag(CleanedArticle(article_id="0" * 32, version="t", text=text), nlp).entities
    mentions = [m for e in entities for m in e.mentions]
    assert mentions
    assert max(m.end for m in mentions) <= 200
    assert all(text[m.start : m.end] == m.text for m in mentions)


def test_tag_many_equals_tag_with_caps_and_datelines(nlp: Language) -> None:
    """tag_many gives what tag gives per article, caps and dateline places included."""
    dateline = CleanedArticle(
        article_id="1" * 32,
        version="t",
        text="MANCHESTER – The council in Manchester voted on Thursday to extend the tram line.",
        dateline="MANCHESTER –",
    )
    crowd = CleanedArticle(
        article_id="2" * 32, version="t", text=", ".join(f"Anna Smith{chr(97 + i % 26)}" for i in range(80))
    )
    batch = [dateline, crowd, dateline]
    assert tag_many(batch, nlp, batch_size=2, max_entities=7) == [tag(c, nlp, max_entities=7) for c in batch]
