"""Which model tags an article: its language, checked against the text, and what holds per language.

The clean stage records one language per article (the page's own declaration, or py3langid's best
guess) without a confidence. Here the text's first `SAMPLE_CHARS` characters are identified again
with a probability (py3langid's ranking, normalised over every language it knows) and:

- a labelled language stands unless the text is confidently (≥ `CONFIDENT`) another one;
- an unknown (`None`, `und`, `zxx`, ...) or mixed (`mul`) language is tagged only when the text is
  confidently one language;
- a language without a configured model is not tagged, and the record says so.

Each language has a profile: how its model's labels map to ours and which span rules hold there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from workers.stages.tagging.rules import ENGLISH_RULES, FRENCH_RULES, IDENTITY_LABELS

CONFIDENT: Final = 0.9
"""Probability from which the detector's language counts: for unknown or mixed articles, and to
overrule a label the text contradicts."""

SAMPLE_CHARS: Final = 1000
"""Characters of the text the detector reads (the clean stage reads as many)."""

UNKNOWN: Final = frozenset({"und", "zxx", "mis", "xx", "unknown"})
"""Language codes that say nothing (BCP 47 undetermined, no linguistic content, ...)."""

MIXED: Final = frozenset({"mul"})
"""Language codes that say "several languages"."""

_CODE: Final = re.compile(r"[a-z]{2,3}")


@dataclass(frozen=True, slots=True)
class Profile:
    """What holds for one language: its model's labels mapped to ours, and the span rules."""

    labels: Mapping[str, str]
    rules: frozenset[str]


WIKINER_LABELS: Final = {"PER": "PERSON", "ORG": "ORG", "LOC": "LOC"}
"""Label map of WikiNER-style models (spaCy's French, German, Spanish...): MISC has no match of ours."""

PROFILES: Final[dict[str, Profile]] = {
    "en": Profile(IDENTITY_LABELS, ENGLISH_RULES),
    "fr": Profile(WIKINER_LABELS, FRENCH_RULES),
}
"""Languages with normalisation measured on a benchmark (`bench/ner_eval.py`)."""

OTHER: Final = Profile({**IDENTITY_LABELS, **WIKINER_LABELS}, frozenset({"split_lines"}))
"""Any other language given a model: its labels as they are, no language-specific normalisation."""


def profile(language: str) -> Profile:
    """Language code → its profile (OTHER for a language without a measured one) (pure)."""
    return PROFILES.get(language, OTHER)


def code(language: str | None) -> str | None:
    """A stored language tag → its primary subtag in lower case ("pt-BR" → "pt"); None when the
    tag is missing or not a language (pure)."""
    if not language:
        return None
    primary = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return primary if _CODE.fullmatch(primary) else None


def detect(text: str) -> tuple[str, float]:
    """Text → (language, probability) from its first SAMPLE_CHARS characters: py3langid's ranking
    normalised over all its languages; ("", 0.0) for text without letters (pure)."""
    sample = text[:SAMPLE_CHARS]
    if not any(ch.isalpha() for ch in sample):
        return "", 0.0
    import py3langid  # the clean stage's identifier, loaded once per process on first use

    ranked = py3langid.rank(sample)
    best = float(ranked[0][1])
    total = sum(math.exp(float(score) - best) for _, score in ranked)
    return str(ranked[0][0]), 1.0 / total


@dataclass(frozen=True, slots=True)
class Choice:
    """The language an article is tagged in, or why it is not tagged."""

    language: str | None
    untagged: str | None = None
    """Why the article is not tagged ("no model for 'de'"); None when `language`'s model tags it."""


PARAGRAPH_LETTERS: Final = 100
"""Letters a paragraph needs for its own detected language to count inside an article: shorter ones
(captions, lists of names, which py3langid may call Nigerian Pidgin with 0.99) follow their neighbours."""


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive paragraphs of one language: text[start:end], its language, and why it is not tagged."""

    start: int
    end: int
    language: str | None
    untagged: str | None = None


def _reason(language: str, available: Collection[str]) -> str | None:
    return None if language in available else f"no model for '{language}'"


def runs(labelled: str | None, text: str, available: Collection[str]) -> list[Run]:
    """The article's runs of paragraphs by language, tiling the text: one run in the language `choose`
    gives unless paragraphs of PARAGRAPH_LETTERS letters or more are confidently another language;
    then each such paragraph has its detected language, shorter ones their neighbours' (pure)."""
    choice = choose(labelled, text, available)
    whole = [Run(0, len(text), choice.language, choice.untagged)]
    paragraphs = [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]
    if len(paragraphs) < 2:
        return whole
    seen: list[str | None] = []
    for start, end in paragraphs:
        chunk = text[start:end]
        if sum(ch.isalpha() for ch in chunk) < PARAGRAPH_LETTERS:
            seen.append(None)
            continue
        detected, probability = detect(chunk)
        seen.append(detected if probability >= CONFIDENT else None)
    found = {language for language in seen if language}
    if not found or found == {choice.language}:
        return whole
    first = next(language for language in seen if language)
    out: list[Run] = []
    current = first
    for (start, _), language in zip(paragraphs, seen, strict=True):
        current = language or current
        if out and out[-1].language == current:
            continue
        if out:
            out[-1] = Run(out[-1].start, start, out[-1].language, out[-1].untagged)
        out.append(Run(start if out else 0, len(text), current, _reason(current, available)))
    return out


def choose(labelled: str | None, text: str, available: Collection[str]) -> Choice:
    """The article's stored language and text → the language to tag it in, or the reason not to
    (see the module docstring); `available` are the languages with a model (pure)."""
    label = code(labelled)
    raw = (labelled or "").strip().lower()
    mixed = label in MIXED or raw in MIXED
    unknown = label is None or label in UNKNOWN
    detected, probability = detect(text)
    confident = bool(detected) and probability >= CONFIDENT
    language: str
    if unknown or mixed:
        if not confident:
            what = "mixed" if mixed else "unknown"
            seen = f"'{detected}' {probability:.2f}" if detected else "no letters"
            return Choice(None, f"language {what}, detector not confident ({seen} < {CONFIDENT})")
        language = detected
    elif confident and detected != label:
        language = detected  # the page says one language, its text is clearly another
    else:
        language = label or detected
    if language not in available:
        return Choice(language, f"no model for '{language}'")
    return Choice(language)


__all__ = [
    "CONFIDENT",
    "OTHER",
    "PARAGRAPH_LETTERS",
    "PROFILES",
    "SAMPLE_CHARS",
    "Choice",
    "Profile",
    "Run",
    "choose",
    "code",
    "detect",
    "profile",
    "runs",
]
