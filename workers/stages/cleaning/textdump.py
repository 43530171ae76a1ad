"""Text dumps (a page saved as text): find the body among candidate runs of prose lines, and the headline."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from workers.stages.cleaning.extraction import CleanOptions, Extraction
from workers.stages.cleaning.linemodel import (
    LineModel,
    candidate_runs,
    headed_runs,
    headline_candidates,
    headline_features,
    line_features,
    load_model,
    run_features,
    trim_headline,
)
from workers.stages.cleaning.lines import (
    LineInfo,
    analyse,
    fold,
    is_candidate,
    is_comment_structure,
    is_date_line,
    line_key,
)
from workers.stages.cleaning.meta import find_authors, find_dates

_COLUMN_GAP = re.compile(r"(?<=\S)(?: {3,}|\t+| +\| +)(?=\S)")


def split_columns(text: str) -> str:
    """Return a raw text dump with each line laid out in columns split into one line per column.

    A text browser renders an old table layout (a nav column beside the body) or a row of links
    as one line with runs of spaces or ` | ` between the cells; each cell is its own block. Runs
    here before normalisation, which collapses runs of spaces.
    """
    if "   " not in text and "\t" not in text and " | " not in text:
        return text
    return "\n".join(_COLUMN_GAP.sub("\n", line) for line in text.split("\n"))


_UNDERLINED = re.compile(r"(?<=[^\W_])_(?=[^\W_])")
UNDERLINED_LINKS = 5
"""Underscore-joined words (``Dow_Jones_Newswires``) from which a dump is taken as html2text's: links underlined."""


def unline_links(text: str) -> str:
    """Return a dump with underlined link text (html2text draws a link's spaces as ``_``) spelt with spaces.

    Only when the dump has `UNDERLINED_LINKS` such joins or more: an identifier in an article
    (``snake_case``) stays as it is in a dump from any other renderer.
    """
    if text.count("_") < UNDERLINED_LINKS or len(_UNDERLINED.findall(text)) < UNDERLINED_LINKS:
        return text
    return _UNDERLINED.sub(" ", text)


_HEADLINE_END_OK = re.compile(r"""[?!"'”’)]$|[^.:;,]$""")
_SMALL_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "but",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "of",
        "off",
        "on",
        "onto",
        "or",
        "over",
        "per",
        "than",
        "the",
        "to",
        "up",
        "via",
        "vs",
        "with",
    ]
)


def _score(info: LineInfo) -> float:
    """Weight of one line for the densest-run search: prose pulls the body in, chrome pushes it away."""
    if info.footer_prose:
        return -12.0
    if info.credits:
        return 2.0
    if info.prose:
        return 1.0 + min(info.words, 80) / 8.0
    if info.chrome in ("comments", "related"):
        return -6.0  # the start of comments or related links usually ends the article
    if info.chrome is not None:
        return -3.0
    return -1.0 if info.words < 6 else -0.5


COMMENTS_DAMPING = 0.25
"""Prose after the start of a comment thread counts this much: reader comments can outweigh a short article."""
_DAMP_AFTER = 8.0  # prose score that must precede a comments marker for it to open a thread


def _damp_comments(scores: list[float], infos: list[LineInfo]) -> list[float]:
    """Return scores with prose after the first comment-thread marker (following some prose) damped."""
    seen = 0.0
    for i, info in enumerate(infos):
        if (
            info.chrome == "comments"
            and not is_comment_structure(
                info.text
            )  # a heading ("Comments", "Leave a reply"), not a timestamp
            and seen >= _DAMP_AFTER
            # A thread, not a lone "Comments" button: comment headers/timestamps follow closely.
            and sum(is_comment_structure(x.text) for x in infos[i : i + 10]) >= 2
        ):
            return scores[:i] + [v * COMMENTS_DAMPING if v > 0 else v for v in scores[i:]]
        if scores[i] > 0:
            seen += scores[i]
    return scores


CARD_CHAIN = 3
"""Date lines in a row, each within a few lines of the last with at most one prose line between,
that make a list of teaser cards (headline, author, date, one-sentence teaser)."""
_CARD_GAP = 6


def _damp_cards(scores: list[float], infos: list[LineInfo]) -> list[float]:
    """Return scores with the prose of teaser-card lists (related stories, archives) damped.

    An article has one date line and many prose lines after it; a list of cards repeats date
    lines with one teaser sentence each. Damped teasers no longer pull the body into the list.
    """
    dates = [i for i, info in enumerate(infos) if info.chrome == "byline" and is_date_line(info.text)]
    damped = list(scores)
    chain: list[int] = []
    for index in [*dates, len(infos) + _CARD_GAP + 1]:
        if (
            chain
            and index - chain[-1] <= _CARD_GAP
            and sum(infos[j].prose for j in range(chain[-1] + 1, index)) <= 1
        ):
            chain.append(index)
            continue
        if len(chain) >= CARD_CHAIN:
            # From the first card's headline to the last card's teaser.
            for j in range(max(0, chain[0] - 2), min(len(infos), chain[-1] + 3)):
                if damped[j] > 0:
                    damped[j] *= COMMENTS_DAMPING
        chain = [index]
    return damped


