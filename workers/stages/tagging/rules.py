"""Span rules: turn the model's raw entity spans into clean name spans.

Each rule is a pure function `(doc, spans) -> spans` over token-index spans, named in `RULES`
so the benchmark can switch them off one at a time (ablation). A rule stays only if the
benchmark improves with it; `bench/ner_eval.py` prints the figures.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from spacy.attrs import ENT_IOB
from spacy.tokens import Doc

from workers.stages.tagging.tables import (
    FRENCH_LEADING_DROP,
    FRENCH_PARTICLES,
    FRENCH_TITLES,
    LEADING_DROP,
    POSSESSIVES,
    TITLE_WORDS,
    country_code,
    demonym_code,
    is_subdivision,
    norm_key,
    words,
)

KEPT_LABELS: Final = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "LAW", "PRODUCT", "WORK_OF_ART"}
)
"""Name types that matter in news; dates, numbers and languages are dropped."""

_NAME_LABELS: Final = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC"})
_COORD: Final = frozenset({"and", "&", ",", "or"})
_PROPAGATE_STOP: Final = frozenset(
    norm_key(word)
    for word in words(
        "The A An He She It They We I You This That These Those His Her Its Their Our Mr Mrs Ms Dr"
    )
)


@dataclass(frozen=True, slots=True)
class TokSpan:
    """An entity candidate: token indices into the doc (end exclusive) and a label."""

    start: int
    end: int
    label: str


Rule = Callable[[Doc, list[TokSpan]], list[TokSpan]]


def _taken(doc: Doc, spans: Iterable[TokSpan]) -> bytearray:
    """Per token: 1 if the model tagged it (any label, dates included) or a span covers it."""
    iob = doc.to_array(ENT_IOB)
    taken = bytearray(((iob == 1) | (iob == 3)).astype("uint8").tobytes())
    for s in spans:
        taken[s.start : s.end] = b"\x01" * (s.end - s.start)
    return taken


def _text(doc: Doc, span: TokSpan) -> str:
    return doc[span.start : span.end].text


def _has_upper(text: str) -> bool:
    return any(ch.isupper() for ch in text)


def _is_title_token(doc: Doc, i: int) -> bool:
    return norm_key(doc[i].text) in TITLE_WORDS


def trim(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Strip leading determiners, person titles, possessives and edge punctuation (pure)."""
    out: list[TokSpan] = []
    for span in spans:
        start, end = span.start, span.end
        changed = True
        while changed and start < end:
            changed = False
            while start < end and (
                doc[start].is_space or doc[start].is_punct or doc[start].lower_ in LEADING_DROP
            ):
                start += 1
                changed = True
            while end > start and (
                doc[end - 1].is_space
                or doc[end - 1].text in POSSESSIVES
                or (doc[end - 1].is_punct and not (doc[end - 1].text == ")" and "(" in doc[start:end].text))
            ):
                end -= 1
                changed = True
            if span.label == "PERSON":
                i = start
                # "U.S. Secretary of State Rex Tillerson": a country or demonym in front of a title goes too.
                while i < end - 1 and (
                    _is_title_token(doc, i)
                    or (
                        (country_code(doc[i].text) or demonym_code(doc[i].text))
                        and _is_title_token(doc, i + 1)
                    )
                ):
                    i += 1
                if i > start and doc[i].text[:1].isupper():
                    start = i
                    changed = True
        if start < end:
            out.append(TokSpan(start, end, span.label))
    return out


def _edge_punct(doc: Doc, i: int, start: int, end: int) -> bool:
    token = doc[i]
    return token.is_space or (token.is_punct and not (token.text == ")" and "(" in doc[start:end].text))


