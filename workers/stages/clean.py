"""The clean stage: a raw page (HTML or a text dump) in, readable article text and metadata out.

Pure: no I/O, no globals mutated, the same input always gives the same output. Every piece of
the page that is dropped is recorded in `CleanedArticle.removed` with a reason code.
"""

from __future__ import annotations

from datetime import datetime

import py3langid

from schemas.cleaned import CleanedArticle, Removal, RemovalReason
from schemas.limits import MAX_TEXT_CHARS
from schemas.raw import RawArticle
from workers.core.errors import NoContent
from workers.stages.cleaning.extraction import CleanOptions, Extraction
from workers.stages.cleaning.guards import drop_huge_tokens, prepare_html, sniff
from workers.stages.cleaning.html import extract_html, page_lines
from workers.stages.cleaning.lines import count_words, ends_sentence, fold
from workers.stages.cleaning.meta import find_credits, find_dateline, not_after
from workers.stages.cleaning.normalise import normalise_text, strip_controls
from workers.stages.cleaning.pagekind import Judgement, PageView, judge
from workers.stages.cleaning.pagekind import model_version as pagekind_model_version
from workers.stages.cleaning.paragraphs import (
    candidate_keys,
    drop_chrome_lines,
    drop_learned_chrome,
    drop_repeats,
)
from workers.stages.cleaning.textdump import extract_text_dump, split_columns

VERSION = "clean-1.3"
"""Cleaner version recorded on every article; bump it whenever the output for some input changes."""
VERSION = f"{VERSION}+{pagekind_model_version()}"  # a new page-kind model re-judges: `reprocess --stale`

MAX_REMOVALS = 400
"""Most removal records kept per article (the audit of a huge page is cut, never the article)."""

_REMOVAL_TEXT = 300
LANGUAGE_SAMPLE_CHARS = 1000
"""Characters of the article text that language identification reads."""


def _html_paragraphs(
    paragraphs: list[str],
    chrome: frozenset[str],
    chrome_lines: bool,
    removed: list[tuple[RemovalReason, str]],
) -> list[str]:
    """Normalise an HTML extractor's paragraphs and drop learned and rule-based chrome."""
    # One normalisation pass over all paragraphs (one line each) is much cheaper than one per line.
    joined = normalise_text("\n".join(" ".join(p.split()) for p in paragraphs))
    paragraphs = [p for p in joined.split("\n") if p.strip()]
    paragraphs = drop_learned_chrome(paragraphs, chrome, removed)
    if chrome_lines:
        paragraphs = drop_chrome_lines(paragraphs, removed)
    return paragraphs


def _extract(raw: RawArticle, chrome: frozenset[str], options: CleanOptions) -> Extraction:
    if sniff(raw) == "text/html":
        body = prepare_html(raw.body)
        extraction = extract_html(
            body,
            raw.url,
            second_opinion=options.second_opinion,
            ensemble=(options.ensemble_model or True) if options.ensemble else False,
        )
        # The ensemble's model already weighs the chrome rules' vote; the other texts get the rules.
        rules_after = options.chrome_lines or not options.ensemble
        extraction.paragraphs = _html_paragraphs(
            extraction.paragraphs, chrome, rules_after, extraction.removed
        )
        if not has_content(extraction.paragraphs):
            # The `no_content` rule: the page is dead only when no extractor found a prose paragraph.
            for fallback in extraction.fallbacks:
                removed: list[tuple[RemovalReason, str]] = []
                paragraphs = _html_paragraphs(fallback, chrome, True, removed)
                if has_content(paragraphs):
                    extraction.prose_elsewhere = True
                    # A substantial text without a prose paragraph (a poem, a list of short lines)
                    # is kept; a few chrome lines give way to the extractor's prose.
                    if count_words("\n".join(extraction.paragraphs)) < MIN_KEPT_WORDS:
                        extraction.paragraphs = paragraphs
                        extraction.removed = removed
                    break
        if raw.title:
            extraction.title = raw.title.strip() or extraction.title
        return extraction
    return extract_text_dump(normalise_text(_dump_text(raw.body, options)), raw.title, chrome, options)


