"""Tagging by language: the model of the article's language, or no entities and the reason why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.cleaned import CleanedArticle
from tests.multilingual import ARTICLES, ENGLISH_NAMES, FRENCH_NAMES, write_feed
from tests.samples import ROOT
from workers.core.settings import Settings, parse_tagger_models
from workers.stages import tag as tag_stage
from workers.stages.tagging import languages
from workers.stages.tagging.rules import TokSpan, trim_fr

MODELS = {"en": tag_stage.DEFAULT_MODEL, "fr": "fr_core_news_sm"}
runner = CliRunner()


def _cleaned(language: str, labelled: str | None = None) -> CleanedArticle:
    title, text = ARTICLES[language]
    return CleanedArticle(
        article_id=f"{language:0>32}", version="test", title=title, text=text, language=labelled
    )


def _names(entities: tuple[object, ...]) -> set[tuple[str, str]]:
    return {(e.name, e.label) for e in entities}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def taggers() -> tag_stage.Taggers:
    return tag_stage.Taggers(MODELS)


def test_articles_without_a_model_are_untagged_with_the_reason(taggers: tag_stage.Taggers) -> None:
    """German, Portuguese and Japanese articles get no entities, no model and "no model for 'xx'"."""
    out = tag_stage.tag_routed([_cleaned(lang, lang) for lang in ("de", "pt", "ja")], taggers)
    for lang, tagged in zip(("de", "pt", "ja"), out, strict=True):
        assert tagged.entities == ()
        assert tagged.untagged == f"no model for '{lang}'"
        assert tagged.language == lang
        assert tagged.model == tag_stage.NO_MODEL


def test_french_article_gets_french_entities_normalised(taggers: tag_stage.Taggers) -> None:
    """A French article is tagged by the French model: persons without M./Mme, places without la/l'."""
    (tagged,) = tag_stage.tag_routed([_cleaned("fr")], taggers)  # no label: the detector decides
    assert tagged.untagged is None
    assert (tagged.model, tagged.language) == ("fr_core_news_sm", "fr")
    names = _names(tagged.entities)
    assert names >= FRENCH_NAMES
    assert ("France", "LOC") in names or ("France", "GPE") in names
    assert not any(n.startswith(("M. ", "Mme ", "la ", "l'")) for n, _ in names)


def test_english_article_is_tagged_as_before(taggers: tag_stage.Taggers) -> None:
    """Routing changes nothing for English: the same entities as the English model on its own."""
    article = _cleaned("en", "en")
    (routed,) = tag_stage.tag_routed([article], taggers)
    alone = tag_stage.tag(article, tag_stage.load_model(tag_stage.DEFAULT_MODEL))
    assert routed.entities == alone.entities
    assert _names(routed.entities) >= ENGLISH_NAMES
    assert routed.language == "en"


def test_a_batch_keeps_its_order_across_languages(taggers: tag_stage.Taggers) -> None:
    """A mixed batch comes back in input order, each article by its own language's model or untagged."""
    batch = [_cleaned(lang) for lang in ("en", "de", "fr", "ja", "en")]
    out = tag_stage.tag_routed(batch, taggers)
    assert [t.article_id for t in out] == [a.article_id for a in batch]
    assert [t.language for t in out] == ["en", "de", "fr", "ja", "en"]
    assert [t.untagged is None for t in out] == [True, False, True, False, True]


def test_unknown_or_mixed_language_is_tagged_only_when_the_detector_is_confident() -> None:
    """No label (or `mul`): a clear English text is tagged in English; a few words are not tagged."""
    english = ARTICLES["en"][1]
    assert languages.choose(None, english, {"en"}) == languages.Choice("en")
    assert languages.choose("mul", english, {"en"}) == languages.Choice("en")
    unsure = languages.choose(None, "Ferry strike ends", {"en"})
    assert unsure.language is None
    assert unsure.untagged is not None
    assert unsure.untagged.startswith("language unknown, detector not confident")
    mixed = languages.choose("mul", "Ferry strike ends", {"en"})
    assert mixed.untagged is not None
    assert mixed.untagged.startswith("language mixed")
    assert languages.choose("und", "12 345 678", {"en"}).untagged == (
        "language unknown, detector not confident (no letters < 0.9)"
    )


