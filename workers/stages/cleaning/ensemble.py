"""The HTML ensemble: every extractor votes on the page's blocks, a small learned model keeps the article.

The page is cut into blocks, one per block-level element (a `<td>` is a block like a `<div>`, so
layout tables never come out joined with ` | `). Each extractor (trafilatura, readability-lxml,
resiliparse's main-content extraction, and the project's own rules over the first two) proposes a
text; a block's vote from an extractor is the share of its word 4-grams found in that text (the
whole block as a word sequence when shorter). A gradient-boosted tree model over those votes, the
block's own features (length, link density, punctuation, stopword share, tag) and its position and
neighbours' votes scores each block; blocks above the threshold are the article, in page order.

The model is plain JSON (`ensemble_model.json`), loaded once per process and evaluated with numpy;
`bench/train_ensemble.py` rebuilds it from the MIT-licensed AEB pages and prints its held-out score.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import lxml.html
import numpy as np

MODEL_PATH = Path(__file__).with_name("ensemble_model.json")
MODEL_FORMAT = "ensemble-gbt-1"
EXTRACTORS = ("trafilatura", "readability", "resiliparse", "rules")
"""The extractors that vote, in the order of their features."""

_TOKEN = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"""[.!?…。！？]["'”’»)\]」』]*$""")
_PUNCT = re.compile(r"[.,;:!?…。，、！？]")
_DIGIT = re.compile(r"\d")
_STOPWORDS = frozenset(
    [
        "a",
        "about",
        "after",
        "all",
        "also",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "more",
        "most",
        "my",
        "no",
        "not",
        "of",
        "on",
        "one",
        "or",
        "our",
        "out",
        "said",
        "she",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "they",
        "this",
        "to",
        "up",
        "was",
        "we",
        "were",
        "what",
        "when",
        "which",
        "who",
        "will",
        "with",
        "would",
        "you",
        "your",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "zu",
        "den",
        "mit",
        "von",
        "im",
        "auf",
        "für",
        "sich",
        "dem",
        "des",
        "le",
        "la",
        "les",
        "et",
        "est",
        "un",
        "une",
        "du",
        "des",
        "dans",
        "pour",
        "qui",
        "que",
        "sur",
        "pas",
        "el",
        "los",
        "las",
        "y",
        "en",
        "por",
        "con",
        "para",
        "una",
        "es",
        "del",
        "se",
        "lo",
        "il",
        "di",
        "che",
        "non",
        "per",
        "gli",
        "o",
        "os",
        "da",
        "do",
        "um",
        "uma",
        "em",
        "não",
    ]
)

BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "br",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "td",
        "th",
        "tr",
        "ul",
        "option",
        "button",
        "label",
    ]
)
SKIP_TAGS = frozenset(
    ["script", "style", "noscript", "template", "svg", "iframe", "head", "object", "embed", "canvas"]
)
_HEADINGS = frozenset(["h1", "h2", "h3", "h4", "h5", "h6"])
_LIST_TAGS = frozenset(["li", "dd", "dt", "option"])
_CELL_TAGS = frozenset(["td", "th"])
_CHROME_TAGS = frozenset(["nav", "footer", "header", "aside", "form", "button", "label"])


# readability-lxml's own test for hidden elements.
_DISPLAY_NONE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!important\s*)?(?:;|$)", re.I
)


def _hidden(element: lxml.html.HtmlElement) -> bool:
    """True for an element the browser does not show (`hidden`, `display: none`)."""
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    return bool(style) and _DISPLAY_NONE.search(style) is not None


@dataclass(frozen=True, slots=True)
class Block:
    """One block of visible text: its whitespace-collapsed text, the nearest block tag, link share."""

    text: str
    tag: str
    link_chars: int
    chrome_ancestor: bool
    """Inside a `<nav>`, `<header>`, `<footer>`, `<aside>` or `<form>`."""


