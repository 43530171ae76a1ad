"""Page kind: is a page an article, or a service, product, collection, forum, listing or docs page?

A small learned classifier (gradient-boosted trees, one per kind against the rest, evaluated by the
ensemble's numpy tree evaluator) on features of the raw HTML, read by a few regular expressions (no
second parse: well under the 3 ms budget) and the URL. Features: markup counts (lists,
cards, forms, code, tables), repetition of card-like blocks (the same `class` many times), link
density, the share of the page's words in prose paragraphs and their shape, JSON-LD `@type` and
`og:type`, URL shape (depth, a date, /tag/, /product/, a query), price, cart and rating markup,
posts and replies (forums), code blocks (documentation).

The model is `pagekind_model.json` (rebuilt by `bench/train_pagekind.py`, trained on wcxb-dev, CC BY
4.0, see its metadata). A page is called a non-article only when the article model's probability is
below the file's threshold (chosen for article recall first): a page the model is unsure of is an article.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from schemas.cleaned import PageKind
from workers.stages.cleaning.ensemble import FEATURES as ENSEMBLE_FEATURES
from workers.stages.cleaning.ensemble import MODEL_FORMAT as ENSEMBLE_FORMAT
from workers.stages.cleaning.ensemble import EnsembleModel
from workers.stages.cleaning.ensemble import model_from_json as ensemble_model_from_json

KINDS: tuple[PageKind, ...] = (
    "article",
    "service",
    "product",
    "collection",
    "forum",
    "listing",
    "documentation",
)
"""The page kinds, article first (wcxb-dev's `page_type` values)."""

MODEL_PATH = Path(__file__).with_name("pagekind_model.json")
MODEL_FORMAT = "newsflow-pagekind-1"
SCAN_CHARS = 400_000
"""Characters of the raw HTML the markup features read (a huge page's tail is inline data)."""


@dataclass(frozen=True, slots=True)
class PageView:
    """What the classifier reads of a page: its raw HTML and URL."""

    html: str
    url: str | None


@dataclass(frozen=True, slots=True)
class Judgement:
    """The page's kind, the model's confidence in it (0.5-1.0) and the model's version."""

    kind: PageKind
    confidence: float
    model: str


_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9]{0,9})\b")
_CLASS = re.compile(r"""class=["']([^"'<>]{1,200})["']""")
_CLASS_WORDS = (
    "card", "tile", "teaser", "grid", "product", "price", "cart", "basket", "rating", "star", "review",
    "post", "comment", "reply", "thread", "forum", "avatar", "user", "member", "toc", "sidebar",
    "breadcrumb", "pagination", "pager", "highlight", "hljs", "language-", "code", "docs-", "doc-",
    "article", "byline", "author", "share", "related", "listing", "result", "filter", "facet", "sku",
    "variant", "quantity", "swatch",
)  # fmt: skip
_LD_TYPE = re.compile(r""""@type"\s*:\s*(\[[^\]]{0,300}\]|"[^"]{1,60}")""")
_OG_TYPE = re.compile(
    r"""<meta[^>]{0,200}?(?:property|name)\s*=\s*["']og:type["'][^>]{0,200}?content\s*=\s*["']([^"']{1,40})"""
    r"""|<meta[^>]{0,200}?content\s*=\s*["']([^"']{1,40})["'][^>]{0,200}?(?:property|name)\s*=\s*["']og:type""",
    re.IGNORECASE,
)
_ITEMPROP = re.compile(r"""itemprop\s*=\s*["'](price|offers|ratingValue|reviewCount|sku|author|datePublished|articleBody|headline|text|answerCount|upvoteCount)["']""")  # fmt: skip
_ITEMTYPE = re.compile(r"""itemtype=["']https?://schema\.org/(\w+)""")
_PUBLISHED = ("article:published_time", "datePublished", "pubdate")
_ANCHOR_TEXT = re.compile(r"<a\b[^>]*>([^<]{0,300})")
_CURRENCIES = ("$", "€", "£", "¥", "₹", "USD", "EUR", "GBP")
_DATE_PATH = re.compile(
    r"/(?:19|20)\d\d/(?:[01]?\d)(?:/|$)|/(?:19|20)\d\d-?[01]\d-?[0-3]\d|[/-](?:19|20)\d\d[/-]"
)
_SENTENCE_END = re.compile(r"""[.!?…:;)"'»”]$""")

