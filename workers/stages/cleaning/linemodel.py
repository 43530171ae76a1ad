"""Small learned models over text dumps: which runs of lines are the article, which lines, which headline.

The rules of `textdump` (prose lines, chrome cues, the densest run of prose) are features here,
beside generic statistics that carry across renderers and eras (length, punctuation, stopword
share, capitalisation, digits, link-like tokens, position, repetition within the page). Three
logistic regressions over them are trained by `bench/train_clean.py` on the AEB pages rendered by
w3m, lynx and html2text: the run model judges candidate runs of lines against the page's other runs,
the line model corrects the chosen runs line by line, the headline model picks the headline among
the lines before the body (and the body's first lines); the headline model is also trained on
wcxb-dev's w3m dumps and true titles (CC BY 4.0, Murrough Foley 2026; attribution in the file). They ship as plain JSON (`line_model.json`, `run_model.json`: feature
names, scaling, coefficients, thresholds, the held-out score reached): no pickle, loaded once per
process.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from workers.stages.cleaning.lines import LineInfo, fold, is_date_line

MODEL_PATH = Path(__file__).with_name("line_model.json")
RUN_MODEL_PATH = Path(__file__).with_name("run_model.json")

# The commonest function words of English (and a few of French, Spanish, German, Italian,
# Portuguese): their share tells running prose from lists of names, menus and headlines.
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "he",
        "she",
        "they",
        "we",
        "you",
        "his",
        "her",
        "their",
        "our",
        "who",
        "which",
        "what",
        "not",
        "will",
        "would",
        "can",
        "could",
        "said",
        "says",
        "than",
        "then",
        "there",
        "also",
        "after",
        "before",
        "over",
        "into",
        "about",
        "more",
        "new",
        "one",
        "le",
        "la",
        "les",
        "de",
        "des",
        "du",
        "et",
        "est",
        "un",
        "une",
        "que",
        "qui",
        "dans",
        "pour",
        "el",
        "los",
        "las",
        "y",
        "en",
        "por",
        "con",
        "del",
        "es",
        "une",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "ein",
        "eine",
        "nicht",
        "mit",
        "il",
        "di",
        "che",
        "e",
        "per",
        "non",
        "o",
        "do",
        "da",
        "os",
        "as",
        "em",
    ]
)
_WORD = re.compile(r"\w+")
_URLISH = re.compile(r"https?://|www\.|\.com\b|\.org\b|\.net\b|@\w")
_BULLET = re.compile(r"^(?:[•*·▪◦‣○●■□–-]|\d{1,2}[.)]|\[\d+\])\s")
_SEPARATORS = re.compile(r"\s[|»›/·•]\s|\s[|]\s?|[|]")
_WINDOW = 3
_WIDE = 8

FEATURES = (
    "log_words",
    "log_chars",
    "sentence_end",
    "alpha_ratio",
    "prose",
    "chrome",
    "chrome_break",
    "footer_prose",
    "credits",
    "stopword_share",
    "capitalised_share",
    "digit_share",
    "comma_per_word",
    "urlish",
    "bullet",
    "separators",
    "position",
    "date_line",
    "repeated_in_page",
    "in_run",
    "run_distance",
    "rule_score",
    "near_prose",
    "near_words",
    "wide_prose",
    "near_chrome",
    "bracketed",
)


@dataclass(frozen=True, slots=True)
class Logistic:
    """A logistic regression over standardised features: P(yes) of each feature row; pure."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float

    def probabilities(self, rows: list[list[float]]) -> list[float]:
        """Return P(yes) for each feature row."""
        out = []
        for row in rows:
            z = self.intercept
            for x, m, s, w in zip(row, self.mean, self.scale, self.coef, strict=True):
                z += w * (x - m) / s
            out.append(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))))
        return out


THREAD_RUNS = 2
"""Later runs, each right after a comment header, that make a comment thread (see `RunModel.select`)."""