TEASER_MAX_WORDS = 60
"""Longest prose line that reads as a teaser below a related-stories heading."""


def _teaser_tail(infos: list[LineInfo], marker: int, end: int) -> bool:
    """True when lines marker+1..end-1 are two or more (headline lines, one short teaser) pairs."""
    pairs, short_lines = 0, 0
    for info in infos[marker + 1 : end]:
        if not info.prose:
            short_lines += 1
            continue
        if short_lines == 0 or info.words > TEASER_MAX_WORDS:
            return False  # two prose lines in a row, or a long one: article text, not teasers
        pairs += 1
        short_lines = 0
    return pairs >= 2 and short_lines == 0


def _cut_teaser_tail(scores: list[float], infos: list[LineInfo], start: int, end: int) -> int:
    """Return the run's end, cut at a related/comments heading that only headline-teaser pairs follow."""
    seen = 0.0
    for i in range(start, end):
        if infos[i].chrome in ("related", "comments") and seen >= _DAMP_AFTER and _teaser_tail(infos, i, end):
            return i
        seen += max(scores[i], 0.0)
    return end


def _densest_run(scores: list[float]) -> tuple[int, int]:
    """Return (start, end) of the maximum-sum run of `scores`, end exclusive (Kadane)."""
    best, best_span = float("-inf"), (0, 0)
    total, start = 0.0, 0
    for i, value in enumerate(scores):
        if total <= 0:
            total, start = value, i
        else:
            total += value
        if total > best:
            best, best_span = total, (start, i + 1)
    return best_span


def _headline_score(info: LineInfo) -> float:
    """How much a line before the body looks like a headline (0 when it cannot be one)."""
    if info.chrome is not None or info.footer_prose or info.credits:
        return 0.0
    if not 3 <= info.words <= 25 or info.alpha_ratio < 0.6:
        return 0.0
    text = info.text
    if text.endswith((".", ",", ";", ":")) and not text.endswith("..."):
        return 0.0
    words = [w for w in text.split() if w[:1].isalpha()]
    if not words:
        return 0.0
    significant = [w for w in words if w.lower() not in _SMALL_WORDS] or words
    capitalised = sum(w[0].isupper() for w in significant) / len(significant)
    score = 1.0 + capitalised
    if 5 <= info.words <= 16:
        score += 0.5
    if not text[:1].isupper() and not text[:1].isdigit() and text[:1] not in "\"'‘“":
        score -= 0.8
    return score


_CONTINUES = re.compile(r"[^.!?:;…。！？\"”’)\]]$")
_CONTINUATION = re.compile(r"^[a-z(\"“‘]|^[0-9]+[a-z]")


def reflow(lines: list[str]) -> list[str]:
    """Return lines with hard-wrapped sentences joined: a long line that stops mid-sentence and a
    next line that starts in lower case are one paragraph."""
    out: list[str] = []
    for line in lines:
        if out and len(out[-1]) >= 30 and _CONTINUES.search(out[-1]) and _CONTINUATION.match(line):
            out[-1] = out[-1] + " " + line
        else:
            out.append(line)
    return out


@dataclass(slots=True)
class DumpLines:
    """The lines of a text dump with their rule features, rule scores, the densest run and the body.

    `start`/`end` span the chosen body runs (the rules' densest run when no run model is given);
    `body` marks the lines of the chosen runs.
    """

    infos: list[LineInfo]
    scores: list[float]
    start: int
    end: int
    body: list[bool]
    rule_span: tuple[int, int]


def dump_lines(text: str, chrome: frozenset[str] = frozenset(), model: LineModel | None = None) -> DumpLines:
    """Return the analysed lines of a normalised text dump and the body runs chosen; pure.

    Without a run model (`model.runs`) the body is the rules' densest run of prose; with one, it is
    the candidate runs (see `candidate_runs`) the model judges to be the article.
    """
    lines = reflow([line for line in unline_links(text).split("\n") if line.strip()])
    infos = [analyse(line) for line in lines]
    if chrome:
        infos = [
            replace(info, chrome="source_boilerplate")
            if info.chrome is None and is_candidate(info) and line_key(info.text) in chrome
            else info
            for info in infos
        ]
    scores = _damp_cards(_damp_comments([_score(info) for info in infos], infos), infos)
    start, end = _densest_run(scores)
    end = _cut_teaser_tail(scores, infos, start, end)
    rule_span = (start, end)
    body = [start <= i < end for i in range(len(infos))]
    runs = candidate_runs(infos) if model is not None and model.runs is not None else []
    if runs and model is not None and model.runs is not None:
        rows = run_features(infos, runs, rule_span)
        chosen = [runs[r] for r in model.runs.select(rows, headed_runs(infos, runs))]
        # Headline + teaser pairs below a related-stories heading end a run, as they end the rules' run.
        chosen = [(s, _cut_teaser_tail(scores, infos, s, e)) for s, e in chosen]
        chosen = [(s, e) for s, e in chosen if e > s] or [rule_span]
        body = [False] * len(infos)
        for run_start, run_end in chosen:
            body[run_start:run_end] = [True] * (run_end - run_start)
        start, end = chosen[0][0], chosen[-1][1]
    return DumpLines(infos=infos, scores=scores, start=start, end=end, body=body, rule_span=rule_span)


