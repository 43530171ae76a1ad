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
from itertools import pairwise
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
    is_place_name,
    is_subdivision,
    norm_key,
    words,
)

KEPT_LABELS: Final = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "LAW", "PRODUCT", "WORK_OF_ART"}
)
"""Name types that matter in news; dates, numbers and languages are dropped."""

_NAME_LABELS: Final = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC"})
_PLACE_LABELS: Final = frozenset({"GPE", "LOC", "FAC"})
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


_OPENERS: Final = frozenset(".!?:;\"\u201c\u201d'\u2018([-\u2013\u2014|*\u2022>")


def _sentence_initial(doc: Doc, i: int) -> bool:
    """Whether token i starts a sentence, a line or a quotation (its capital says nothing)."""
    j = i - 1
    while j >= 0 and doc[j].is_space:
        if "\n" in doc[j].text:
            return True
        j -= 1
    return j < 0 or "\n" in doc[j].whitespace_ or doc[j].text in _OPENERS or doc[j].text[-1:] in _OPENERS


def _line_of(doc: Doc, i: int) -> str:
    text = doc.text
    start = text.rfind("\n", 0, doc[i].idx) + 1
    end = text.find("\n", doc[i].idx)
    return text[start : end if end >= 0 else len(text)]


def _title_case_line(doc: Doc, i: int) -> bool:
    """Whether token i's line is a heading: every word of four letters or more capitalised."""
    long_words = re.findall(r"[^\W\d_]{4,}", _line_of(doc, i))
    return len(long_words) >= 2 and all(w[0].isupper() for w in long_words)


def capital_is_evidence(doc: Doc, i: int) -> bool:
    """Whether token i is capitalised where a common word would not be: mid-sentence, outside a heading
    (a writer's capital there marks a name: "orbit the Earth", "shares in The Hut Group") (pure)."""
    token = doc[i]
    return token.text[:1].isupper() and not _sentence_initial(doc, i) and not _title_case_line(doc, i)


_THE_NAME_LABELS: Final = frozenset({"ORG", "WORK_OF_ART"})


def _the_in_name(doc: Doc, start: int, end: int, label: str) -> bool:
    """ "The" capitalised mid-sentence in front of an organisation or a title is part of its name
    ("shares in The Hut Group", "told The Sunday Times"); at a sentence start or in a heading it is not."""
    return (
        label in _THE_NAME_LABELS
        and doc[start].text == "The"
        and start + 1 < end
        and doc[start + 1].text[:1].isupper()
        and capital_is_evidence(doc, start)
    )