@dataclass(frozen=True, slots=True)
class RunModel:
    """Which candidate runs of a dump are the article: the most likely one, and any run at `keep_from`.

    With `drop_threads`, runs after the most likely one that each follow a comment header (a short
    line with a name and a date or time, see `_stamp`) are dropped when there are `THREAD_RUNS` or
    more of them: reader comments are prose too, and an article run is not headed by a timestamp.
    """

    version: str
    logistic: Logistic
    keep_from: float
    drop_threads: bool = True

    def select(self, rows: list[list[float]], headed: list[bool] | None = None) -> list[int]:
        """Return the indexes of the chosen runs (never empty when there is a run), in page order.

        `headed[r]` is True when run r follows a comment header.
        """
        if not rows:
            return []
        p = self.logistic.probabilities(rows)
        best = max(range(len(p)), key=p.__getitem__)
        chosen = [i for i, v in enumerate(p) if v >= self.keep_from or i == best]
        if self.drop_threads and headed is not None:
            thread = [i for i in chosen if i > best and headed[i]]
            if len(thread) >= THREAD_RUNS:
                chosen = [i for i in chosen if i not in thread]
        return chosen


@dataclass(frozen=True, slots=True)
class LineModel:
    """Logistic regression over `FEATURES`: standardisation, weights, bias and two thresholds.

    The model corrects the chosen runs rather than replacing them: a line inside them is dropped
    when its probability is below `drop_below`, a line outside is kept when it reaches `add_from`.
    `runs` (the run model) and `headline` (the headline model, over `HEADLINE_FEATURES`) travel
    with it, so a benchmark swaps all three at once (`CleanOptions.line_model`).
    """

    version: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    drop_below: float
    add_from: float
    runs: RunModel | None = None
    headline: Logistic | None = None

    def decide(self, rule_keep: list[bool], probabilities: list[float]) -> list[bool]:
        """Return which lines are article text, from the runs' verdicts and the model's probabilities."""
        return [
            p >= self.drop_below if kept else p >= self.add_from
            for kept, p in zip(rule_keep, probabilities, strict=True)
        ]

    def probabilities(self, rows: list[list[float]]) -> list[float]:
        """Return P(article line) for each feature row."""
        return Logistic(self.mean, self.scale, self.coef, self.intercept).probabilities(rows)


def model_from_json(data: dict[str, object]) -> LineModel:
    """Return the model of a parsed `line_model.json`; raises ValueError if it does not fit `FEATURES`."""
    if tuple(data.get("features", ())) != FEATURES:  # type: ignore[arg-type]
        raise ValueError("line model features differ from the code's FEATURES")

    def floats(key: str) -> tuple[float, ...]:
        values = data[key]
        if not isinstance(values, list) or len(values) != len(FEATURES):
            raise ValueError(f"line model field {key} must list one number per feature")
        return tuple(float(v) for v in values)

    return LineModel(
        version=str(data["version"]),
        mean=floats("mean"),
        scale=tuple(s if s > 0 else 1.0 for s in floats("scale")),
        coef=floats("coef"),
        intercept=float(data["intercept"]),  # type: ignore[arg-type]
        drop_below=float(data["drop_below"]),  # type: ignore[arg-type]
        add_from=float(data["add_from"]),  # type: ignore[arg-type]
    )


def logistic_from_json(data: dict[str, object], features: tuple[str, ...]) -> Logistic:
    """Return the logistic regression of a parsed model section; ValueError if it does not fit `features`."""
    if tuple(data.get("features", ())) != features:  # type: ignore[arg-type]
        raise ValueError("model features differ from the code's feature list")

    def floats(key: str) -> tuple[float, ...]:
        values = data[key]
        if not isinstance(values, list) or len(values) != len(features):
            raise ValueError(f"model field {key} must list one number per feature")
        return tuple(float(v) for v in values)

    return Logistic(
        mean=floats("mean"),
        scale=tuple(s if s > 0 else 1.0 for s in floats("scale")),
        coef=floats("coef"),
        intercept=float(data["intercept"]),  # type: ignore[arg-type]
    )