def _keep(dump: DumpLines, model: LineModel | None) -> list[bool]:
    """Which lines are article text: the chosen runs' lines, corrected by the learned line model."""
    run_keep = [b and info.chrome is None for b, info in zip(dump.body, dump.infos, strict=True)]
    if model is None:
        return run_keep
    rows = line_features(dump.infos, dump.scores, dump.body)
    keep = model.decide(run_keep, model.probabilities(rows))
    # Wire credits inside the body stay: they are the article's, and `credits` is read from them.
    return [k or (rule and info.credits) for k, rule, info in zip(keep, run_keep, dump.infos, strict=True)]


STANDFIRST_WORDS = 10
"""Words from which a line before the body that the body repeats is a standfirst, never the headline."""


def _headline(dump: DumpLines, keep: list[bool], model: LineModel | None) -> int | None:
    """Return the index of the headline line: the model's most likely candidate, else the rules' pick."""
    infos, start = dump.infos, dump.start
    if model is not None and model.headline is not None:
        body_text = "\n".join(info.text for info, k in zip(infos, keep, strict=True) if k)
        folded_body = fold(body_text)
        candidates = [
            i
            for i in headline_candidates(infos, start, dump.end)
            # A standfirst that the lead repeats word for word is a teaser, not the headline.
            if not (
                keep[i] is False and infos[i].words >= STANDFIRST_WORDS and fold(infos[i].text) in folded_body
            )
        ]
        if not candidates:
            return None
        p = model.headline.probabilities(headline_features(infos, candidates, start, body_text))
        return candidates[max(range(len(p)), key=p.__getitem__)]
    scored = [(_headline_score(info), i) for i, info in enumerate(infos[:start])]
    scored = [(s, i) for s, i in scored if s > 0]
    if not scored:
        return None
    best = max(s for s, _ in scored)
    # Several equally good candidates: the one nearest the body is the article's own.
    return max(i for s, i in scored if s >= best - 1e-9)


def extract_text_dump(  # noqa: PLR0912  # title, section and audit are decided in one pass over lines
    text: str,
    title_hint: str | None,
    chrome: frozenset[str] = frozenset(),
    options: CleanOptions | None = None,
) -> Extraction:
    """Return the article of a normalised text dump: body lines, title and metadata; pure.

    Lines whose key is in `chrome` (learned source boilerplate) count as chrome, reason
    `source_boilerplate`, unless generic rules already name a reason; prose is never learned chrome.
    Each line is then judged by the learned line model (see `linemodel`) over its features.
    """
    options = options or CleanOptions()
    model = None
    if options.use_line_model:
        model = options.line_model if options.line_model is not None else load_model()
    dump = dump_lines(text, chrome, model)
    infos, start, end = dump.infos, dump.start, dump.end
    extraction = Extraction(paragraphs=[])
    if start == end:
        return extraction
    keep = _keep(dump, model)

    head = infos[:start]
    title_index: int | None = None
    if title_hint:
        wanted = fold(title_hint)
        for i, info in enumerate(infos):
            if wanted and fold(info.text) == wanted:
                title_index = i
                break
        extraction.title = title_hint.strip() or None
    else:
        title_index = _headline(dump, keep, model)
        if title_index is not None:
            names = frozenset(fold(info.text) for info in infos if 1 <= info.words <= 6)
            extraction.title = (
                infos[title_index].text if model is None else trim_headline(infos[title_index].text, names)
            )
    if title_index is not None and title_index > 0:
        previous = infos[title_index - 1]
        if (
            1 <= previous.words <= 3
            and previous.chrome in (None, "nav")
            and previous.alpha_ratio > 0.8
            and not previous.sentence_end
            and previous.text[:1].isupper()
            and fold(previous.text) not in {"home", "menu", "search", "connect with us", "news"}
        ):
            extraction.section = previous.text

    for i, info in enumerate(infos):
        if i == title_index:
            if keep[i] or start <= i < end:
                extraction.removed.append(("title", info.text))
        elif keep[i]:
            extraction.paragraphs.append(info.text)
        else:
            reason = info.chrome or ("footer" if (i >= end or info.footer_prose) else "chrome")
            extraction.removed.append((reason, info.text))

    meta_lines = [info.text for info in head] + [info.text for info in infos[end:]][:5]
    extraction.authors = find_authors(meta_lines)
    extraction.published_at, extraction.updated_at = find_dates(meta_lines)
    return extraction