def _dump_text(body: str, options: CleanOptions) -> str:
    body = drop_huge_tokens(body)
    return split_columns(body) if options.split_columns else body


MIN_PROSE_WORDS = 8
"""Words of the longest prose paragraph below which a page has no article (see `has_content`)."""
MIN_KEPT_WORDS = 50
"""Words the ensemble's text needs to be kept when only another extractor found a prose paragraph."""


def has_content(paragraphs: list[str]) -> bool:
    """True when the cleaned paragraphs hold article text, not only chrome; pure.

    The rule: at least one paragraph is a sentence of prose, that is `MIN_PROSE_WORDS` words or
    more (Han and kana count a word per two characters), at least 60% of its visible characters
    letters, and ending like a sentence unless it has 15 words or more. Navigation, link lists,
    bylines and share bars are short or unpunctuated lines; the shortest real article of the
    benchmark (18 words) and a one-sentence news brief pass. A page without such a paragraph is
    dead-lettered `no_content` instead of being stored as a "three-word article" of nav links.
    Verse counts as prose: `VERSE_LINES` lines in a row of 3 words or more, each ending in
    punctuation (`,;:.!?`), 20 words together (a poem; menu items are not punctuated).
    """
    verse_lines = verse_words = 0
    for paragraph in paragraphs:
        words = count_words(paragraph)
        visible = (len(paragraph) - paragraph.count(" ")) or 1
        letters = sum(map(str.isalpha, paragraph)) / visible >= 0.6
        if words >= 3 and letters and paragraph.rstrip()[-1:] in _VERSE_ENDS:
            verse_lines += 1
            verse_words += words
            if verse_lines >= VERSE_LINES and verse_words >= 20:
                return True
        else:
            verse_lines = verse_words = 0
        if words >= MIN_PROSE_WORDS and letters and (words >= 15 or ends_sentence(paragraph)):
            return True
    return False


VERSE_LINES = 4
"""Punctuated short lines in a row that count as a prose paragraph (see `has_content`)."""
_VERSE_ENDS = frozenset(",;:.!?")


def _audit_outside(lines: list[str], text: str, removed: list[tuple[RemovalReason, str]]) -> None:
    """Record every visible line of the page that is neither in the text nor already recorded.

    The extractors drop whole regions (menus, sidebars, footers) without saying so; each such
    line is recorded once as `outside_article`. Lines and text are both whitespace-collapsed, so
    plain substring tests decide (folding every line of every page cost an eighth of the stage).
    """
    recorded = {snippet for _reason, snippet in removed}
    seen: set[str] = set()
    for line in lines:
        if line in seen or line in recorded or line in text:
            continue
        seen.add(line)
        removed.append(("outside_article", line))


def _one_line(value: str | None) -> str | None:
    """A one-line field without control characters (NUL, ESC, ...); None when nothing is left."""
    if value is None:
        return None
    return strip_controls(value) or None


def _language(text: str, hint: str | None) -> str | None:
    if hint:
        return hint
    # A thousand characters decide the language as well as three thousand (same result on every
    # benchmark page), at a third of the cost.
    lang, _score = py3langid.classify(text[:LANGUAGE_SAMPLE_CHARS])
    return str(lang) if lang else None