def runs_from_json(data: dict[str, object], lenient: bool = False) -> tuple[RunModel, Logistic]:
    """Return the run model and the headline model of a parsed `run_model.json`; ValueError if they do not fit.

    `lenient` skips the headline section (an empty model comes back): for `bench/train_clean.py --headline-only`.
    """
    runs, headline = data.get("runs"), data.get("headline")
    if not isinstance(runs, dict) or not isinstance(headline, dict):
        raise ValueError("run model file needs a runs and a headline section")  # noqa: TRY004  # bad file content, not a caller's type error
    run_model = RunModel(
        version=str(data["version"]),
        logistic=logistic_from_json(runs, RUN_FEATURES),
        keep_from=float(runs["keep_from"]),
        drop_threads=bool(runs.get("drop_threads", True)),
    )
    if lenient:  # the trainer refitting the headline model reads the run model alone
        return run_model, Logistic((), (), (), 0.0)
    return run_model, logistic_from_json(headline, HEADLINE_FEATURES)


@lru_cache(maxsize=1)
def load_model() -> LineModel:
    """Return the shipped line model with its run and headline models, read once per process."""
    lines = model_from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))
    runs, headline = runs_from_json(json.loads(RUN_MODEL_PATH.read_text(encoding="utf-8")))
    return replace(lines, runs=runs, headline=headline)


def _shares(text: str) -> tuple[float, float, float, float]:
    words = _WORD.findall(text)
    n = len(words) or 1
    stop = sum(w.casefold() in _STOPWORDS for w in words) / n
    capitalised = sum(w[:1].isupper() for w in words) / n
    digits = sum(map(str.isdigit, text)) / (len(text) or 1)
    commas = (text.count(",") + text.count(";")) / n
    return stop, capitalised, digits, commas


def line_features(infos: list[LineInfo], scores: list[float], body: list[bool]) -> list[list[float]]:
    """Return one feature row (in `FEATURES` order) per line of a text dump; pure.

    `scores` are the rule scores of the lines and `body` marks the lines of the chosen runs.
    """
    n = len(infos)
    counts = Counter(fold(info.text) for info in infos)
    prose = [float(info.prose) for info in infos]
    chrome = [float(info.chrome is not None) for info in infos]
    logw = [math.log1p(info.words) for info in infos]
    distance = _distances(body)

    def window(values: list[float], i: int, k: int) -> float:
        lo, hi = max(0, i - k), min(n, i + k + 1)
        return (sum(values[lo:hi]) - values[i]) / max(1, hi - lo - 1)

    rows = []
    for i, info in enumerate(infos):
        text = info.text
        stop, capitalised, digits, commas = _shares(text)
        rows.append(
            [
                logw[i],
                math.log1p(len(text)),
                float(info.sentence_end),
                info.alpha_ratio,
                prose[i],
                chrome[i],
                float(info.chrome in ("comments", "related")),
                float(info.footer_prose),
                float(info.credits),
                stop,
                capitalised,
                digits,
                commas,
                float(_link_like(text)),
                float(bool(_BULLET.match(text))),
                min(5, len(_SEPARATORS.findall(text))) / 5,
                i / max(1, n - 1),
                float(info.words <= 12 and is_date_line(text)),
                float(counts[fold(text)] > 1 and info.words >= 1),
                float(body[i]),
                min(distance[i], 50) / 50,
                max(-12.0, min(12.0, scores[i])) / 12,
                window(prose, i, _WINDOW),
                window(logw, i, _WINDOW),
                window(prose, i, _WIDE),
                window(chrome, i, _WINDOW),
                float(text.startswith(("[", "(")) and text.endswith(("]", ")"))),
            ]
        )
    return rows


def _distances(body: list[bool]) -> list[int]:
    """Lines from each line to the nearest body line (0 inside the body; large when there is none)."""
    far = 10**6
    out = [0 if b else far for b in body]
    for i in range(1, len(out)):
        out[i] = min(out[i], out[i - 1] + 1)
    for i in range(len(out) - 2, -1, -1):
        out[i] = min(out[i], out[i + 1] + 1)
    return out


# --- runs of lines -----------------------------------------------------------------------------

RUN_GAP = 3
"""Most non-prose lines between two prose lines of one candidate run."""

RUN_FEATURES = (
    "log_words",
    "log_prose_words",
    "log_prose_lines",
    "prose_share",
    "stopword_share",
    "sentence_share",
    "comma_per_word",
    "capitalised_share",
    "digit_share",
    "chrome_share",
    "link_share",
    "date_lines",
    "repeated_share",
    "words_per_prose_line",
    "start",
    "end",
    "relative_size",
    "largest",
    "in_rule_run",
    "after_comments",
    "index_from_largest",
    "neighbour_size",
    "before_share",
    "stamp_share",
    "stamps_before",
)


