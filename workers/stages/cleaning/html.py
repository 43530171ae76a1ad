"""HTML pages: article body by an ensemble of extractors over the page's blocks, metadata from the tree.

trafilatura, readability-lxml, resiliparse's main-content extraction and the project's own rules
(a merge of the first two, see `merge`) each propose a text; `ensemble.choose_blocks` keeps the
page blocks a small learned model scores as article. `CleanOptions(ensemble=False)` keeps the
earlier design (trafilatura checked against readability when doubtful) for the benchmark.
"""

from __future__ import annotations

import logging
import re
from copy import copy

import lxml.html
import trafilatura
from lxml import etree
from readability import Document as ReadabilityDocument
from resiliparse.extract.html2text import extract_plain_text
from trafilatura.readability_lxml import Document as TrafilaturaReadability

from schemas.cleaned import RemovalReason
from workers.stages.cleaning.ensemble import BLOCK_TAGS, SKIP_TAGS, EnsembleModel, choose_blocks, page_blocks
from workers.stages.cleaning.extraction import Extraction
from workers.stages.cleaning.htmlmeta import extract_metadata
from workers.stages.cleaning.merge import agreement, merge
from workers.stages.cleaning.paragraphs import drop_chrome_lines

FALLBACK_ORDER = ("rules", "readability", "trafilatura", "resiliparse")
"""Whose text is taken, in this order, when the ensemble keeps no prose paragraph (see `clean`)."""
AGREEMENT_FOR_SECOND_OPINION = 0.6
"""Below this agreement between trafilatura and its bundled readability, readability-lxml is also run."""