def test_a_label_the_text_clearly_contradicts_is_overruled() -> None:
    """A page labelled 'en' whose text is plainly German is not run through the English model."""
    assert languages.choose("en", ARTICLES["de"][1], {"en", "fr"}) == languages.Choice(
        "de", "no model for 'de'"
    )
    assert languages.choose("pt-BR", ARTICLES["pt"][1], {"en"}) == languages.Choice("pt", "no model for 'pt'")
    # A short English text the detector is unsure of keeps its label.
    assert languages.choose("en", "Ferry strike ends", {"en"}) == languages.Choice("en")


def test_detector_gives_a_probability() -> None:
    """The detector's probability is normalised: near 1 for a clear paragraph, low for two words."""
    lang, p = languages.detect(ARTICLES["fr"][1])
    assert lang == "fr"
    assert 0.9 <= p <= 1.0
    assert languages.detect("Ferry strike")[1] < 0.9


def test_french_trim_rule() -> None:
    """trim_fr drops le/la/l', de/du before places, M./Mme before names, but keeps "de Gaulle"."""
    nlp = tag_stage.load_model("fr_core_news_sm")
    doc = nlp.make_doc("Mme Borne a vu la France et M. Dupont du Sénat avec de Gaulle à l'Élysée.")

    def span(text: str, label: str) -> TokSpan:
        chars = doc.text.index(text)
        s = doc.char_span(chars, chars + len(text))
        assert s is not None
        return TokSpan(s.start, s.end, label)

    spans = [
        span("Mme Borne", "PERSON"),
        span("la France", "LOC"),
        span("M. Dupont", "PERSON"),
        span("du Sénat", "ORG"),
        span("de Gaulle", "PERSON"),
        span("l'Élysée", "LOC"),
    ]
    assert [doc[s.start : s.end].text for s in trim_fr(doc, spans)] == [
        "Borne",
        "France",
        "Dupont",
        "Sénat",
        "de Gaulle",
        "Élysée",
    ]


def test_tagger_models_setting() -> None:
    """NEWSFLOW_TAGGER_MODELS maps languages to models; NEWSFLOW_TAGGER_MODEL stays the English one."""
    assert Settings().tagger_model_map == MODELS
    assert Settings(tagger_model="/models/en").tagger_model_map["en"] == "/models/en"
    assert Settings(tagger_models="en=a,fr=b , de=c").tagger_model_map == {"en": "a", "fr": "b", "de": "c"}
    assert parse_tagger_models("") == {}
    for bad in ("french", "fr=", "FR=x", "fr=a,fr=b"):
        with pytest.raises(ValueError, match="NEWSFLOW_TAGGER_MODELS"):
            parse_tagger_models(bad)


def test_models_load_only_for_languages_that_arrive() -> None:
    """A process that tags only English articles never loads the French model (fresh process)."""
    script = (
        "from workers.stages import tag as t\n"
        "from tests.test_tag_languages import MODELS, _cleaned\n"
        "taggers = t.Taggers(MODELS)\n"
        "t.tag_routed([_cleaned('en'), _cleaned('de'), _cleaned('ja')], taggers)\n"
        "print(t.load_model.cache_info().currsize)\n"
        "t.tag_routed([_cleaned('fr')], taggers)\n"
        "print(t.load_model.cache_info().currsize)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=280
    )
    assert out.stdout.split() == ["1", "2"]