def candidate_runs(infos: list[LineInfo], gap: int = RUN_GAP) -> list[tuple[int, int]]:
    """Return the candidate body runs of a dump, (start, end) with end exclusive; pure.

    A run starts and ends on a prose (or credits) line; prose lines at most `gap` lines apart
    belong to one run, so a caption, an ad or a subheading inside an article does not split it.
    """
    runs: list[tuple[int, int]] = []
    start, last = -1, -(gap + 2)
    for i, info in enumerate(infos):
        if not (info.prose or info.credits):
            continue
        if start >= 0 and i - last <= gap:
            last = i
            continue
        if start >= 0:
            runs.append((start, last + 1))
        start = last = i
    if start >= 0:
        runs.append((start, last + 1))
    return runs


_TIME_OR_DATE = re.compile(
    r"\b\d{1,2}:\d{2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b|"
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b|"
    r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
    re.I,
)


_SIGNED = re.compile(r"\s(?:says|said|wrote|commented)\s?:$|\bago$", re.I)


def _stamp(info: LineInfo) -> bool:
    """A short line with a date or a time: a comment's or a card's header ("Jon H 11.06.12 at 5:47 pm")."""
    return info.words <= 15 and bool(_TIME_OR_DATE.search(info.text) or _SIGNED.search(info.text))


def headed_runs(infos: list[LineInfo], runs: list[tuple[int, int]]) -> list[bool]:
    """For each run, True when one of the three lines before it is a comment or card header."""
    return [any(_stamp(info) for info in infos[max(0, start - 3) : start]) for start, _end in runs]


def _link_like(text: str) -> bool:
    return bool(_URLISH.search(text) or _BULLET.match(text) or _SEPARATORS.search(text) or "_" in text)


def run_features(
    infos: list[LineInfo], runs: list[tuple[int, int]], rule_span: tuple[int, int]
) -> list[list[float]]:
    """Return one feature row (in `RUN_FEATURES` order) per candidate run of a dump; pure.

    The features describe the run's prose (density, punctuation, stopwords, link-like lines,
    repetition) and its place among the page's other runs (position, size beside the largest
    run, whether a comment thread opened before it); `rule_span` is the rules' densest run.
    """
    n = max(1, len(infos))
    counts = Counter(fold(info.text) for info in infos)
    prose_words = [sum(infos[i].words for i in range(s, e) if infos[i].prose) for s, e in runs]
    largest = max(range(len(runs)), key=lambda r: prose_words[r]) if runs else 0
    top = max(prose_words, default=1) or 1
    total_prose = sum(prose_words) or 1
    comments_at = next(
        (
            i
            for i, info in enumerate(infos)
            if info.chrome == "comments" and i > (runs[largest][0] if runs else 0)
        ),
        n + 1,
    )
    stamps = [_stamp(info) for info in infos]
    stamps_before = [0] * (n + 1)
    for i, stamp in enumerate(stamps):
        stamps_before[i + 1] = stamps_before[i] + stamp
    rows = []
    for r, (s, e) in enumerate(runs):
        lines = infos[s:e]
        words = sum(info.words for info in lines) or 1
        prose_lines = [info for info in lines if info.prose]
        stop = capitalised = digits = commas = 0.0
        for info in lines:
            st, ca, di, co = _shares(info.text)
            stop += st * info.words
            capitalised += ca * info.words
            digits += di * info.words
            commas += co * info.words
        overlap = max(0, min(e, rule_span[1]) - max(s, rule_span[0])) / (e - s)
        neighbours = [prose_words[j] for j in (r - 1, r + 1) if 0 <= j < len(runs)]
        rows.append(
            [
                math.log1p(words),
                math.log1p(prose_words[r]),
                math.log1p(len(prose_lines)),
                prose_words[r] / words,
                stop / words,
                sum(info.sentence_end for info in lines) / len(lines),
                commas / words,
                capitalised / words,
                digits / words,
                sum(info.chrome is not None for info in lines) / len(lines),
                sum(_link_like(info.text) for info in lines) / len(lines),
                min(5, sum(info.words <= 12 and is_date_line(info.text) for info in lines)) / 5,
                sum(counts[fold(info.text)] > 1 for info in lines) / len(lines),
                math.log1p(prose_words[r] / max(1, len(prose_lines))),
                s / n,
                e / n,
                prose_words[r] / top,
                float(r == largest),
                overlap,
                float(s > comments_at),
                min(5, abs(r - largest)) / 5,
                max(neighbours, default=0) / top,
                sum(prose_words[:r]) / total_prose,
                (stamps_before[e] - stamps_before[max(0, s - 3)]) / (e - max(0, s - 3)),
                min(10, stamps_before[s]) / 10,
            ]
        )
    return rows


