"""Combine two extractors' paragraphs by agreement: trim what only one saw at the margins, fill gaps.

The primary extractor (trafilatura) is precise but sometimes stops early or keeps a teaser; the
secondary (readability) is wider. Paragraphs the secondary confirms mark the agreed region: primary
paragraphs outside it that nobody confirms are dropped unless long, and secondary prose paragraphs
inside or continuing the agreed region are added. News-please combines its extractors the same way
in spirit: evidence from more than one algorithm, then text-quality features.
"""

from __future__ import annotations

import re
from functools import lru_cache

from schemas.cleaned import RemovalReason
from workers.stages.cleaning.lines import analyse

_TOKEN = re.compile(r"\w+")
MATCH_SHARE = 0.7
"""A paragraph is confirmed by the other text when this share of its words occur there."""
TINY_SHINGLES = 60
"""A primary result under this many 4-gram shingles, beside a secondary twice as long, is a miss."""
KEEP_UNCONFIRMED_WORDS = 30
"""Unconfirmed primary paragraphs this long are kept even outside the agreed region."""
FILL_MIN_WORDS = 20
"""Secondary paragraphs added to fill gaps must be prose of at least this many words."""


@lru_cache(maxsize=4096)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(text.casefold()))


def shingle_count(paragraphs: list[str]) -> int:
    """Return the number of token 4-gram shingles of the joined paragraphs."""
    return max(0, sum(len(_tokens(p)) for p in paragraphs) - 3)


def agreement(a: list[str], b: list[str]) -> float:
    """Return the smaller of the two containment shares of word 4-grams (1 = same text, 0 = disjoint)."""

    def grams(paragraphs: list[str]) -> set[tuple[str, ...]]:
        tokens = [t for p in paragraphs for t in _tokens(p)]
        return set(zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False))

    ga, gb = grams(a), grams(b)
    if not ga or not gb:
        return 0.0
    common = len(ga & gb)
    return min(common / len(ga), common / len(gb))


def _confirmed(paragraphs: list[str], other: list[str]) -> list[bool]:
    vocabulary = {t for p in other for t in _tokens(p)}
    flags = []
    for paragraph in paragraphs:
        words = set(_tokens(paragraph))
        flags.append(not words or len(words & vocabulary) >= MATCH_SHARE * len(words))
    return flags


def _is_fill_prose(paragraph: str) -> bool:
    info = analyse(paragraph)
    return (
        info.chrome is None and not info.footer_prose and info.words >= FILL_MIN_WORDS and info.sentence_end
    )


def merge(  # noqa: PLR0912  # trim, fill and placement are one algorithm over the same indices
    primary: list[str], secondary: list[str], removed: list[tuple[RemovalReason, str]]
) -> list[str]:
    """Return the merged paragraphs of two extractions of one page; drops are appended to `removed`."""
    if not secondary:
        return primary
    if not primary or (
        shingle_count(primary) < TINY_SHINGLES and shingle_count(secondary) > 2 * TINY_SHINGLES
    ):
        return secondary

    # Trim: primary paragraphs before/after the region the secondary confirms, unconfirmed and short.
    confirmed = _confirmed(primary, secondary)
    indices = [i for i, ok in enumerate(confirmed) if ok]
    if not indices:
        return primary
    first, last = indices[0], indices[-1]
    kept: list[str] = []
    for i, paragraph in enumerate(primary):
        if first <= i <= last or confirmed[i] or len(paragraph.split()) >= KEEP_UNCONFIRMED_WORDS:
            kept.append(paragraph)
        else:
            removed.append(("chrome", paragraph))

    # Fill: secondary prose paragraphs inside, or continuing, the region it shares with the primary.
    in_primary = _confirmed(secondary, kept)
    shared = [i for i, ok in enumerate(in_primary) if ok]
    if not shared:
        return kept
    add = [False] * len(secondary)
    for i in range(shared[0], shared[-1] + 1):
        add[i] = not in_primary[i] and _is_fill_prose(secondary[i])
    i = shared[-1] + 1
    while i < len(secondary) and not in_primary[i] and _is_fill_prose(secondary[i]):
        add[i] = True
        i += 1
    i = shared[0] - 1
    while i >= 0 and not in_primary[i] and _is_fill_prose(secondary[i]):
        add[i] = True
        i -= 1
    if not any(add):
        return kept

    # Place each added paragraph after the kept paragraph its confirmed predecessor matches.
    kept_vocab = [set(_tokens(p)) for p in kept]
    result: list[list[str]] = [[p] for p in kept]
    head: list[str] = []
    anchor = -1
    for i, paragraph in enumerate(secondary):
        if in_primary[i]:
            words = set(_tokens(paragraph))
            if words:
                best = max(range(len(kept)), key=lambda j: len(words & kept_vocab[j]))
                anchor = max(anchor, best)
        elif add[i]:
            if anchor < 0:
                head.append(paragraph)
            else:
                result[anchor].append(paragraph)
    return head + [p for group in result for p in group]