_URL_WORDS: dict[str, tuple[str, ...]] = {
    "tag": ("tag", "tags", "topic", "topics", "author", "authors", "category", "categories", "section", "archive",
            "archives", "collections", "collection", "search", "page", "label", "series", "hub"),
    "product": ("product", "products", "p", "item", "items", "shop", "store", "dp", "buy", "sku", "catalog"),
    "forum": ("forum", "forums", "thread", "threads", "t", "topic", "community", "discussion", "discussions",
              "questions", "question", "q", "board", "boards", "viewtopic.php", "showthread.php", "comments", "r"),
    "docs": ("docs", "doc", "documentation", "api", "reference", "manual", "guide", "guides", "wiki", "help",
             "kb", "support", "developer", "developers", "learn", "tutorial", "tutorials", "sdk"),
    "article": ("news", "article", "articles", "story", "stories", "blog", "blogs", "post", "posts", "opinion",
                "politics", "world", "sport", "sports", "business", "culture", "press", "features"),
    "service": ("services", "service", "about", "contact", "pricing", "solutions", "company", "careers",
                "features", "plans", "login", "signup", "legal", "privacy", "terms"),
}  # fmt: skip
_LD_GROUPS: dict[str, tuple[str, ...]] = {
    "article": ("newsarticle", "article", "blogposting", "reportagenewsarticle", "analysisnewsarticle",
                "opinionnewsarticle", "reviewnewsarticle", "liveblogposting", "socialmediaposting", "report"),
    "product": ("product", "offer", "aggregateoffer", "productgroup", "individualproduct", "aggregaterating"),
    "collection": ("itemlist", "collectionpage", "searchresultspage", "offercatalog"),
    "forum": ("discussionforumposting", "qapage", "question", "answer", "comment"),
    "docs": ("techarticle", "apireference", "softwaresourcecode", "softwareapplication", "howto"),
    "service": ("organization", "localbusiness", "service", "corporation", "professionalservice", "faqpage",
                "contactpage", "aboutpage", "event", "course"),
    "webpage": ("webpage", "website"),
    "breadcrumb": ("breadcrumblist",),
    "person": ("person", "profilepage"),
}  # fmt: skip
_MARKUP_TAGS = ("a", "li", "article", "h1", "h2", "h3", "img", "form", "input", "button", "select", "pre",
                "code", "table", "time", "p", "blockquote", "nav", "section", "figure", "svg", "option",
                "label", "dl", "iframe", "video")  # fmt: skip


def _log(n: float) -> float:
    return math.log1p(max(n, 0.0))


def _url_features(url: str | None) -> list[float]:
    parts = urlsplit(url or "")
    segments = [s for s in parts.path.lower().split("/") if s]
    if not segments and not parts.query:
        parts, segments = (
            urlsplit(""),
            [],
        )  # a bare site address says nothing of the page (some feeds give only it)
    words = set(segments)
    last = segments[-1] if segments else ""
    stem = last.rsplit(".", 1)[0]
    return [
        float(len(segments)),
        float(bool(_DATE_PATH.search(parts.path))),
        float(bool(parts.query)),
        float(parts.query.count("&") + 1 if parts.query else 0),
        float(stem.count("-") + stem.count("_")),
        float(len(stem)),
        float(sum(c.isdigit() for c in stem)),
        float(parts.path.endswith("/")),
        float(not segments),
        *(float(bool(words & set(group))) for group in _URL_WORDS.values()),
    ]


def _ld_features(html: str) -> list[float]:
    found: set[str] = set()
    for match in _LD_TYPE.findall(html):
        found.update(t.lower().rsplit("/", 1)[-1] for t in re.findall(r"[\w:/.]+", match))
    found.update(t.lower() for t in _ITEMTYPE.findall(html))
    og = _OG_TYPE.search(html)
    og_type = ((og.group(1) or og.group(2)) if og else "").lower()
    return [
        *(float(bool(found & set(group))) for group in _LD_GROUPS.values()),
        float(og_type == "article"),
        float(og_type.startswith(("product", "og:product"))),
        float(og_type == "website"),
        float(bool(og_type) and og_type not in ("article", "website") and "product" not in og_type),
    ]


def _markup_features(html: str) -> list[float]:
    tags = Counter(_TAG.findall(html))
    total = sum(tags.values()) or 1
    classes = _CLASS.findall(html)
    repeated = Counter(classes)
    top = repeated.most_common(3)
    joined = " ".join(classes).lower()
    words = {w: joined.count(w) for w in _CLASS_WORDS}
    props = Counter(p.lower() for p in _ITEMPROP.findall(html))
    return [
        _log(total),
        *(tags[t] / total for t in _MARKUP_TAGS),
        _log(tags["article"]),
        _log(tags["li"]),
        _log(tags["pre"] + tags["code"]),
        _log(tags["input"] + tags["button"] + tags["select"]),
        _log(top[0][1] if top else 0),
        _log(top[2][1] if len(top) > 2 else 0),
        _log(sum(1 for n in repeated.values() if n >= 5)),
        sum(n for n in repeated.values() if n >= 5) / (len(classes) or 1),
        *(_log(words[w]) for w in _CLASS_WORDS),
        *(_log(props[p]) for p in ("price", "offers", "ratingvalue", "reviewcount", "sku", "author",
                                   "datepublished", "articlebody", "headline", "text", "answercount",
                                   "upvotecount")),
        float(any(marker in html for marker in _PUBLISHED)),
    ]  # fmt: skip