def page_blocks(root: lxml.html.HtmlElement) -> list[Block]:
    """Return the visible text blocks of a parsed page in document order; the tree is not changed."""
    blocks: list[Block] = []
    buffer: list[str] = []
    link = [0]
    tags: list[str] = ["body"]
    chrome = [0]

    def add(text: str, in_link: bool) -> None:
        buffer.append(text)
        if in_link:
            link[0] += len(text) - text.count(" ") - text.count("\n") - text.count("\t")

    def flush() -> None:
        if buffer:
            text = " ".join("".join(buffer).split())
            if text:
                visible = len(text) - text.count(" ")
                blocks.append(Block(text, tags[-1], min(link[0], visible), chrome[0] > 0))
            buffer.clear()
        link[0] = 0

    def walk(element: lxml.html.HtmlElement, in_link: bool) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if not tag or tag in SKIP_TAGS or _hidden(element):
            if element.tail:
                add(element.tail, in_link)
            return
        block = tag in BLOCK_TAGS
        if block:
            flush()
            tags.append(tag)
        if tag in _CHROME_TAGS:
            chrome[0] += 1
        here = in_link or tag == "a"
        if element.text:
            add(element.text, here)
        for child in element:
            walk(child, here)
        if tag in _CHROME_TAGS:
            chrome[0] -= 1
        if block:
            flush()
            tags.pop()
        if element.tail:
            add(element.tail, in_link)

    walk(root, False)
    flush()
    return blocks


@lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(text.casefold()))


def text_grams(paragraphs: list[str]) -> Counter[tuple[str, ...]]:
    """The word 4-grams of a text with their counts (paragraphs joined: 4-grams run across their ends)."""
    tokens = [t for p in paragraphs for t in _tokens(p)]
    return Counter(zip(tokens, tokens[1:], tokens[2:], tokens[3:], strict=False))


def coverage(tokens: list[tuple[str, ...]], grams: Counter[tuple[str, ...]]) -> list[float]:
    """Per block, the share of its words inside a 4-gram of the page's word stream found in `grams`.

    The stream runs across block ends, so a short block (a heading, a one-word label) counts as
    found only where the text has it beside the same neighbours, not wherever the word occurs.
    Each 4-gram of the text is matched as often as the text has it, first come first served: a
    page that repeats its article (a hidden copy, a teaser) gets one copy voted for, not all.
    """
    stream = [t for block in tokens for t in block]
    return _shares(tokens, list(zip(stream, stream[1:], stream[2:], stream[3:], strict=False)), grams)


def _shares(
    tokens: list[tuple[str, ...]], stream_grams: Sequence[tuple[str, ...]], grams: Counter[tuple[str, ...]]
) -> list[float]:
    """`coverage` over the page's 4-grams computed once (they are shared by every extractor)."""
    covered = bytearray(len(stream_grams) + 3)
    if grams:
        left = dict(grams)
        for j in [j for j, gram in enumerate(stream_grams) if gram in grams]:
            gram = stream_grams[j]
            count = left[gram]
            if count:
                left[gram] = count - 1
                covered[j : j + 4] = b"\x01\x01\x01\x01"
    shares = []
    start = 0
    for block in tokens:
        end = start + len(block)
        shares.append(covered.count(1, start, end) / len(block) if block else 0.0)
        start = end
    return shares


def _common(a: Counter[tuple[str, ...]], b: Counter[tuple[str, ...]]) -> int:
    """The size of the multiset intersection of two 4-gram counts."""
    both = list(a.keys() & b.keys())
    return sum(map(min, map(a.__getitem__, both), map(b.__getitem__, both)))


FEATURES = (
    *(f"vote_{name}" for name in EXTRACTORS),
    "votes",
    "votes_prev",
    "votes_next",
    "votes_window",
    "votes_window_max",
    *(f"region_{name}" for name in EXTRACTORS),
    *(f"window_{name}" for name in EXTRACTORS),
    *(f"log_words_{name}" for name in EXTRACTORS),
    *(f"corroboration_{name}" for name in EXTRACTORS),
    "support",
    "support_window",
    "empty_extractors",
    "log_words",
    "log_chars",
    "link_density",
    "stopword_share",
    "punct_per_word",
    "digit_share",
    "capital_share",
    "sentence_end",
    "tag_p",
    "tag_heading",
    "tag_list",
    "tag_cell",
    "tag_other",
    "chrome_ancestor",
    "position",
    "words_before_share",
    "log_page_blocks",
    "repeats",
)
"""The model's inputs per block, in the order of the model file's feature indices."""

