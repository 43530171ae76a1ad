"""Post-processing shared by every extractor: learned chrome, chrome lines, repeated paragraphs."""

from __future__ import annotations

from collections.abc import Iterable

from schemas.cleaned import RemovalReason
from workers.stages.cleaning.lines import (
    analyse,
    chrome_reason,
    count_words,
    fold,
    is_candidate,
    is_credits,
    is_footer_prose,
    line_key,
)

_MAX_COMPARED = 600  # paragraphs compared pairwise for repeats; beyond that only exact repeats


def drop_learned_chrome(
    paragraphs: list[str], chrome: frozenset[str], removed: list[tuple[RemovalReason, str]]
) -> list[str]:
    """Return the paragraphs whose key is not learned source chrome; prose is never dropped this way."""
    if not chrome:
        return paragraphs
    kept = []
    for paragraph in paragraphs:
        info = analyse(paragraph)
        if is_candidate(info) and line_key(paragraph) in chrome:
            removed.append(("source_boilerplate", paragraph))
        else:
            kept.append(paragraph)
    return kept


def drop_chrome_lines(paragraphs: list[str], removed: list[tuple[RemovalReason, str]]) -> list[str]:
    """Return the paragraphs that are not chrome by their own features (share bars, ads, footers)."""
    kept = []
    for paragraph in paragraphs:
        # The features of `analyse`, computed only as far as the decision needs them.
        words = count_words(paragraph)
        reason = chrome_reason(paragraph, words)
        if reason is not None:
            removed.append((reason, paragraph))
        elif is_footer_prose(paragraph) and not is_credits(paragraph, words):
            removed.append(("footer", paragraph))
        else:
            kept.append(paragraph)
    return kept


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return set(zip(words, words[1:], words[2:], strict=False)) if len(words) >= 3 else {tuple(words)}


def drop_repeats(  # noqa: PLR0912  # one pass per repeat kind (copy, prefix, near-copy) reads best inline
    paragraphs: list[str], removed: list[tuple[RemovalReason, str]], *, body_start: int = 0
) -> list[str]:
    """Return the paragraphs with repeats removed: a copy, prefix or near-copy of another is kept once.

    The longer version wins; between equal copies the one at or after `body_start` (the dateline
    paragraph) wins, else the first.
    """
    folded = [fold(p) for p in paragraphs]
    words = [f.split() for f in folded]
    drop: set[int] = set()
    n = len(paragraphs)
    seen: dict[str, int] = {}
    for i, f in enumerate(folded):
        if len(words[i]) < 4:
            continue
        if f in seen:
            first = seen[f]
            if first < body_start <= i:
                drop.add(first)
                seen[f] = i
            else:
                drop.add(i)
        else:
            seen[f] = i
    if n <= _MAX_COMPARED:
        shingles = [_shingles(w) if len(w) >= 6 else set() for w in words]
        # Inverted index: which paragraphs hold each 3-word shingle. Only paragraphs sharing a
        # shingle can be prefixes, containers or near-copies of each other.
        index: dict[tuple[str, ...], list[int]] = {}
        for j, grams in enumerate(shingles):
            for gram in grams:
                index.setdefault(gram, []).append(j)
        for i in range(n):
            if i in drop or len(words[i]) < 6:
                continue
            counts: dict[int, int] = {}
            for gram in shingles[i]:
                holders = index[gram]
                if len(holders) > 1:  # most shingles occur in one paragraph only: this one
                    for j in holders:
                        if j != i:
                            counts[j] = counts.get(j, 0) + 1
            for j, common in counts.items():
                if j in drop or len(words[j]) < len(words[i]) or folded[i] == folded[j]:
                    continue
                if folded[j].startswith(folded[i] + " ") or (len(words[i]) >= 12 and folded[i] in folded[j]):
                    drop.add(i)
                    break
                if len(words[j]) <= len(words[i]) * 1.25 and common >= 0.85 * len(shingles[i]):
                    drop.add(i)
                    break
    kept = []
    for i, paragraph in enumerate(paragraphs):
        if i in drop:
            removed.append(("repeated_paragraph", paragraph))
        else:
            kept.append(paragraph)
    return kept


def candidate_keys(lines: Iterable[str]) -> frozenset[str]:
    """Return the learning keys of the lines that may be source chrome (short or boilerplate-like)."""
    keys = set()
    for raw_line in lines:
        line = raw_line.strip()
        if line and is_candidate(analyse(line)):
            keys.add(line_key(line))
    return frozenset(keys)