def trim(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Strip leading determiners, person titles, possessives and edge punctuation (pure)."""
    out: list[TokSpan] = []
    for span in spans:
        start, end = span.start, span.end
        changed = True
        while changed and start < end:
            changed = False
            while start < end and (
                doc[start].is_space
                or doc[start].is_punct
                or (doc[start].lower_ in LEADING_DROP and not _the_in_name(doc, start, end, span.label))
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
    """Drop name spans without any capital letter ("the state", "parliament") and adjectives made of a
    lower-case prefix and a name ("pro-Beijing", "anti-Trump") (pure)."""
    return [
        s
        for s in spans
        if s.label not in _NAME_LABELS
        or (
            _has_upper(_text(doc, s))
            and not (s.end - s.start >= 3 and doc[s.start].is_lower and doc[s.start + 1].text == "-")
        )
    ]


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


def _full_name_words(doc: Doc, spans: list[TokSpan]) -> set[str]:
    """The words of the article's person names of two words or more, as written."""
    return {
        doc[i].text
        for s in spans
        if s.label == "PERSON" and s.end - s.start >= 2
        for i in range(s.start, s.end)
    }


def person_votes(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop a one-word PERSON ("Explorer", "Brexit") that no full name of the article supports when the
    model itself did not call most of that word's occurrences PERSON (other labels and untagged ones
    count against it): one stray vote is no person (pure)."""
    supported = _full_name_words(doc, spans)
    lone = {
        doc[s.start].text
        for s in spans
        if s.label == "PERSON" and s.end - s.start == 1 and doc[s.start].text not in supported
    }
    if not lone:
        return spans
    votes: dict[str, Counter[bool]] = {word: Counter() for word in lone}
    for token in doc:
        if token.text in votes:
            votes[token.text][token.ent_type_ == "PERSON"] += 1
    weak = {word for word, counts in votes.items() if counts[True] * 2 <= sum(counts.values())}
    return [
        s for s in spans if not (s.label == "PERSON" and s.end - s.start == 1 and doc[s.start].text in weak)
    ]


def label_vote(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Give every span of one surface form the article's majority label; surnames follow full names; a
    town, region or country the model called a place at least once stays a place ("Sapporo" GPE beside
    "Sapporo" ORG: GeoNames and ISO 3166 evidence, `tables.is_place_name`) (pure)."""
    votes: dict[str, Counter[str]] = {}
    for s in spans:
        votes.setdefault(norm_key(_text(doc, s)), Counter())[s.label] += 1
    surnames = {
        doc[s.end - 1].text
        for s in spans
        if s.label == "PERSON" and s.end - s.start >= 2 and doc[s.end - 1].text.istitle()
    }
    places = {
        key
        for key, counts in votes.items()
        if len(counts) > 1 and any(label in _PLACE_LABELS for label in counts) and is_place_name(key)
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
        label = _vote(votes[key], s.label, place_form=key in places)
        out.append(TokSpan(s.start, s.end, label))
    return out


def _vote(votes: Counter[str], own: str, *, place_form: bool) -> str:
    """The label a mention gets from its form's votes: the majority (its own on a tie); a form the
    gazetteer knows as a place keeps the model's place label when the model gave one."""
    if place_form:
        place = [(n, label) for label, n in votes.items() if label in _PLACE_LABELS]
        if place:
            return own if own in _PLACE_LABELS else max(place)[1]
    best = votes.most_common()
    top = best[0][1]
    winners = {label for label, n in best if n == top}
    return own if own in winners else best[0][0]


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
    """Give "(ABC)" after a name that name's label (tagged or not: the text defines it so), and tag
    untagged all-caps acronyms as ORG (pure)."""
    by_end = {s.end: s for s in spans}
    spans = [
        TokSpan(s.start, s.end, by_end[s.start - 1].label)
        if s.end - s.start == 1
        and s.start >= 2
        and doc[s.start - 1].text == "("
        and s.end < len(doc)
        and doc[s.end].text == ")"
        and s.start - 1 in by_end
        and by_end[s.start - 1].label in _NAME_LABELS
        and doc[s.start].is_upper
        else s
        for s in spans
    ]
    taken = _taken(doc, spans)
    added: list[TokSpan] = []
    for match in _ACRONYM_IN_TEXT.finditer(doc.text):
        found = doc.char_span(match.start(), match.end())
        if found is None or found.end - found.start != 1:
            continue
        i = found.start
        if (
            taken[i]
            or match.group() in _NOT_ORG_ACRONYMS
            or match.group().lower() in _CREDIT_WORDS
            or country_code(match.group())
        ):
            continue
        if i >= 1 and doc[i - 1].is_alpha and doc[i - 1].is_upper and len(doc[i - 1]) > 1:
            continue  # the end of a shouted run ("FILE PHOTO:", "BREAKING NEWS"), not an acronym
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


_PARTICLES: Final = frozenset(
    words("von van der den de da di del della dos das du le la ter ten zu bin ibn al el")
)
"""Lower-case name particles between a given name and a surname ("Ursula von der Leyen", "Vincent van Gogh")."""


def join_particles(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """A person's name runs on through lower-case particles to the capitalised surname after them:
    "Ursula von" PERSON + "der" + "Leyen" LOC → "Ursula von der Leyen" PERSON (pure)."""
    by_start = {s.start: s for s in spans}
    absorbed: set[int] = set()
    out: list[TokSpan] = []
    for s in spans:
        if s.start in absorbed:
            continue
        if s.label != "PERSON":
            out.append(s)
            continue
        end = s.end
        while end > s.start + 1 and doc[end - 1].text in _PARTICLES:
            end -= 1  # "Ursula von": the particle is looked at again below
        j = end
        while j < len(doc) and doc[j].text in _PARTICLES and doc[j - 1].whitespace_ == " ":
            j += 1
        if j > end and j < len(doc) and doc[j - 1].whitespace_ == " " and doc[j].text.istitle():
            follower = by_start.get(j)
            if follower is not None and follower.label in _NAME_LABELS:
                absorbed.add(j)
                end = follower.end
            else:
                end = j + 1
            out.append(TokSpan(s.start, end, "PERSON"))
            continue
        out.append(s)
    return out


def person_tails(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """A name the model ran on into the lower-case words after a person named in the article ("Kim Jong
    Un, and Trump exchange insults": "Trump exchange" ORG) is that person: the words are cut (pure)."""
    persons = {_text(doc, s) for s in spans if s.label == "PERSON"}
    persons |= {doc[s.end - 1].text for s in spans if s.label == "PERSON" and s.end - s.start >= 2}
    out: list[TokSpan] = []
    for s in spans:
        end = s.end
        while end > s.start + 1 and doc[end - 1].is_alpha and doc[end - 1].is_lower:
            end -= 1
        if end < s.end and doc[s.start : end].text in persons:
            out.append(TokSpan(s.start, end, "PERSON"))
        else:
            out.append(s)
    return out


def split_slash(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Cut names at a spaced slash ("REUTERS / Sandra Sanders": a photo credit, agency then photographer);
    the title-case words after a news agency's name are the photographer, a PERSON (pure)."""
    out: list[TokSpan] = []
    for s in spans:
        cuts = [i for i in range(s.start + 1, s.end - 1) if doc[i].text == "/"]
        if not cuts:
            out.append(s)
            continue
        bounds = [s.start, *cuts, s.end]
        parts = [TokSpan(a if k == 0 else a + 1, b, s.label) for k, (a, b) in enumerate(pairwise(bounds))]
        for k, part in enumerate(parts):
            if part.end <= part.start:
                continue
            after_agency = k > 0 and norm_key(_text(doc, parts[k - 1])) in _KNOWN_ORGS
            name_like = 2 <= part.end - part.start <= 4 and all(
                doc[i].text.istitle() for i in range(part.start, part.end)
            )
            out.append(TokSpan(part.start, part.end, "PERSON") if after_agency and name_like else part)
    return out


_CREDIT_ROLES: Final = frozenset(
    words("reporting writing editing compiled photo photos photograph video graphics")
)


_CREDIT_STOPS: Final = frozenset({";", ")", "(", "|"})


def _credit_names(doc: Doc, first: int) -> list[tuple[int, int]]:
    """Token ranges of the capitalised names in a credit from token `first` to the next ";", ")" or
    line end, cut at everything else ("and", commas); a place after "in" is no name."""
    names: list[tuple[int, int]] = []
    start: int | None = None
    end = first
    skipping = False  # after "in", "for", ...: "Jane Doe in London" names a place, not a reporter
    for j in range(first, len(doc)):
        token = doc[j]
        if token.text in _CREDIT_STOPS or "\n" in token.text:
            break
        if token.is_alpha and token.text[:1].isupper() and not skipping:
            start = j if start is None else start
            end = j + 1
        else:
            if start is not None:
                names.append((start, end))
                start = None
            if token.lower_ in {"and", "&", ","}:
                skipping = False
            elif token.is_alpha and token.is_lower:
                skipping = True
        if "\n" in token.whitespace_:
            break
    if start is not None:
        names.append((start, end))
    return [(a, b) for a, b in names if b - a <= 4]


def _credit_role(doc: Doc, i: int) -> bool:
    """Token i opens a sign-off: "(Reporting", "; Editing", "Additional reporting", "Photo" at a line start."""
    if doc[i].lower_ not in _CREDIT_ROLES:
        return False
    before = doc[i - 1] if i >= 1 else None
    return (
        before is None
        or before.text in {"(", ";", "additional", "Additional"}
        or "\n" in before.whitespace_
        or "\n" in before.text
    )


def credit_persons(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Names in a sign-off ("Reporting by Jane Doe and John Roe; Editing by Ann Lee") are persons: every
    name after "<role> by" up to the next ";", ")" or line end, cut at "and" and commas (pure)."""
    names = [
        name
        for i in range(1, len(doc) - 1)
        if doc[i].lower_ == "by" and _credit_role(doc, i - 1)
        for name in _credit_names(doc, i + 1)
    ]
    if not names:
        return spans
    covered = bytearray(len(doc))
    for a, b in names:
        covered[a:b] = b"\x01" * (b - a)
    out = [s for s in spans if s.label not in _NAME_LABELS or not any(covered[s.start : s.end])]
    out.extend(TokSpan(a, b, "PERSON") for a, b in names)
    return sorted(out, key=lambda s: s.start)


_DISEASE: Final = re.compile(r"(?i)(?:covid|sars|mers|hiv|aids|ebola|zika|h\dn\d)(?:[- ]?(?:19|cov-?2|\d+))?")
"""Diseases and viruses ("COVID-19", "SARS-CoV-2", "H5N1"): named, but no person, organisation or place."""


def drop_diseases(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop disease names the model takes for organisations or persons ("COVID-19" ORG) (pure)."""
    return [s for s in spans if not (s.label in _NAME_LABELS and _DISEASE.fullmatch(_text(doc, s)))]


_COMPANY_SUFFIXES: Final = frozenset(
    norm_key(w)
    for w in words("Inc Corp Corporation Co Ltd Limited Plc LLC LLP AG SA SE NV BV GmbH Group Holdings")
)


def company_persons(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """A one-word PERSON that is in no person's full name of the article but begins one of its
    companies ("Pfizer" beside "Pfizer Inc", "Pfizer Group") is that company (pure)."""
    in_names = _full_name_words(doc, spans)
    org_heads = {
        doc[s.start].text
        for s in spans
        if s.label == "ORG" and s.end - s.start >= 2 and norm_key(doc[s.end - 1].text) in _COMPANY_SUFFIXES
    }
    return [
        TokSpan(s.start, s.end, "ORG")
        if s.label == "PERSON"
        and s.end - s.start == 1
        and doc[s.start].text in org_heads
        and doc[s.start].text not in in_names
        else s
        for s in spans
    ]


_ORG_HEADS: Final = frozenset(
    words(
        """org foundation institute institution association society council party company corporation
    agency committee commission league federation club university college academy school church
    bank fund trust board authority ministry department organization organisation network"""
    )
)


def org_label(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Relabel place and person spans headed by an organisation noun ("Sea Org", "Gates Foundation")
    as ORG (pure)."""
    return [
        TokSpan(s.start, s.end, "ORG")
        if s.label in {"GPE", "LOC", "PERSON"}
        and s.end - s.start >= 2
        and doc[s.end - 1].text[:1].isupper()
        and _head(doc, s) in _ORG_HEADS
        and not country_code(_text(doc, s))
        else s
        for s in spans
    ]


_ORG_LINKS: Final = (("for",), ("for", "the"), ("of",), ("of", "the"))


def join_orgs(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Join an organisation and the capitalised name after "for the" / "of" that the model cut off:
    "Andy Warhol Foundation" + "for the" + "Visual Arts" → one ORG (pure)."""
    out: list[TokSpan] = []
    i = 0
    while i < len(spans):
        s = spans[i]
        nxt = spans[i + 1] if i + 1 < len(spans) else None
        if s.label == "ORG" and nxt is not None and nxt.label in _NAME_LABELS:
            between = tuple(doc[j].lower_ for j in range(s.end, nxt.start))
            if between in _ORG_LINKS and all(doc[j].whitespace_ == " " for j in range(s.end - 1, nxt.start)):
                out.append(TokSpan(s.start, nxt.end, "ORG"))
                i += 2
                continue
        out.append(s)
        i += 1
    return out


_COMMON_WORD_LABELS: Final = frozenset({"PERSON", "GPE", "LOC", "FAC"})


def drop_common_words(doc: Doc, spans: list[TokSpan]) -> list[TokSpan]:
    """Drop one-word person and place spans ("Iodine", "Writing", "North") whose word the article also
    writes in lower case, that is in no longer person name of it and that it never capitalises
    mid-sentence: a capitalised common noun, not a name. Acronyms ("US" beside "us"), organisations
    ("Church") and words capitalised mid-sentence ("the Earth" beside "earth") are kept (pure)."""
    in_names = {
        norm_key(doc[i].text)
        for s in spans
        if s.label == "PERSON" and s.end - s.start >= 2
        for i in range(s.start, s.end)
    }
    lower_words = {t.text for t in doc if t.text.islower()}
    # A word the writer capitalised mid-sentence somewhere ("orbit the Earth") is a name there.
    named = {
        doc[s.start].text
        for s in spans
        if s.end - s.start == 1 and doc[s.start].lower_ in lower_words and capital_is_evidence(doc, s.start)
    }
    out: list[TokSpan] = []
    for s in spans:
        word = doc[s.start]
        if (
            s.label in _COMMON_WORD_LABELS
            and s.end - s.start == 1
            and not word.is_upper
            and word.lower_ in lower_words
            and norm_key(word.text) not in in_names
            and word.text not in named
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
    "split_slash": split_slash,
    "credit_persons": credit_persons,
    "trim": trim,
    "trim_fr": trim_fr,
    "join_particles": join_particles,
    "person_tails": person_tails,
    "drop_credits": drop_credits,
    "drop_diseases": drop_diseases,
    "drop_digits": drop_digits,
    "drop_lower": drop_lower,
    "drop_titles": drop_titles,
    "merge_adjacent": merge_adjacent,
    "country_label": country_label,
    "subdivision_label": subdivision_label,
    "facility_label": facility_label,
    "org_label": org_label,
    "join_orgs": join_orgs,
    "known_orgs": known_orgs,
    "caps_person": caps_person,
    "institution_label": institution_label,
    "split_coordination": split_coordination,
    "company_persons": company_persons,
    "person_votes": person_votes,
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