_WINDOW = 3


def block_features(blocks: list[Block], extracted: dict[str, list[str]]) -> list[list[float]]:
    """Return one feature row per block (see FEATURES) from the blocks and each extractor's paragraphs."""
    tokens = [_tokens(block.text) for block in blocks]
    grams = [text_grams(extracted.get(name, [])) for name in EXTRACTORS]
    stream = [t for block in tokens for t in block]
    stream_grams = list(zip(stream, stream[1:], stream[2:], stream[3:], strict=False))
    columns = [_shares(tokens, stream_grams, g) for g in grams]
    votes = [list(v) for v in zip(*columns, strict=True)] if blocks else []
    total = [sum(v) for v in votes]
    n = len(blocks)
    regions: list[tuple[int, int]] = []
    for e in range(len(EXTRACTORS)):
        inside = [i for i in range(n) if votes[i][e] >= 0.5 and len(tokens[i]) >= 4]
        regions.append((inside[0], inside[-1]) if inside else (n, -1))
    empty = sum(not g for g in grams)
    sizes = [sum(g.values()) for g in grams]
    # How much each extractor's text the others confirm: a text nobody else found is doubtful.
    agree: dict[tuple[int, int], float] = {}
    for a in range(len(grams)):
        for b in range(a + 1, len(grams)):
            common = _common(grams[a], grams[b]) if sizes[a] and sizes[b] else 0
            agree[a, b] = agree[b, a] = min(common / sizes[a], common / sizes[b]) if common else 0.0
    corroboration = [
        sum(agree[a, b] for b in range(len(grams)) if b != a) / (len(grams) - 1) for a in range(len(grams))
    ]
    support = [sum(v * c for v, c in zip(row, corroboration, strict=True)) for row in votes]
    words = [len(t) for t in tokens]
    page_words = sum(words) or 1
    counts: dict[str, int] = {}
    for block in blocks:
        counts[block.text] = counts.get(block.text, 0) + 1
    # Window means from prefix sums: one pass per column instead of one slice per block.
    prefix = [[0.0, *itertools.accumulate(column)] for column in (*columns, total, support)]
    rows: list[list[float]] = []
    before = 0
    for i, block in enumerate(blocks):
        text = block.text
        nw = words[i]
        visible = (len(text) - text.count(" ")) or 1
        lo_w, hi_w = max(0, i - _WINDOW), i + _WINDOW + 1
        hi_w = min(hi_w, n)
        width = hi_w - lo_w
        window = total[lo_w:hi_w]
        stop = sum(t in _STOPWORDS for t in tokens[i])
        capital = sum(1 for word in text.split() if word[:1].isupper())
        tag = block.tag
        rows.append(
            [
                *votes[i],
                total[i],
                total[i - 1] if i > 0 else 0.0,
                total[i + 1] if i + 1 < n else 0.0,
                (prefix[-2][hi_w] - prefix[-2][lo_w]) / width,
                max(window),
                *(1.0 if lo <= i <= hi else 0.0 for lo, hi in regions),
                *((column[hi_w] - column[lo_w]) / width for column in prefix[: len(EXTRACTORS)]),
                *(math.log1p(size) for size in sizes),
                *corroboration,
                support[i],
                (prefix[-1][hi_w] - prefix[-1][lo_w]) / width,
                float(empty),
                math.log1p(nw),
                math.log1p(len(text)),
                block.link_chars / visible,
                stop / nw if nw else 0.0,
                len(_PUNCT.findall(text)) / (nw or 1),
                len(_DIGIT.findall(text)) / visible,
                capital / (len(text.split()) or 1),
                1.0 if _SENTENCE_END.search(text) else 0.0,
                1.0 if tag == "p" else 0.0,
                1.0 if tag in _HEADINGS else 0.0,
                1.0 if tag in _LIST_TAGS else 0.0,
                1.0 if tag in _CELL_TAGS else 0.0,
                1.0
                if tag not in _HEADINGS and tag not in _LIST_TAGS and tag not in _CELL_TAGS and tag != "p"
                else 0.0,
                1.0 if block.chrome_ancestor else 0.0,
                i / n,
                before / page_words,
                math.log1p(n),
                float(counts[text] - 1),
            ]
        )
        before += nw
    return rows