_HIDDEN = (("<script", "</script>"), ("<style", "</style>"), ("<!--", "-->"), ("<svg", "</svg>"),
           ("<noscript", "</noscript>"), ("<template", "</template>"))  # fmt: skip


def _visible_html(html: str) -> str:
    """The HTML without its head, scripts, styles, comments and inline images (substring search: C speed)."""
    start = html.find("<body")
    html = html[start:] if start >= 0 else html
    for opening, closing in _HIDDEN:
        if opening not in html:
            continue
        parts: list[str] = []
        at = 0
        while (begin := html.find(opening, at)) >= 0:
            parts.append(html[at:begin])
            end = html.find(closing, begin)
            if end < 0:
                at = len(html)
                break
            at = end + len(closing)
        parts.append(html[at:])
        html = " ".join(parts)
    return html


_ANY_TAG = re.compile(r"<[^>]*>")
_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p\s*>", re.DOTALL)
_PRE = re.compile(r"<pre\b[^>]*>(.*?)</pre\s*>", re.DOTALL)
_LIST_ITEM = re.compile(r"<li\b[^>]*>(.*?)</li\s*>", re.DOTALL)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.DOTALL)
_H1 = re.compile(r"<h1\b[^>]*>(.*?)</h1\s*>", re.DOTALL)


_DATE_TEXT = re.compile(r"(?<![\d])(?:199\d|20[0-3]\d)(?![\d])")
"""A year in the page's text (the cheap mark of a date): articles carry one near the top."""
DATE_WINDOW = 20_000
"""Characters of the visible text searched for dates."""


def _prose_run(sizes: list[int]) -> int:
    """The longest run of consecutive paragraphs of 20 words or more (an article's body is one such run)."""
    best = run = 0
    for n in sizes:
        run = run + 1 if n >= 20 else 0
        best = max(best, run)
    return best


def _words(fragment: str) -> list[str]:
    return _ANY_TAG.sub(" ", fragment).split()


def _text_features(html: str) -> list[float]:
    """The page's prose: paragraph lengths and shapes, link share, prices, code, from the HTML's text."""
    visible_html = _visible_html(html)
    visible = _ANY_TAG.sub(" ", visible_html)
    words_all = len(visible.split()) or 1
    chars_all = len(visible) - visible.count(" ") or 1
    paragraphs = [w for w in map(_words, _PARAGRAPH.findall(visible_html)) if w]
    in_order = [len(w) for w in paragraphs]
    sizes = sorted(in_order, reverse=True)
    dates = len(_DATE_TEXT.findall(visible[:DATE_WINDOW]))
    p_words = sum(sizes)
    prose = [w for w in paragraphs if len(w) >= 8 and _SENTENCE_END.search(w[-1])]
    found_items = _LIST_ITEM.findall(visible_html)
    item_words = len(_words(" ".join(found_items)))
    anchor_chars = sum(len(a) - a.count(" ") for a in _ANCHOR_TEXT.findall(visible_html))
    code = "\n".join(_PRE.findall(visible_html))
    heading = " ".join(" ".join(_words(h)) for h in _H1.findall(visible_html)[:1])
    found = _TITLE.search(html)
    title = " ".join(_words(found.group(1))) if found else ""
    title_words = title.split()
    return [
        _log(words_all),
        _log(p_words),
        p_words / words_all,
        _log(len(paragraphs)),
        float(_prose_run(in_order)),
        _log(dates),
        float(bool(_DATE_TEXT.search(visible[:3000]))),
        p_words / (len(paragraphs) or 1),
        sum(sizes[:3]) / (p_words or 1),
        float(sizes[0]) if sizes else 0.0,
        _log(sum(1 for n in sizes if n >= 40)),
        _log(sum(1 for n in sizes if n >= 15)),
        len(prose) / (len(paragraphs) or 1),
        sum(len(w) for w in prose) / words_all,
        sum(1 for n in sizes if n < 8) / (len(paragraphs) or 1),
        _log(len(found_items)),
        item_words / (len(found_items) or 1),
        item_words / words_all,
        min(anchor_chars / chars_all, 1.0),
        _log(sum(visible.count(c) for c in _CURRENCIES)),
        _log(code.count("\n") + bool(code)),
        len(code) / (len(visible) or 1),
        sum(map(visible.count, "0123456789")) / (len(visible) or 1),
        float(len(title_words)),
        float(bool(heading) and heading.casefold()[:40] in title.casefold()),
        float(len(heading.split())),
    ]