def test_embedded_run_stores_untagged_articles_with_the_reason(tmp_path: Path) -> None:
    """`newsflow run` on five languages: de/pt/ja stored untagged with the reason (show, trace, report),
    the French one with French entities, the English one with its entities."""
    from workers.cli import app

    db = f"sqlite:///{tmp_path / 'n.db'}"
    feed = write_feed(tmp_path / "feed.jsonl")
    result = runner.invoke(app, ["run", str(feed), "--json", "--db", db])
    assert result.exit_code == 0, result.stdout + result.stderr
    stored = {
        a["language"]: a for a in (json.loads(x) for x in result.stdout.splitlines() if x.startswith("{"))
    }
    assert set(stored) == {"de", "pt", "ja", "fr", "en"}
    assert _names_of(stored["fr"]) >= FRENCH_NAMES
    assert _names_of(stored["en"]) >= ENGLISH_NAMES
    for lang in ("de", "pt", "ja"):
        article_id = stored[lang]["id"]
        assert stored[lang]["entities"] == []
        shown = runner.invoke(app, ["show", article_id, "--db", db])
        assert shown.exit_code == 0
        assert f"untagged: no model for '{lang}'" in " ".join(shown.stdout.split())
        as_json = json.loads(runner.invoke(app, ["show", article_id, "--json", "--db", db]).stdout)
        assert as_json["tagging"]["untagged"] == f"no model for '{lang}'"
        traced = json.loads(runner.invoke(app, ["trace", article_id, "--json", "--db", db]).stdout)
        assert traced["stored"]["untagged"] == f"no model for '{lang}'"
        assert (
            next(s for s in traced["stages"] if s["stage"] == "tag")["untagged"] == f"no model for '{lang}'"
        )
    report = json.loads(runner.invoke(app, ["report", "--json", "--db", db]).stdout)
    rates = {source: periods[-1]["untagged_rate"] for source, periods in report["sources"].items()}
    assert rates == {
        "de.example": 1.0,
        "pt.example": 1.0,
        "ja.example": 1.0,
        "fr.example": 0.0,
        "en.example": 0.0,
    }


def _names_of(stored: dict[str, object]) -> set[tuple[str, str]]:
    return {(e["name"], e["label"]) for e in stored["entities"]}  # type: ignore[attr-defined, index]


def test_tag_command_language_max_entities_and_long_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """`newsflow tag`: --language picks the model (none for 'de': exit 2 with the reason), a German text
    without --language prints no entities and why, NEWSFLOW_MAX_ENTITIES caps the list, and text past
    100,000 characters is reported as untagged."""
    from workers.cli import app
    from workers.core.settings import get_settings

    french = runner.invoke(app, ["tag", "-", "--json", "--language", "fr"], input=ARTICLES["fr"][1])
    assert french.exit_code == 0, french.stderr
    assert {(e["name"], e["label"]) for e in json.loads(french.stdout)} >= FRENCH_NAMES
    german = runner.invoke(app, ["tag", "-", "--json", "--language", "de"], input=ARTICLES["de"][1])
    assert german.exit_code == 2
    assert "untagged: no model for 'de'" in german.stderr
    detected = runner.invoke(app, ["tag", "-", "--json"], input=ARTICLES["de"][1])
    assert detected.exit_code == 0
    assert json.loads(detected.stdout) == []
    assert "untagged: no model for 'de'" in detected.stderr
    long_text = (ARTICLES["en"][1] + "\n\n") * 300
    monkeypatch.setenv("NEWSFLOW_MAX_ENTITIES", "2")
    get_settings.cache_clear()
    try:
        capped = runner.invoke(app, ["tag", "-", "--json", "--language", "en"], input=long_text)
    finally:
        get_settings.cache_clear()
    assert capped.exit_code == 0, capped.stderr
    assert len(json.loads(capped.stdout)) == 2
    assert "untagged: text past character 100,000" in capped.stderr


def test_tagged_or_not_is_counted_by_language() -> None:
    """The tag stage's summary counts articles by language and tagged yes/no (unknown codes bounded);
    the entities histogram observes tagged articles only."""
    from prometheus_client import REGISTRY

    from workers.runtime import metrics

    m = metrics.worker_metrics()

    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    before = {
        key: value("newsflow_tag_languages_total", dict(zip(("language", "tagged"), key, strict=True)))
        for key in (("de", "no"), ("fr", "yes"), ("unknown", "no"))
    }
    observed = value("newsflow_entities_per_article_count")
    metrics._observe_tagged(m, {"language": "de", "untagged": "no model for 'de'", "entities": 0})
    metrics._observe_tagged(m, {"language": "fr", "untagged": None, "entities": 7})
    metrics._observe_tagged(m, {"language": "not-a-code", "untagged": "language unknown", "entities": 0})
    for key, was in before.items():
        labels = dict(zip(("language", "tagged"), key, strict=True))
        assert value("newsflow_tag_languages_total", labels) == was + 1, key
    assert value("newsflow_entities_per_article_count") == observed + 1