# --- the headline --------------------------------------------------------------------------------

HEADLINE_WINDOW = 60
"""Lines before the body that may hold the headline; the first `HEADLINE_IN_BODY` body lines may too.

Measured on wcxb-dev's w3m dumps: a title line sits up to 60 lines above the chosen body (menus
rendered twice), or a few lines inside it when the run starts at a teaser or a breadcrumb."""
HEADLINE_IN_BODY = 6
_BYLINE = re.compile(r"^(?:by|von|par|por|di|door|written by|posted by|posted|published|updated)\b", re.I)
_MONTH = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b|"
    r"\b\d{1,2}:\d{2}\b|\b(?:19|20)\d{2}-\d{2}-\d{2}",
    re.I,
)
_SMALL = frozenset(
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
        "on",
        "or",
        "the",
        "to",
        "up",
        "via",
        "vs",
        "with",
    ]
)

HEADLINE_FEATURES = (
    "log_words",
    "short",
    "long",
    "capitalised",
    "starts_upper",
    "ends_stop",
    "ends_question",
    "alpha_ratio",
    "digit_share",
    "chrome",
    "prose",
    "byline",
    "date_like",
    "link_like",
    "repeated_in_page",
    "stopword_share",
    "before_body",
    "distance",
    "order_from_body",
    "body_overlap",
    "body_overlap_lead",
    "longest_nearby",
    "all_caps",
    "nav_arrow",
    "trimmed",
    "page_repeats",
    "echoed",
    "page_position",
)


_LEADING_MARKS = re.compile(r"^(?:[•□■▪◦·*>›»‹«←→|-]+\s*)+")
_CRUMBS = re.compile(r"\s(?:>|»|›|/|\\)\s")
_TRAILING_BYLINE = re.compile(
    r"\s+(?:by\s+\S.{0,50}?\s+on\s+\S.*|by\s+\S.{0,50}?\s·\s.*|comments?\s*\(\d+\).*|·\s.*|\|\s.*)$", re.I
)


_SITE_SUFFIX = re.compile(r"^(.+?\S)\s+[-–—|:]\s+(\S.*)$")


def trim_site_suffix(text: str, names: frozenset[str]) -> str:
    """Return a title line without a trailing " - Site" part that the page also shows as a line of its own.

    `names` are the folded lines of the page ("Seaside Gazette"): a suffix is only cut on that
    evidence, so "Apple unveils a phone – and a watch" keeps its second half.
    """
    match = _SITE_SUFFIX.match(text)
    while match and fold(match.group(2)) in names and len(match.group(1).split()) >= 2:
        text = match.group(1)
        match = _SITE_SUFFIX.match(text)
    return text


def trim_headline(text: str, names: frozenset[str] = frozenset()) -> str:
    """Return a headline line without a leading bullet or arrow, breadcrumbs, a trailing byline or site name.

    Text browsers put inline neighbours on the headline's line: "Home > Title", "• Title",
    "Title by Marie on October 30, 2012 · Leave a Comment"; a page's title line ends with the
    site's name, cut when the page shows that name as a line of its own (`names`, folded lines).
    The rest is returned unchanged.
    """
    trimmed = trim_site_suffix(_LEADING_MARKS.sub("", text).strip(), names)
    parts = [part for part in _CRUMBS.split(trimmed) if part.strip()]
    if len(parts) > 1 and len(parts[-1].split()) >= 2:
        trimmed = parts[-1].strip()
    trimmed = _TRAILING_BYLINE.sub("", trimmed).strip()
    return trimmed if len(trimmed.split()) >= 1 and fold(trimmed) else text