def trim_fr(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """French spans: strip leading le/la/les/l', de/du/d' (not in front of a person: "de Gaulle"),
    courtesy titles in front of a capitalised name (M., Mme) and edge punctuation (pure)."""
    out: list[TokSpan] = []
    for span in spans:
        start, end = span.start, span.end
        changed = True
        while changed and start < end:
            changed = False
            first = doc[start]
            lower = first.lower_.replace("\u2019", "'")
            drop = (
                _edge_punct(doc, start, start, end)
                or lower in FRENCH_LEADING_DROP
                or (span.label != "PERSON" and lower in FRENCH_PARTICLES)
                or (
                    norm_key(first.text) in FRENCH_TITLES
                    and start + 1 < end
                    and doc[start + 1].text[:1].isupper()
                )
            )
            if drop:
                start += 1
                changed = True
            while end > start and _edge_punct(doc, end - 1, start, end):
                end -= 1
                changed = True
        if start < end:
            out.append(TokSpan(start, end, span.label))
    return out


def drop_lower(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop name spans without any capital letter ("the state", "parliament") (pure)."""
    return [s for s in spans if s.label not in _NAME_LABELS or _has_upper(_text(doc, s))]


def drop_titles(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop spans made only of title words: "State" in "Secretary of State", a bare "President" (pure)."""
    out: list[TokSpan] = []
    for span in spans:
        if span.label in _NAME_LABELS and all(_is_title_token(doc, i) for i in range(span.start, span.end)):
            before = span.start - 1
            after_title = before >= 1 and doc[before].lower_ == "of" and _is_title_token(doc, before - 1)
            if span.label == "PERSON" or after_title:
                continue
        out.append(span)
    return out


def country_label(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Relabel spans naming a country (pycountry and aliases) as GPE: "U.S." tagged ORG (pure)."""
    return [
        TokSpan(s.start, s.end, "GPE")
        if s.label in {"ORG", "PERSON", "NORP", "FAC", "LOC"} and country_code(_text(doc, s))
        else s
        for s in spans
    ]


def subdivision_label(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Relabel ORG/PERSON spans naming a state or province ("Florida") as GPE (pure)."""
    return [
        TokSpan(s.start, s.end, "GPE")
        if s.label in {"ORG", "PERSON"} and is_subdivision(_text(doc, s))
        else s
        for s in spans
    ]


def split_coordination(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Split "Beijing and Washington" style spans of persons and places into their parts (pure)."""
    out: list[TokSpan] = []
    for span in spans:
        if span.label not in {"PERSON", "GPE", "LOC"}:
            out.append(span)
            continue
        start = span.start
        parts: list[TokSpan] = []
        for i in range(span.start + 1, span.end - 1):
            if doc[i].lower_ in _COORD and doc[i + 1].text[:1].isupper() and i > start:
                parts.append(TokSpan(start, i, span.label))
                start = i + 1
        if parts:
            parts.append(TokSpan(start, span.end, span.label))
            out.extend(p for p in parts if p.end > p.start)
        else:
            out.append(span)
    return out


def label_vote(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Give every span of one surface form the article's majority label; surnames follow full names (pure)."""
    votes: dict[str, Counter[str]] = {}
    for s in spans:
        votes.setdefault(norm_key(_text(doc, s)), Counter())[s.label] += 1
    surnames = {
        doc[s.end - 1].text
        for s in spans
        if s.label == "PERSON" and s.end - s.start >= 2 and doc[s.end - 1].text.istitle()
    }
    out: list[TokSpan] = []
    for s in spans:
        key = norm_key(_text(doc, s))
        if (
            s.end - s.start == 1
            and doc[s.start].text in surnames
            and s.label in _NAME_LABELS
            and not country_code(key)
        ):
            out.append(TokSpan(s.start, s.end, "PERSON"))
            continue
        best = votes[key].most_common()
        top = best[0][1]
        winners = {label for label, n in best if n == top}
        label = s.label if s.label in winners else best[0][0]
        out.append(TokSpan(s.start, s.end, label))
    return out


_WORD: Final = re.compile(r"\w+")
_WORD_START: Final = re.compile(r"(?<![\w.])\w+")


def find_forms(text: str, forms: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """Non-overlapping whole-word occurrences of the forms in text, longest form first at each
    place, left to right: what one regex alternation of the forms finds, in linear time (pure).

    The alternation tries every form at every position (minutes for a text of thousands of
    capitalised names); here each word start looks up only the forms beginning with that word.
    """
    by_first: dict[str, list[str]] = {}
    for form in forms:
        first = _WORD.match(form)
        if first is not None and first.start() == 0:
            by_first.setdefault(first.group(), []).append(form)
    for candidates in by_first.values():
        candidates.sort(key=len, reverse=True)
    resume = 0
    for word in _WORD_START.finditer(text):
        start = word.start()
        if start < resume:
            continue
        for form in by_first.get(word.group(), ()):
            end = start + len(form)
            if text.startswith(form, start) and not (end < len(text) and _WORD.match(text, end)):
                yield start, end, form
                resume = end
                break


def _propagate(doc: Doc, spans: list[TokSpan], labels: frozenset[str]) -> list[TokSpan]:
    forms: dict[str, str] = {}
    for s in spans:
        if s.label not in labels:
            continue
        forms.setdefault(_text(doc, s), s.label)
    for s in spans:
        if (
            "PERSON" in labels
            and s.label == "PERSON"
            and s.end - s.start >= 2
            and doc[s.end - 1].text.istitle()
        ):
            forms.setdefault(doc[s.end - 1].text, "PERSON")
    forms = {
        form: label
        for form, label in forms.items()
        if len(form) >= 2 and form[:1].isupper() and norm_key(form) not in _PROPAGATE_STOP
    }
    if not forms:
        return spans
    taken = _taken(doc, spans)  # the model's own spans of any label, dates and numbers included
    added: list[TokSpan] = []
    for start, end, form in find_forms(doc.text, forms):
        span = doc.char_span(start, end)
        if span is None or any(taken[span.start : span.end]):
            continue
        taken[span.start : span.end] = b"\x01" * (span.end - span.start)
        added.append(TokSpan(span.start, span.end, forms[form]))
    if not added:
        return spans
    return sorted([*spans, *added], key=lambda s: s.start)


_FACILITY_HEADS: Final = frozenset(
    words(
        """museum planetarium center centre hall stadium arena airport station bridge square palace mosque
    cathedral temple tower towers building hotel base factory park road street avenue boulevard highway
    gallery zoo prison port harbour harbor dam castle monument memorial terminal plaza"""
    )
)
_INSTITUTION_HEADS: Final = frozenset(
    words(
        """municipality ministry department government council university parliament court commission
    office bureau agency committee police"""
    )
)
_CREDIT_WORDS: Final = frozenset(
    {"image", "photo", "photograph", "photographs", "picture", "video", "credit", "file"}
)


def _head(doc: Doc, span: TokSpan) -> str:
    """The head word of a name: the word before the first "of", else the last word ("Museum of Flight")."""
    for i in range(span.start + 1, span.end):
        if doc[i].lower_ == "of":
            return doc[i - 1].lower_
    return doc[span.end - 1].lower_


def facility_label(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Relabel ORG/GPE/PERSON spans headed by a building noun ("Johnson Space Center") as FAC (pure)."""
    return [
        TokSpan(s.start, s.end, "FAC")
        if s.label in {"ORG", "GPE", "PERSON"} and s.end - s.start >= 2 and _head(doc, s) in _FACILITY_HEADS
        else s
        for s in spans
    ]


def institution_label(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Relabel place spans that begin with an institution noun ("Municipality of Livorno") as ORG (pure)."""
    return [
        TokSpan(s.start, s.end, "ORG")
        if s.label in {"GPE", "LOC"} and s.end - s.start >= 2 and doc[s.start].lower_ in _INSTITUTION_HEADS
        else s
        for s in spans
    ]


def drop_credits(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop photo-credit words taken for names ("Image: AP") and cut them off name spans (pure)."""
    out: list[TokSpan] = []
    for s in spans:
        end = s.end
        while (
            end > s.start
            and doc[end - 1].lower_ in _CREDIT_WORDS
            and (end == len(doc) or doc[end].text == ":" or end - s.start == 1)
        ):
            end -= 1
        if end > s.start:
            out.append(TokSpan(s.start, end, s.label))
    return out


def drop_digits(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Persons and places have no digits: "IE6", "STS-134" tagged GPE/PERSON become PRODUCT (pure)."""
    return [
        TokSpan(s.start, s.end, "PRODUCT")
        if s.label in {"PERSON", "GPE", "LOC"} and any(ch.isdigit() for ch in _text(doc, s))
        else s
        for s in spans
    ]


_NOT_ORG_ACRONYMS: Final = frozenset(
    words(
        """CEO CFO COO CTO TV GMT UTC BST EST PST EDT PDT DNA RNA AIDS HIV GDP AM PM OK ID IT AI PC CD DVD
    MP MPs PhD MBA IQ UFO USB GPS SUV VIP PR FAQ HQ UK US USA UAE EU PDF HTML URL SMS CV RIP ASAP OMG
    COVID SARS MERS BC AD BCE CE LGBT LGBTQ IVF ICU ER VR AR GOP OR"""
    )
)
_ACRONYM_IN_TEXT = re.compile(r"(?<![\w&.-])[A-Z][A-Z&]{1,5}(?![\w&-])")


def acronyms(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Tag "(ABC)" after a name with that name's label, and untagged all-caps acronyms as ORG (pure)."""
    taken = _taken(doc, spans)
    by_end = {s.end: s for s in spans}
    added: list[TokSpan] = []
    for match in _ACRONYM_IN_TEXT.finditer(doc.text):
        found = doc.char_span(match.start(), match.end())
        if found is None or found.end - found.start != 1:
            continue
        i = found.start
        if taken[i] or match.group() in _NOT_ORG_ACRONYMS or country_code(match.group()):
            continue
        before = by_end.get(i - 1) if i >= 1 and doc[i - 1].text == "(" else None
        if before is not None:
            added.append(TokSpan(i, i + 1, before.label))
        elif i + 1 < len(doc) and doc[i + 1].text[:1].isupper() and doc[i + 1].is_alpha:
            continue  # part of a capitalised run the model chose not to tag
        else:
            added.append(TokSpan(i, i + 1, "ORG"))
    if not added:
        return spans
    return sorted([*spans, *added], key=lambda s: s.start)


_COMMON_WORD_LABELS: Final = frozenset({"PERSON", "GPE", "LOC", "FAC"})


def drop_common_words(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop one-word person and place spans ("Iodine", "Writing", "North") whose word the article also
    writes in lower case and that is in no longer person name of it: a capitalised common noun, not a
    name. Acronyms ("US" beside "us") and organisations ("Church") are kept (pure)."""
    in_names = {
        norm_key(doc[i].text)
        for s in spans
        if s.label == "PERSON" and s.end - s.start >= 2
        for i in range(s.start, s.end)
    }
    lower_words = {t.text for t in doc if t.text.islower()}
    out: list[TokSpan] = []
    for s in spans:
        word = doc[s.start]
        if (
            s.label in _COMMON_WORD_LABELS
            and s.end - s.start == 1
            and not word.is_upper
            and word.lower_ in lower_words
            and norm_key(word.text) not in in_names
        ):
            continue
        out.append(s)
    return out


def propagate_persons(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Tag untagged repeats of person names found in the article, and bare surnames of full names (pure)."""
    return _propagate(doc, spans, frozenset({"PERSON"}))


def propagate_orgs(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Tag untagged repeats of organisation names found in the article (pure)."""
    return _propagate(doc, spans, frozenset({"ORG"}))


def propagate_places(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Tag untagged repeats of place names found in the article (pure)."""
    return _propagate(doc, spans, frozenset({"GPE", "LOC", "FAC"}))


def split_lines(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Cut spans at line breaks: a name never runs from a heading into the next line (pure)."""
    out: list[TokSpan] = []
    for s in spans:
        start = s.start
        for i in range(s.start, s.end):
            if "\n" in doc[i].text or "\n" in doc[i].whitespace_:
                end = i if "\n" in doc[i].text else i + 1
                if end > start:
                    out.append(TokSpan(start, end, s.label))
                start = i + 1
        if s.end > start:
            out.append(TokSpan(start, s.end, s.label))
    return out


def merge_adjacent(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Join two name spans one space apart ("Dries" ORG + "Mertens" PERSON → PERSON) (pure)."""
    out: list[TokSpan] = []
    for s in spans:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.end == s.start
            and prev.label in _NAME_LABELS
            and s.label in _NAME_LABELS
            and doc[prev.end - 1].whitespace_ == " "
            and doc[prev.end - 1].text[-1:].isalpha()
        ):
            label = "PERSON" if "PERSON" in {prev.label, s.label} else s.label
            out[-1] = TokSpan(prev.start, s.end, label)
            continue
        out.append(s)
    return out


_KNOWN_ORG_NAMES: Final = (
    *words(
        """Twitter Facebook YouTube Instagram Google Microsoft Apple Amazon TikTok WhatsApp Reddit Wikipedia
        LinkedIn Snapchat Netflix Uber Airbnb Tesla Nvidia Samsung Huawei Alibaba Tencent Baidu ByteDance
        Spotify PayPal eBay Yahoo Reuters Bloomberg Xinhua Yonhap Interfax AFP"""
    ),
    "Associated Press",
    "Agence France-Presse",
    "Kyodo News",
    "Press Association",
    "United Press International",
)
_KNOWN_ORGS: Final = frozenset(norm_key(name) for name in _KNOWN_ORG_NAMES)
_KNOWN_ORG_RE: Final = re.compile(
    r"(?<![\w.])(?:"
    + "|".join(re.escape(n) for n in sorted(_KNOWN_ORG_NAMES, key=len, reverse=True))
    + r")(?!\w)"
)


def known_orgs(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Well-known companies and agencies the model misses or takes for persons/places → ORG (pure)."""
    out = [
        TokSpan(s.start, s.end, "ORG")
        if s.label in {"PERSON", "GPE", "LOC", "FAC", "NORP"} and norm_key(_text(doc, s)) in _KNOWN_ORGS
        else s
        for s in spans
    ]
    taken = _taken(doc, out)
    added: list[TokSpan] = []
    for match in _KNOWN_ORG_RE.finditer(doc.text):
        span = doc.char_span(match.start(), match.end())
        if span is not None and not any(taken[span.start : span.end]):
            added.append(TokSpan(span.start, span.end, "ORG"))
    return sorted([*out, *added], key=lambda s: s.start) if added else out


def caps_person(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """A PERSON span written like an acronym ("DAB", outside an all-caps line) is an organisation (pure)."""
    out: list[TokSpan] = []
    for s in spans:
        words = [t.text for t in doc[s.start : s.end] if t.is_alpha]
        if s.label == "PERSON" and words and all(len(w) >= 2 and w.isupper() for w in words):
            text = doc.text
            line_start = text.rfind("\n", 0, doc[s.start].idx) + 1
            line_end = text.find("\n", doc[s.end - 1].idx)
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            if not line.isupper():
                out.append(TokSpan(s.start, s.end, "ORG"))
                continue
        out.append(s)
    return out


RULES: Final[dict[str, Rule]] = {
    "split_lines": split_lines,
    "trim": trim,
    "trim_fr": trim_fr,
    "drop_credits": drop_credits,
    "drop_digits": drop_digits,
    "drop_lower": drop_lower,
    "drop_titles": drop_titles,
    "merge_adjacent": merge_adjacent,
    "country_label": country_label,
    "subdivision_label": subdivision_label,
    "facility_label": facility_label,
    "known_orgs": known_orgs,
    "caps_person": caps_person,
    "institution_label": institution_label,
    "split_coordination": split_coordination,
    "label_vote": label_vote,
    "drop_common_words": drop_common_words,
    "propagate_persons": propagate_persons,
    "propagate_orgs": propagate_orgs,
    "propagate_places": propagate_places,
    "acronyms": acronyms,
}
"""Every rule in the order it runs."""

DEFAULT_RULES: Final = frozenset(RULES) - {
    "trim_fr",
    "country_label",
    "split_coordination",
    "propagate_places",
    "merge_adjacent",
    "caps_person",
    "subdivision_label",
}
"""Rules the tagger runs by default (those the benchmark keeps)."""


ENGLISH_RULES: Final = DEFAULT_RULES
"""Rules for English (the ones the GUM benchmark keeps)."""

FRENCH_RULES: Final = frozenset({"split_lines", "trim_fr", "drop_digits", "drop_lower", "drop_common_words"})
"""Rules for French: none of the English tables (titles, "the", possessives, label fixes) hold there;
`bench/ner_eval.py --french` measures these against the model alone."""

IDENTITY_LABELS: Final = {label: label for label in KEPT_LABELS}
"""Label map of OntoNotes-style models (the English ones): every kept label as it is."""


def model_spans(doc: Doc, labels: Mapping[str, str] | None = None) -> list[TokSpan]:
    """The model's entities of the kept name types, as token spans, labels mapped to ours (pure)."""
    mapping = IDENTITY_LABELS if labels is None else labels
    return [TokSpan(e.start, e.end, mapping[e.label_]) for e in doc.ents if e.label_ in mapping]


def apply_rules(doc: Doc, spans: Iterable[TokSpan], rules: frozenset[str] = DEFAULT_RULES) -> list[TokSpan]:
    """Run the selected rules in their fixed order over the spans (pure, idempotent)."""
    out = list(spans)
    for name, rule in RULES.items():
        if name in rules:
            out = rule(doc, out)
    return out
