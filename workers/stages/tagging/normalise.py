"""In-article normalisation and salience: mention spans → canonical entities, most salient first.

Mentions that name the same thing within one article are grouped under one canonical name:
case variants (BEIJING, Beijing), abbreviations (U.N. → United Nations), country aliases
(U.S. → United States, with the ISO code), demonyms linked to their country (Chinese → CN),
and partial person names (Tillerson → Rex Tillerson, Xi → Xi Jinping) when exactly one full
name in the article contains them. Mention offsets always point at the surface text as written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, cast

from schemas.tagged import Entity, EntityLabel, Mention
from workers.stages.tagging.tables import (
    country_code,
    country_name,
    demonym_code,
    expand_abbreviation,
    norm_key,
)

_APOSTROPHES: Final = str.maketrans({"\u2019": "'", "\u2018": "'"})
_PLACE: Final = frozenset({"GPE", "LOC", "FAC"})
_ACRONYM_SKIP: Final = frozenset({"of", "the", "and", "for", "&", "de", "on", "in", "to"})
_TITLE_WEIGHT: Final = 0.3
_EARLY_WEIGHT: Final = 0.2


@dataclass(frozen=True, slots=True)
class CharSpan:
    """A mention candidate: character offsets into the text (end exclusive) and its label."""

    start: int
    end: int
    label: str


@dataclass(slots=True)
class _Cluster:
    key: str
    group: str
    mentions: list[CharSpan] = field(default_factory=list)
    name: str | None = None
    code: str | None = None


def _group(label: str) -> str:
    return "PLACE" if label in _PLACE else label


def _cluster_key(surface: str, label: str) -> tuple[str, str, str | None, str | None]:
    """(group, key, fixed canonical name or None, country code or None) for one mention."""
    group = _group(label)
    if group == "PLACE":
        code = country_code(surface)
        if code:
            return group, f"country:{code}", country_name(code), code
    if group == "NORP":
        code = demonym_code(surface)
        if code:
            return group, f"norp:{code}", None, code
    if group == "ORG":
        full = expand_abbreviation(surface)
        if full:
            return group, norm_key(full), full, None
        key = norm_key(surface)  # "The Hut Group" and "Hut Group" are one company
        return group, key[4:] if key.startswith("the ") else key, None, None
    if group == "PERSON":  # periods kept: "U.N." is not the "Un" of Kim Jong Un
        return group, " ".join(surface.translate(_APOSTROPHES).casefold().split()), None, None
    return group, norm_key(surface), None, None


def _is_all_caps(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters) > 1 and all(ch.isupper() for ch in letters)


def _pick_name(cluster: _Cluster, text: str) -> str:
    if cluster.name is not None:
        return cluster.name
    surfaces = [text[m.start : m.end] for m in cluster.mentions]
    counts = Counter(surfaces)
    order = {s: i for i, s in reversed(list(enumerate(surfaces)))}

    def rank(s: str) -> tuple[int, int, int, int]:
        # Most words first (full person names), then not shouting, then frequency, then first seen.
        return (-len(s.split()), _is_all_caps(s), -counts[s], order[s])

    best = min(counts, key=rank)
    if _is_all_caps(best) and cluster.group == "PLACE" and len(best.replace(".", "")) > 4:
        best = " ".join(w.capitalize() for w in best.split())
    return " ".join(best.split())


def _initials(name: str) -> str:
    return "".join(w[0] for w in name.split() if w.lower() not in _ACRONYM_SKIP and w[:1].isupper())


def _merge_partials(clusters: dict[str, _Cluster], text: str) -> None:
    """Fold partial person names and organisation acronyms into the one full name containing them.

    Near-linear: every full name is indexed once under each run of its words (k·(k-1)/2 keys for
    k words), so a partial finds its candidate hosts by one lookup instead of a scan of all names.
    """
    persons = [c for c in clusters.values() if c.group == "PERSON"]
    tokens = {c.key: tuple(c.key.split("|", 1)[1].split()) for c in persons}
    hosts_of: dict[tuple[str, ...], list[_Cluster]] = {}
    for f in persons:
        words = tokens[f.key]
        if len(words) < 2:
            continue
        runs = {words[i : i + n] for n in range(1, len(words)) for i in range(len(words) - n + 1)}
        for run in runs:
            hosts_of.setdefault(run, []).append(f)
    # Longest first, so "Kim Jong" folds into "Kim Jong Un" before "Kim" looks for its host.
    for c in sorted(persons, key=lambda c: -len(tokens[c.key])):
        live: list[_Cluster] = []
        for f in hosts_of.get(tokens[c.key], ()):
            if f is not c and f.key in clusters:
                live.append(f)
                if len(live) > 1:
                    break
        if len(live) == 1:
            live[0].mentions.extend(c.mentions)
            del clusters[c.key]
    _merge_acronyms(clusters, text)


def _merge_acronyms(clusters: dict[str, _Cluster], text: str) -> None:
    """Fold an organisation acronym ("WHO") into the one multi-word organisation with its initials."""
    orgs = [c for c in clusters.values() if c.group == "ORG" and c.name is None]
    by_initials: dict[str, list[_Cluster]] = {}
    for o in orgs:
        if len(o.key.split()) >= 2:
            by_initials.setdefault(_initials(text[o.mentions[0].start : o.mentions[0].end]), []).append(o)
    for c in orgs:
        surface = text[c.mentions[0].start : c.mentions[0].end].replace(".", "")
        if not (2 <= len(surface) <= 6 and surface.isupper() and surface.isalpha()):
            continue
        live: list[_Cluster] = []
        for o in by_initials.get(surface, ()):
            if o is not c and o.key in clusters:
                live.append(o)
                if len(live) > 1:
                    break
        if len(live) == 1:
            live[0].mentions.extend(c.mentions)
            del clusters[c.key]


def _title_hits(title: str, forms: set[str]) -> list[tuple[int, int]]:
    """Where any form occurs in the title (periods ignored; case ignored only for all-caps titles)."""
    flat = title.replace(".", "")
    flags = re.IGNORECASE if _is_all_caps(title) else 0
    hits: list[tuple[int, int]] = []
    for form in forms:
        f = form.replace(".", "").strip()
        # A substring test first: compiling a pattern per form is what costs, and most forms are absent.
        if f and (f.casefold() in flat.casefold() if flags else f in flat):
            pattern = r"(?<!\w)" + re.escape(f) + r"(?!\w)"
            hits.extend((m.start(), m.end()) for m in re.finditer(pattern, flat, flags))
    return hits


def build_entities(text: str, spans: Sequence[CharSpan], title: str | None = None) -> tuple[Entity, ...]:
    """Char spans over `text` → canonical entities with counts and salience, most salient first (pure)."""
    clusters: dict[str, _Cluster] = {}
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        group, key, name, code = _cluster_key(text[span.start : span.end], span.label)
        full_key = f"{group}|{key}"
        cluster = clusters.get(full_key)
        if cluster is None:
            cluster = clusters[full_key] = _Cluster(key=full_key, group=group, name=name, code=code)
        cluster.mentions.append(span)
    _merge_partials(clusters, text)

    ordered = list(clusters.values())
    names = [_pick_name(c, text) for c in ordered]
    hits = [
        _title_hits(title, {name, *(text[m.start : m.end] for m in c.mentions)}) if title else []
        for c, name in zip(ordered, names, strict=True)
    ]
    every_hit = [h for entity_hits in hits for h in entity_hits]

    def strictly_inside(hit: tuple[int, int]) -> bool:
        # "North" inside the title's "North Korea" is that other entity's hit, not its own.
        return any(o[0] <= hit[0] and hit[1] <= o[1] and o != hit for o in every_hit)

    total = sum(len(c.mentions) for c in ordered) or 1
    length = max(len(text), 1)
    entities: list[Entity] = []
    for cluster, name, entity_hits in zip(ordered, names, hits, strict=True):
        mentions = sorted(cluster.mentions, key=lambda m: (m.start, m.end))
        labels = Counter(m.label for m in mentions)
        # Labels reaching here passed rules.KEPT_LABELS, which is exactly EntityLabel.
        label = cast(
            EntityLabel, "GPE" if cluster.code and cluster.group == "PLACE" else labels.most_common(1)[0][0]
        )
        in_title = any(not strictly_inside(h) for h in entity_hits)
        first = mentions[0].start
        salience = len(mentions) / total + _TITLE_WEIGHT * in_title + _EARLY_WEIGHT * (1 - first / length)
        entities.append(
            Entity(
                name=name,
                label=label,
                count=len(mentions),
                first_position=first,
                in_title=in_title,
                salience=round(salience, 4),
                country_code=cluster.code,
                mentions=tuple(
                    Mention(start=m.start, end=m.end, text=text[m.start : m.end]) for m in mentions
                ),
            )
        )
    entities.sort(key=lambda e: (-e.salience, e.first_position, e.name))
    return tuple(entities)
