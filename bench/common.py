"""What the clean-stage benches share: the dev sets' loaders, site folds, the AEB benchmark's shingle
scorer, and running the stage on text dumps. The trainers (`train_clean`, `train_ensemble`) and the
evaluators (`clean_eval`, `textdump_eval`) import this module; a trainer never imports an evaluator.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from schemas.raw import RawArticle
from workers.core.errors import PermanentError
from workers.stages.clean import clean
from workers.stages.cleaning.extraction import CleanOptions

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks"

BENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "scrapinghub-aeb"


FOLDS = 5


def site_of(url: str) -> str:
    """The site of a page: its host without a leading www."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def fold_of(site: str, folds: int = FOLDS) -> int:
    """The fold a site belongs to (stable across runs and machines)."""
    return zlib.crc32(site.encode("utf-8")) % folds


def load_benchmark() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Return (truth, html, site) keyed by page id."""
    gt = json.loads((BENCH / "ground-truth.json").read_text(encoding="utf-8"))
    truth = {key: item.get("articleBody", "") for key, item in gt.items()}
    html = {
        key: gzip.decompress((BENCH / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8") for key in gt
    }
    sites = {key: site_of(item.get("url", "")) for key, item in gt.items()}
    return truth, html, sites


def load_dragnet() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Return (truth, html, site) of dragnet-dev keyed by page id (for measuring only: AGPL data)."""
    base = SHARED / "dragnet-dev"
    gt = json.loads((base / "ground-truth.json").read_text(encoding="utf-8"))
    truth = {key: item.get("articleBody", "") for key, item in gt.items()}
    html = {
        key: gzip.decompress((base / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8") for key in gt
    }
    sites = {key: str(item.get("site", "")) for key, item in gt.items()}
    return truth, html, sites


_TOKEN = re.compile(r"\w+")


Scores = tuple[float, float, float]


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    """Return the multiset of token n-gram shingles of a text (the benchmark's tokenisation)."""
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def tp_fp_fn(true: str, pred: str) -> Scores:
    """Return one page's shingle tp, fp, fn, normalised to sum 1 (all 0 when both are empty)."""
    a, b = shingles(true), shingles(pred)
    tp = sum((a & b).values())
    fp = sum((b - a).values())
    fn = sum((a - b).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def summarise(pages: list[Scores]) -> dict[str, float]:
    """Return precision, recall, F1 as the benchmark computes them, plus mean per-page F1 (empty = 0)."""
    precisions = [1.0 if fp == fn == 0 else tp / (tp + fp) for tp, fp, fn in pages if tp + fp > 0]
    recalls = [1.0 if fp == fn == 0 else tp / (tp + fn) for tp, fp, fn in pages if tp + fn > 0]
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    per_page = [2 * tp / (2 * tp + fp + fn) if tp else 0.0 for tp, fp, fn in pages]
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "page_f1": sum(per_page) / len(per_page),
        "empty": float(sum(1 for tp, fp, _ in pages if tp + fp == 0)),
    }


def score_text_dumps(bodies: dict[str, str], options_for: Callable[[str], CleanOptions]) -> dict[str, str]:
    """Run our stage on every text dump with the options `options_for(page id)` gives; text out."""
    out = {}
    for key, body in bodies.items():
        try:
            raw = RawArticle(source="bench", body=body, content_type="text/plain")
            out[key] = clean(raw, "0" * 32, options=options_for(key)).text
        except PermanentError:
            out[key] = ""
    return out


PAGE_KINDS = ("article", "service", "product", "collection", "forum", "listing", "documentation")
"""wcxb-dev's page kinds (`page_type`), article first."""


def load_wcxb() -> tuple[dict[str, dict[str, object]], dict[str, str]]:
    """Return (truth, html) of wcxb-dev keyed by page id. Each truth record is the set's own:
    `articleBody`, `url`, `site` (the domain: fold by it), `page_type` (one of `PAGE_KINDS`), `title`,
    `author`, `publish_date` (may be None), `with` / `without` snippets. CC BY 4.0: see its WCXB-DEV.md
    for the attribution a model trained on it must carry."""
    base = SHARED / "wcxb-dev"
    truth = json.loads((base / "ground-truth.json").read_text(encoding="utf-8"))
    html = {
        key: gzip.decompress((base / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8", "replace")
        for key in truth
    }
    return truth, html


def load_wcxb_w3m() -> dict[str, str]:
    """wcxb-dev's article pages rendered by w3m (`textdumps-w3m-articles.jsonl.gz`), keyed by page id."""
    path = SHARED / "wcxb-dev" / "textdumps-w3m-articles.jsonl.gz"
    rows = (
        json.loads(line) for line in gzip.decompress(path.read_bytes()).decode("utf-8").splitlines() if line
    )
    return {str(row["page_id"]): str(row["body"]) for row in rows}


def word_f1(true: str, pred: str) -> float:
    """wcxb's own per-page score: lower-cased `\\w+` tokens as multisets, F1 of their overlap (1.0 when
    both are empty, 0.0 when one is)."""
    a = Counter(t.lower() for t in _TOKEN.findall(true or ""))
    b = Counter(t.lower() for t in _TOKEN.findall(pred or ""))
    if not a and not b:
        return 1.0
    overlap = sum((a & b).values())
    if not overlap:
        return 0.0
    p, r = overlap / sum(b.values()), overlap / sum(a.values())
    return 2 * p * r / (p + r)