def headline_candidates(infos: list[LineInfo], start: int, end: int) -> list[int]:
    """Return the line indexes that may be the headline: the lines just before the body, and its first lines."""
    lo = max(0, start - HEADLINE_WINDOW)
    inside = range(start, min(end, start + HEADLINE_IN_BODY))
    return [
        i
        for i in [*range(lo, start), *inside]
        if 1 <= infos[i].words <= 40
        and fold(infos[i].text)
        and not (infos[i].prose and infos[i].text.endswith("."))  # a sentence of prose is no headline
    ]


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS and not w.isdigit()]


def _echoes(infos: list[LineInfo], candidates: list[int]) -> dict[int, int]:
    """For each candidate of three words or more, how many longer lines of the page hold it.

    A page repeats its title inside other lines (an image's alt text, "Share <title> on X", a
    breadcrumb trail, a "<title> | Site" line): a line others hold is the page's name for itself.
    """
    folded = [f" {fold(info.text)} " for info in infos]
    out = {}
    for i in candidates:
        own = folded[i]
        if infos[i].words < 3 or len(own) < 12:
            out[i] = 0
            continue
        out[i] = sum(1 for j, other in enumerate(folded) if j != i and len(other) > len(own) and own in other)
    return out


def headline_features(
    infos: list[LineInfo], candidates: list[int], start: int, body_text: str
) -> list[list[float]]:
    """Return one feature row (in `HEADLINE_FEATURES` order) per candidate line; pure.

    The headline is a short title- or sentence-case line near the body, not a byline or a date,
    not a menu or a line the page repeats, and its words come back in the article (its lead most);
    other lines of the page often hold it (alt texts, share links, breadcrumbs).
    """
    counts = Counter(fold(infos[i].text) for i in candidates)
    page_counts = Counter(fold(info.text) for info in infos)
    echoes = _echoes(infos, candidates)
    n = max(1, len(infos) - 1)
    body_words = set(_content_words(body_text))
    lead_words = set(_content_words(body_text[:600]))
    longest = max((infos[i].words for i in candidates), default=1) or 1
    rows = []
    order_of = {i: k for k, i in enumerate(reversed([c for c in candidates if c < start]))}
    for i in candidates:
        info = infos[i]
        text = info.text
        words = [w for w in text.split() if w[:1].isalpha()]
        significant = [w for w in words if w.lower() not in _SMALL] or words or [""]
        capitalised = sum(w[:1].isupper() for w in significant) / len(significant)
        stop, _cap, digits, _commas = _shares(text)
        content = _content_words(text)
        overlap = sum(w in body_words for w in content) / len(content) if content else 0.0
        lead = sum(w in lead_words for w in content) / len(content) if content else 0.0
        letters = [c for c in text if c.isalpha()]
        rows.append(
            [
                math.log1p(info.words),
                float(info.words < 3),
                float(info.words > 25),
                capitalised,
                float(text[:1].isupper() or text[:1].isdigit() or text[:1] in "\"'‘“"),
                float(text.endswith((".", ",", ";", ":")) and not text.endswith("...")),
                float(text.endswith(("?", "!"))),
                info.alpha_ratio,
                digits,
                float(info.chrome is not None),
                float(info.prose),
                float(bool(_BYLINE.match(text))),
                float(bool(_MONTH.search(text)) or is_date_line(text)),
                float(_link_like(text)),
                float(counts[fold(text)] > 1),
                stop,
                float(i < start),
                math.log1p(abs(start - i)),
                min(order_of.get(i, 0), 20) / 20,
                overlap,
                lead,
                info.words / longest,
                float(bool(letters) and all(c.isupper() for c in letters)),
                float(text[:1] in "«‹←<»›→>" or text.endswith(("»", "›", "→", ">"))),
                float(trim_headline(text) != text),
                min(3, page_counts[fold(text)] - 1) / 3,
                min(3, echoes[i]) / 3,
                i / n,
            ]
        )
    return rows