@dataclass(frozen=True, slots=True)
class EnsembleModel:
    """Gradient-boosted trees as flat arrays: per tree, per node: feature, threshold, left, right, value."""

    version: str
    features: tuple[str, ...]
    base: float
    learning_rate: float
    threshold: float
    feature: np.ndarray  # (trees, nodes) int, -1 at leaves
    cut: np.ndarray  # (trees, nodes) float
    left: np.ndarray  # (trees, nodes) int
    right: np.ndarray  # (trees, nodes) int
    value: np.ndarray  # (trees, nodes) float
    depth: int

    def scores(self, rows: list[list[float]]) -> np.ndarray:
        """Return the probability that each row's block is article text."""
        if not rows:
            return np.zeros(0)
        x = np.asarray(rows, dtype=np.float32)  # as scikit-learn compares
        m = x.shape[0]
        trees = self.feature.shape[0]
        node = np.zeros((trees, m), dtype=np.int64)
        tree_index = np.arange(trees)[:, None]
        for _ in range(self.depth):
            feature = self.feature[tree_index, node]
            leaf = feature < 0
            values = x[np.arange(m)[None, :], np.where(leaf, 0, feature)]
            go_left = values <= self.cut[tree_index, node]
            step = np.where(go_left, self.left[tree_index, node], self.right[tree_index, node])
            node = np.where(leaf, node, step)
        raw = self.base + self.learning_rate * self.value[tree_index, node].sum(axis=0)
        probability: np.ndarray = 1.0 / (1.0 + np.exp(-raw))
        return probability


def model_to_json(model: dict[str, Any]) -> str:
    """Serialise a model dict (as `bench/train_ensemble.py` builds it) as stable, readable JSON."""
    return json.dumps(model, indent=None, separators=(",", ":"), sort_keys=True) + "\n"


def model_from_json(data: dict[str, Any]) -> EnsembleModel:
    """Build the model from its JSON dict; raises ValueError when the file does not fit this code."""
    if data.get("format") != MODEL_FORMAT:
        raise ValueError(f"ensemble model format {data.get('format')!r}, expected {MODEL_FORMAT!r}")
    if tuple(data["features"]) != FEATURES:
        raise ValueError("ensemble model features do not match workers.stages.cleaning.ensemble.FEATURES")
    trees = data["trees"]
    width = max(len(tree["feature"]) for tree in trees)

    def pad(key: str, fill: float) -> np.ndarray:
        return np.array([tree[key] + [fill] * (width - len(tree[key])) for tree in trees])

    return EnsembleModel(
        version=str(data["version"]),
        features=tuple(data["features"]),
        base=float(data["base"]),
        learning_rate=float(data["learning_rate"]),
        threshold=float(data["threshold"]),
        feature=pad("feature", -1).astype(np.int64),
        cut=pad("threshold", 0.0).astype(np.float64),
        left=pad("left", 0).astype(np.int64),
        right=pad("right", 0).astype(np.int64),
        value=pad("value", 0.0).astype(np.float64),
        depth=int(data["depth"]),
    )


@lru_cache(maxsize=1)
def load_model() -> EnsembleModel:
    """The shipped model, read once per process."""
    return model_from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))


def choose_blocks(
    blocks: list[Block], extracted: dict[str, list[str]], model: EnsembleModel | None = None
) -> list[int]:
    """Return the indices of the blocks the model keeps as the article, in page order; pure."""
    if not blocks:
        return []
    model = model or load_model()
    scores = model.scores(block_features(blocks, extracted))
    return [i for i, score in enumerate(scores) if score >= model.threshold]