def clean(
    raw: RawArticle,
    article_id: str,
    *,
    chrome: frozenset[str] = frozenset(),
    options: CleanOptions | None = None,
) -> CleanedArticle:
    """Return the cleaned article of one raw page; pure and deterministic (so idempotent).

    `chrome` holds the learned keys (see `line_keys`) of this source's boilerplate lines: lines
    and short blocks with those keys are removed as `source_boilerplate`. Raises `NotHtml`,
    `TooLarge`, `TooDeep` or `NoContent` (all `PermanentError`) for input that cannot be cleaned;
    `NoContent` also when no extractor found a prose paragraph (see `has_content`). `options` are for benchmarks.
    """
    options = options or CleanOptions()
    extraction = _extract(raw, chrome, options)
    kind = _page_kind(raw, extraction)
    if kind.kind != "article" and any(p.strip() for p in extraction.paragraphs):
        # Kept non-article kinds (NEWSFLOW_KEEP_PAGE_KINDS) get trafilatura's text: it beat the ensemble's on
        # every kind of wcxb-dev (bench/pagekind_eval.py, docs/concepts/page-kind.md).
        extraction.paragraphs = _other_kind_paragraphs(raw) or extraction.paragraphs
    removed = extraction.removed
    paragraphs = extraction.paragraphs
    if extraction.title and paragraphs and fold(paragraphs[0]) == fold(extraction.title):
        removed.append(("title", paragraphs.pop(0)))

    dateline: str | None = None
    body_start = 0
    for index, paragraph in enumerate(paragraphs[:4]):
        dateline = find_dateline(paragraph)
        if dateline:
            body_start = index
            break
    if options.html_repeats if extraction.page_lines else options.dump_repeats:
        paragraphs = drop_repeats(paragraphs, removed, body_start=body_start)
    credits = tuple(find_credits(paragraphs))

    text = "\n\n".join(paragraphs)
    if len(text) > MAX_TEXT_CHARS:
        text = (
            text[:MAX_TEXT_CHARS].rsplit("\n\n", 1)[0]
            if "\n\n" in text[:MAX_TEXT_CHARS]
            else text[:MAX_TEXT_CHARS]
        )
    if not text.strip():
        raise NoContent("no article text found", reason="no_content")
    # A page that is not an article ends `not_article` even without a prose paragraph (a listing of links).
    if not has_content(paragraphs) and not extraction.prose_elsewhere and kind.kind == "article":
        raise NoContent(
            f"no prose paragraph of {MIN_PROSE_WORDS} words or more: only chrome", reason="no_content"
        )
    if extraction.page_lines:
        _audit_outside(extraction.page_lines, text, removed)

    published: datetime | None = not_after(extraction.published_at, raw.fetched_at) or raw.published_at
    return CleanedArticle(
        article_id=article_id,
        version=VERSION,
        title=_one_line(extraction.title),
        text=text,
        published_at=published,
        updated_at=not_after(extraction.updated_at, raw.fetched_at),
        authors=tuple(a for a in map(_one_line, extraction.authors) if a),
        dateline=dateline,
        credits=credits,
        section=_one_line(extraction.section),
        site_name=_one_line(extraction.site_name),
        language=_language(text, raw.language or extraction.language),
        url=raw.url or extraction.url,
        removed=tuple(
            Removal(reason=reason, text=snippet[:_REMOVAL_TEXT]) for reason, snippet in removed[:MAX_REMOVALS]
        ),
        page_kind=kind.kind,
        page_kind_confidence=kind.confidence if kind.model else None,
        page_kind_model=kind.model or None,
    )


_NOT_JUDGED = Judgement("article", 1.0, "")


def _other_kind_paragraphs(raw: RawArticle) -> list[str]:
    """trafilatura's main text (its defaults) of a page that is not an article, one paragraph per line."""
    import trafilatura

    text = trafilatura.extract(prepare_html(raw.body), url=raw.url) or ""
    return [line for line in normalise_text(text).split("\n") if line.strip()]


def _page_kind(raw: RawArticle, extraction: Extraction) -> Judgement:
    """The page's kind (`pagekind.judge`, on the raw HTML and URL); a text dump is an article."""
    if not extraction.page_lines:
        return _NOT_JUDGED
    return judge(PageView(raw.body, raw.url))


def line_keys(raw: RawArticle) -> frozenset[str]:
    """Return the keys of the page's candidate boilerplate lines/blocks (folded text → 16-hex xxh64).

    Only short or boilerplate-like lines are candidates; prose sentences never are. Pure. Raises
    the same guard errors as `clean` for input that cannot be parsed.
    """
    if sniff(raw) == "text/html":
        body = prepare_html(raw.body)
        return candidate_keys(page_lines(body))
    return candidate_keys(normalise_text(_dump_text(raw.body, CleanOptions())).split("\n"))


__all__ = ["MAX_REMOVALS", "VERSION", "CleanOptions", "RemovalReason", "clean", "has_content", "line_keys"]