def features(view: PageView) -> list[float]:
    """Return the classifier's feature row of a page; pure, no HTML parse (see the module docstring)."""
    html = view.html[:SCAN_CHARS]
    return [
        *_url_features(view.url),
        *_ld_features(html),
        *_markup_features(html),
        *_text_features(html),
    ]


@dataclass(frozen=True, slots=True)
class PageKindModel:
    """One tree model per kind (the kind against the rest); the article model's threshold decides."""

    version: str
    threshold: float
    """Below this margin (see `margins`) a page is not an article."""
    models: tuple[EnsembleModel, ...]
    """In `KINDS` order."""

    def probabilities(self, rows: list[list[float]]) -> np.ndarray:
        """(rows, kinds): each kind's one-against-the-rest probability."""
        return np.stack([model.scores(rows) for model in self.models], axis=1)

    def judge_rows(self, rows: list[list[float]]) -> list[Judgement]:
        """The kind of each row: article unless its margin is below the threshold (then the likeliest other
        kind); the confidence is the probability of the kind decided."""
        out: list[Judgement] = []
        probabilities = self.probabilities(rows)
        for p, margin in zip(probabilities, margins(probabilities), strict=True):
            if margin >= self.threshold:
                out.append(Judgement("article", round(float(p[0]), 4), self.version))
                continue
            best = int(np.argmax(p[1:])) + 1
            out.append(Judgement(KINDS[best], round(float(p[best]), 4), self.version))
        return out


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Per row, the article model's log-odds minus the highest of the other kinds' log-odds: how much more
    the page looks like an article than like anything else (the models' evidence for the other kinds
    counts, not only the article model's doubt)."""
    p = np.clip(probabilities, 1e-9, 1 - 1e-9)
    logits = np.log(p / (1 - p))
    result: np.ndarray = logits[:, 0] - logits[:, 1:].max(axis=1)
    return result


def model_from_json(data: dict[str, Any]) -> PageKindModel:
    """Build the model from its JSON dict; raises ValueError when the file does not fit this code."""
    if data.get("format") != MODEL_FORMAT:
        raise ValueError(f"page-kind model format {data.get('format')!r}, expected {MODEL_FORMAT!r}")
    if int(data["features"]) != FEATURE_COUNT:
        raise ValueError(
            f"page-kind model has {data['features']} features, the code computes {FEATURE_COUNT}"
        )
    if tuple(data["kinds"]) != KINDS:
        raise ValueError("page-kind model kinds do not match workers.stages.cleaning.pagekind.KINDS")
    return PageKindModel(
        version=str(data["version"]),
        threshold=float(data["threshold"]),
        models=tuple(trees_from_json(part) for part in data["models"]),
    )


def trees_from_json(part: dict[str, Any]) -> EnsembleModel:
    """One kind's trees (as `bench/train_pagekind.py` writes them) read by the ensemble's own loader: the same
    tree format and evaluator; the ensemble's format and feature names only pass its consistency check."""
    return ensemble_model_from_json(
        {
            **part,
            "format": ENSEMBLE_FORMAT,
            "features": list(ENSEMBLE_FEATURES),
            "version": "",
            "threshold": 0.5,
        }
    )


@lru_cache(maxsize=1)
def load_model() -> PageKindModel:
    """The shipped model, read once per process."""
    return model_from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def model_version() -> str:
    """The shipped model's version (part of the clean stage's version: a new model re-judges pages)."""
    return str(json.loads(MODEL_PATH.read_text(encoding="utf-8"))["version"])


def judge(view: PageView, model: PageKindModel | None = None) -> Judgement:
    """Return the page's kind with the model's confidence; pure and deterministic."""
    return (model or load_model()).judge_rows([features(view)])[0]


FEATURE_COUNT = len(features(PageView("", None)))
URL_FEATURES = len(_url_features(None))
"""The first features come from the URL, ..."""
META_FEATURES = len(_ld_features(""))
"""... the next from JSON-LD, microdata and og:type (the trainer blanks each group on copies of its pages,
so a page without a URL or without metadata, as pages of older eras are, is still judged by its markup)."""

__all__ = [
    "FEATURE_COUNT",
    "KINDS",
    "Judgement",
    "PageKind",
    "PageKindModel",
    "PageView",
    "features",
    "judge",
]