# The extractors log every page they discard at WARNING; the clean stage reports its own outcome.
for _name in ("trafilatura", "readability", "readability.readability", "htmldate"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def parse_html(body: str) -> lxml.html.HtmlElement | None:
    """Parse an HTML body into an lxml tree without network access; None when nothing parses."""
    parser = lxml.html.HTMLParser(encoding="utf-8", no_network=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(body.encode("utf-8", "replace"), parser=parser)
    except (etree.ParserError, ValueError):
        return None
    return root if isinstance(root, lxml.html.HtmlElement) else None


def _primary(tree: lxml.html.HtmlElement, url: str | None) -> list[str]:
    """trafilatura in fast, precision-oriented mode: the main extractor."""
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=True,
        favor_precision=True,
        include_comments=False,
        include_tables=True,
        deduplicate=False,
        with_metadata=False,
    )
    text = getattr(doc, "text", None) or "" if doc is not None else ""
    return [line.strip() for line in text.split("\n") if line.strip()]


def _quick_secondary(tree: lxml.html.HtmlElement) -> list[str]:
    """trafilatura's bundled readability port: cheap second opinion. It consumes (mutates) `tree`."""
    try:
        summary = TrafilaturaReadability(tree, min_text_length=25).summary()
    except Exception:  # a failing second opinion must never fail the page
        return []
    return page_lines(summary) if summary else []


class _ParsedReadability(ReadabilityDocument):  # type: ignore[misc]  # readability-lxml ships no types
    """readability-lxml on our own parse of the page, without its lxml_html_clean pass.

    That pass removes scripts, styles, comments and event attributes: `strip_inert` already cut
    the first three and none of them is text, yet the pass is half of readability's time. The
    document is re-read from a fresh copy on every (ruthless, then gentler) attempt, as from text.
    """

    def _parse(self, input: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
        self.encoding = "utf-8"
        doc = copy(input)
        for element in doc.xpath("//*[@hidden]"):
            element.drop_tree()
        for element in doc.xpath("//*[@style]"):
            if _DISPLAY_NONE.search(element.get("style") or ""):
                element.drop_tree()
        doc.resolve_base_href(handle_failures="discard")
        return doc


# readability-lxml's own test for hidden elements.
_DISPLAY_NONE = re.compile(
    r"(?:^|;)\s*(?:display\s*:\s*none|visibility\s*:\s*hidden)\s*(?:!important\s*)?(?:;|$)", re.I
)


def _full_secondary(body: str) -> list[str]:
    """readability-lxml on the page: the slower, wider second opinion used when the first two disagree."""
    tree = parse_html(body)
    if tree is None:
        return []
    try:
        summary = _ParsedReadability(tree).summary(html_partial=True)
    except Exception:  # a failing second opinion must never fail the page
        return []
    return page_lines(summary)


def _readability(tree: lxml.html.HtmlElement) -> list[str]:
    """readability-lxml on our parse of the page (it reads a copy; the tree is not changed)."""
    try:
        summary = _ParsedReadability(tree).summary(html_partial=True)
    except Exception:  # a failing extractor must never fail the page
        return []
    return page_lines(summary)


def _resiliparse(body: str) -> list[str]:
    """resiliparse's main-content extraction (its own fast parser), one line per block."""
    try:
        text = extract_plain_text(
            body, main_content=True, list_bullets=False, alt_texts=False, form_fields=False, noscript=False
        )
    except Exception:  # a failing extractor must never fail the page
        return []
    return [line.strip() for line in text.split("\n") if line.strip()]


def run_extractors(body: str, tree: lxml.html.HtmlElement, url: str | None) -> dict[str, list[str]]:
    """Return each voting extractor's paragraphs for one page (see `ensemble.EXTRACTORS`); pure.

    Each extractor runs once; trafilatura and readability read copies of our one parse.
    """
    primary = _primary(tree, url)
    secondary = _readability(tree)
    rules = drop_chrome_lines(merge(primary, secondary, []), [])
    return {
        "trafilatura": primary,
        "readability": secondary,
        "resiliparse": _resiliparse(body),
        "rules": rules,
    }


def _split_cells(paragraphs: list[str]) -> list[str]:
    """Cells joined with ` | ` (by an extractor, or inline in the page: `Home | News`) become paragraphs."""
    return [cell for p in paragraphs for cell in " ".join(p.split()).split(" | ") if cell]


def extract_html(
    body: str, url: str | None, *, second_opinion: bool = True, ensemble: EnsembleModel | bool = True
) -> Extraction:
    """Return the article paragraphs and metadata of a (defused) HTML page; pure.

    By default the ensemble chooses the page blocks (`ensemble` may be a model to use instead of
    the shipped one); the extractors' own texts are the fallbacks when it keeps no prose. With
    `ensemble=False` the earlier design runs: trafilatura, checked against readability when doubtful
    (without `second_opinion`, an ablation switch, trafilatura alone).
    """
    tree = parse_html(body)
    if tree is None:
        return Extraction(paragraphs=[])
    meta = extract_metadata(tree, url=url)
    if ensemble is not False:
        blocks = page_blocks(tree)
        extracted = run_extractors(body, tree, url)
        keep = choose_blocks(blocks, extracted, ensemble if isinstance(ensemble, EnsembleModel) else None)
        return Extraction(
            paragraphs=_split_cells([blocks[i].text for i in keep]),
            title=meta["title"],
            authors=meta["authors"],
            published_at=meta["published_at"],
            updated_at=meta["updated_at"],
            section=meta["section"],
            site_name=meta["site_name"],
            language=meta["language"],
            url=meta["url"],
            page_lines=_split_cells([block.text for block in blocks]),
            fallbacks=[_split_cells(extracted[name]) for name in FALLBACK_ORDER],
        )
    lines = tree_lines(tree)
    primary = _primary(tree, url)  # trafilatura works on its own copy of the tree
    if not second_opinion:
        secondary: list[str] = []
    else:
        secondary = _quick_secondary(tree)  # last user of the tree: it may consume it
        if agreement(primary, secondary) < AGREEMENT_FOR_SECOND_OPINION:
            secondary = _full_secondary(body)
    removed: list[tuple[RemovalReason, str]] = []
    paragraphs = merge(primary, secondary, removed)
    return Extraction(
        paragraphs=paragraphs,
        removed=removed,
        title=meta["title"],
        authors=meta["authors"],
        published_at=meta["published_at"],
        updated_at=meta["updated_at"],
        section=meta["section"],
        site_name=meta["site_name"],
        language=meta["language"],
        url=meta["url"],
        page_lines=lines,
    )


# The page's blocks are the ensemble's: one list of block elements and of elements never shown.
_BLOCK_TAGS = BLOCK_TAGS
_SKIP_TAGS = SKIP_TAGS


def page_lines(body: str) -> list[str]:
    """Return every visible text line of an HTML page, one per block element (like get_text); pure."""
    root = parse_html(body)
    if root is None:
        return []
    return tree_lines(root)


def tree_lines(root: lxml.html.HtmlElement) -> list[str]:
    """Return every visible text line of a parsed page, one per block element; the tree is not changed."""
    parts: list[str] = []

    def walk(element: lxml.html.HtmlElement) -> None:
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag in _SKIP_TAGS or not tag:
            if element.tail:
                parts.append(element.tail)
            return
        block = tag in _BLOCK_TAGS
        if block:
            parts.append("\n")
        if element.text:
            parts.append(element.text)
        for child in element:
            walk(child)
        if block:
            parts.append("\n")
        if element.tail:
            parts.append(element.tail)

    walk(root)
    return [" ".join(line.split()) for line in "".join(parts).split("\n") if line.strip()]
