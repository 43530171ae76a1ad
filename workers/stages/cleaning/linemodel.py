"""A small learned model over line features of text dumps: is this line article text?

The rules of `textdump` (prose lines, chrome cues, the densest run of prose) are features here,
beside generic statistics of the line and its neighbourhood (length, punctuation, stopword share,
capitalisation, digits, link-like tokens, position, repetition within the page). A logistic
regression over them is trained by `bench/train_clean.py` on the benchmark's pages, rendered by
more than one program, and shipped as plain JSON (`line_model.json`: feature names, scaling,
coefficients, thresholds, the held-out score it reached): no pickle, loaded once per process.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from workers.stages.cleaning.lines import LineInfo, fold, is_date_line

MODEL_PATH = Path(__file__).with_name("line_model.json")

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
class LineModel:
    """Logistic regression over `FEATURES`: standardisation, weights, bias and two thresholds.

    The model corrects the rules rather than replacing them: a line the rules keep is dropped when
    its probability is below `drop_below`, a line they drop is kept when it reaches `add_from`.
    """

    version: str
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    drop_below: float
    add_from: float

    def decide(self, rule_keep: list[bool], probabilities: list[float]) -> list[bool]:
        """Return which lines are article text, from the rules' verdicts and the model's probabilities."""
        return [
            p >= self.drop_below if kept else p >= self.add_from
            for kept, p in zip(rule_keep, probabilities, strict=True)
        ]

    def probabilities(self, rows: list[list[float]]) -> list[float]:
        """Return P(article line) for each feature row."""
        out = []
        for row in rows:
            z = self.intercept
            for x, m, s, w in zip(row, self.mean, self.scale, self.coef, strict=True):
                z += w * (x - m) / s
            out.append(1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))))
        return out


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


@lru_cache(maxsize=1)
def load_model() -> LineModel:
    """Return the shipped line model, read once per process."""
    return model_from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))


def _shares(text: str) -> tuple[float, float, float, float]:
    words = _WORD.findall(text)
    n = len(words) or 1
    stop = sum(w.casefold() in _STOPWORDS for w in words) / n
    capitalised = sum(w[:1].isupper() for w in words) / n
    digits = sum(map(str.isdigit, text)) / (len(text) or 1)
    commas = (text.count(",") + text.count(";")) / n
    return stop, capitalised, digits, commas


def line_features(infos: list[LineInfo], scores: list[float], start: int, end: int) -> list[list[float]]:
    """Return one feature row (in `FEATURES` order) per line of a text dump; pure.

    `scores` are the rule scores of the lines and [start, end) the densest run they select.
    """
    n = len(infos)
    counts = Counter(fold(info.text) for info in infos)
    prose = [float(info.prose) for info in infos]
    chrome = [float(info.chrome is not None) for info in infos]
    logw = [math.log1p(info.words) for info in infos]

    def window(values: list[float], i: int, k: int) -> float:
        lo, hi = max(0, i - k), min(n, i + k + 1)
        return (sum(values[lo:hi]) - values[i]) / max(1, hi - lo - 1)

    rows = []
    for i, info in enumerate(infos):
        text = info.text
        stop, capitalised, digits, commas = _shares(text)
        in_run = start <= i < end
        distance = 0 if in_run else (start - i if i < start else i - end + 1)
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
                float(bool(_URLISH.search(text))),
                float(bool(_BULLET.match(text))),
                min(5, len(_SEPARATORS.findall(text))) / 5,
                i / max(1, n - 1),
                float(info.words <= 12 and is_date_line(text)),
                float(counts[fold(text)] > 1 and info.words >= 1),
                float(in_run),
                min(distance, 50) / 50,
                max(-12.0, min(12.0, scores[i])) / 12,
                window(prose, i, _WINDOW),
                window(logw, i, _WINDOW),
                window(prose, i, _WIDE),
                window(chrome, i, _WINDOW),
                float(text.startswith(("[", "(")) and text.endswith(("]", ")"))),
            ]
        )
    return rows
