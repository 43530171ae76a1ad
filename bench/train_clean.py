"""Train the text-dump line model of the clean stage and print its held-out score (k-fold over sites).

Data: the Scrapinghub article-extraction benchmark in ../shared (181 pages, 126 sites), each page
rendered twice, by `bench/textdump.py` and by w3m (`textdumps-w3m.jsonl.gz`). A line's label is
whether it is article text: half or more of its 4-word shingles (the whole line, when shorter) occur
in the page's ground truth. A scikit-learn logistic regression over `linemodel.FEATURES` is fitted
with sample weights equal to the line's token count (the benchmark scores tokens, not lines); the
decision threshold is chosen on the training pages. Folds split by site: no site is in both the part
a model is trained on and the part it is scored on. The final model is fitted on every page and
written as JSON, with the held-out figures beside it.

    .venv/bin/python bench/train_clean.py            # k-fold figures, then writes line_model.json
    .venv/bin/python bench/train_clean.py --dry-run  # k-fold figures only

Needs scikit-learn (training only; the stage applies the JSON coefficients itself).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.textdump import render  # path set up above
from workers.stages.cleaning.extraction import CleanOptions
from workers.stages.cleaning.linemodel import FEATURES, MODEL_PATH, LineModel, line_features
from workers.stages.cleaning.normalise import normalise_text
from workers.stages.cleaning.textdump import dump_lines, split_columns

BENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "scrapinghub-aeb"
FOLDS = 5
MODEL_VERSION = "line-model-1"
_TOKEN = re.compile(r"\w+")
DROP_BELOW = (0.0, 0.1, 0.2, 0.3)
ADD_FROM = (0.8, 0.9, 0.95, 1.01)


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


def load_w3m() -> dict[str, str]:
    """Return the w3m renderings of the benchmark pages keyed by page id."""
    with gzip.open(BENCH / "textdumps-w3m.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {row["page_id"]: row["body"] for row in rows}


def own_renderings(html: dict[str, str]) -> dict[str, str]:
    """Return the bench's own rendering (`bench/textdump.py`) of every page."""
    return {key: render(body) for key, body in html.items()}


@dataclass
class PageLines:
    """One rendered page as the stage sees it: features per line, labels, token weights, texts."""

    key: str
    rows: list[list[float]]
    labels: list[int]
    weights: list[float]
    texts: list[str]
    rule_keep: list[bool]


def _label(line: str, truth_grams: set[tuple[str, ...]], truth_joined: str) -> int:
    tokens = _TOKEN.findall(line)
    if not tokens:
        return 0
    if len(tokens) < 4:
        return int(f" {' '.join(tokens)} " in truth_joined)
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    return int(sum(g in truth_grams for g in grams) >= 0.5 * len(grams))


def page_lines(key: str, body: str, truth: str) -> PageLines:
    """Return the lines of one rendered page with features and labels, prepared as the stage does."""
    text = normalise_text(split_columns(body))
    dump = dump_lines(text)
    rows = line_features(dump.infos, dump.scores, dump.start, dump.end)
    truth_tokens = _TOKEN.findall(truth)
    grams = {tuple(truth_tokens[i : i + 4]) for i in range(max(0, len(truth_tokens) - 3))}
    joined = " " + " ".join(truth_tokens) + " "
    texts = [info.text for info in dump.infos]
    labels = [_label(t, grams, joined) for t in texts]
    weights = [1.0 + min(100, len(_TOKEN.findall(t))) for t in texts]
    rule_keep = [dump.start <= i < dump.end and info.chrome is None for i, info in enumerate(dump.infos)]
    return PageLines(key=key, rows=rows, labels=labels, weights=weights, texts=texts, rule_keep=rule_keep)


def shingles(text: str) -> Counter[tuple[str, ...]]:
    """The benchmark's multiset of token 4-gram shingles."""
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + 4]) for i in range(max(1, len(tokens) - 3)) if tokens[i : i + 4])


_TRUTH_SHINGLES: dict[str, Counter[tuple[str, ...]]] = {}


def _truth_shingles(text: str) -> Counter[tuple[str, ...]]:
    """Shingles of a ground-truth text, computed once per text (the threshold search reuses them)."""
    if text not in _TRUTH_SHINGLES:
        _TRUTH_SHINGLES[text] = shingles(text)
    return _TRUTH_SHINGLES[text]


def benchmark_f1(pairs: list[tuple[str, str]]) -> float:
    """The benchmark's F1 over (truth, prediction) pairs (precision and recall averaged over pages)."""
    precisions, recalls = [], []
    for true, pred in pairs:
        a, b = _truth_shingles(true), shingles(pred)
        tp, fp, fn = sum((a & b).values()), sum((b - a).values()), sum((a - b).values())
        if tp + fp:
            precisions.append(1.0 if fp == fn == 0 else tp / (tp + fp))
        if tp + fn:
            recalls.append(1.0 if fp == fn == 0 else tp / (tp + fn))
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def fit(pages: list[PageLines], truth: dict[str, str]) -> LineModel:
    """Fit the logistic regression on these pages and choose its threshold on them too."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.array([row for page in pages for row in page.rows], dtype=float)
    y = np.array([label for page in pages for label in page.labels])
    w = np.array([weight for page in pages for weight in page.weights])
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x), y, sample_weight=w)
    scale = [float(s) if s > 0 else 1.0 for s in scaler.scale_]
    probabilities = classifier.predict_proba(scaler.transform(x))[:, 1]
    per_page, offset = [], 0
    for page in pages:
        per_page.append(probabilities[offset : offset + len(page.rows)].tolist())
        offset += len(page.rows)
    grid = [(lo, hi) for lo in DROP_BELOW for hi in ADD_FROM]
    best = max(grid, key=lambda pair: _kept_f1(pages, per_page, truth, *pair))
    return LineModel(
        version=MODEL_VERSION,
        mean=tuple(float(m) for m in scaler.mean_),
        scale=tuple(scale),
        coef=tuple(float(c) for c in classifier.coef_[0]),
        intercept=float(classifier.intercept_[0]),
        drop_below=best[0],
        add_from=best[1],
    )


def _kept_f1(
    pages: list[PageLines], per_page: list[list[float]], truth: dict[str, str], lo: float, hi: float
) -> float:
    pairs = []
    for page, probabilities in zip(pages, per_page, strict=True):
        keep = [p >= lo if k else p >= hi for k, p in zip(page.rule_keep, probabilities, strict=True)]
        kept = [t for t, ok in zip(page.texts, keep, strict=True) if ok]
        pairs.append((truth[page.key], "\n".join(kept)))
    return benchmark_f1(pairs)


def to_json(model: LineModel, held_out: dict[str, float]) -> str:
    """The model file's text: plain JSON, one number per feature."""
    data = {
        "version": model.version,
        "kind": "logistic regression over standardised line features (bench/train_clean.py)",
        "features": list(FEATURES),
        "mean": [round(v, 8) for v in model.mean],
        "scale": [round(v, 8) for v in model.scale],
        "coef": [round(v, 8) for v in model.coef],
        "intercept": round(model.intercept, 8),
        "drop_below": model.drop_below,
        "add_from": model.add_from,
        "held_out_f1": {k: round(v, 4) for k, v in held_out.items()},
    }
    return json.dumps(data, indent=1) + "\n"


def kfold_models(
    renderings: dict[str, dict[str, str]], truth: dict[str, str], sites: dict[str, str]
) -> dict[int, LineModel]:
    """Return one model per fold, each trained on the pages of the other folds' sites (all renderings)."""
    prepared = {
        name: {key: page_lines(key, body, truth[key]) for key, body in bodies.items()}
        for name, bodies in renderings.items()
    }
    models = {}
    for fold in range(FOLDS):
        train = [  # every rendering of the other folds' sites
            page for pages in prepared.values() for key, page in pages.items() if fold_of(sites[key]) != fold
        ]
        models[fold] = fit(train, truth)
        print(
            f"fold {fold}: drop below {models[fold].drop_below}, add from {models[fold].add_from}",
            flush=True,
        )
    return models


def main() -> None:
    """Print k-fold held-out figures of the line model, then fit on everything and write the file."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="do not write line_model.json")
    args = parser.parse_args()
    from bench.clean_eval import score_text_dumps  # the stage itself, scored the benchmark's way

    truth, html, sites = load_benchmark()
    renderings = {"own": own_renderings(html), "w3m": load_w3m()}
    models = kfold_models(renderings, truth, sites)
    held_out: dict[str, float] = {}
    for name, bodies in renderings.items():
        outputs = score_text_dumps(bodies, lambda key: CleanOptions(line_model=models[fold_of(sites[key])]))
        held_out[f"{name}_kfold"] = benchmark_f1([(truth[k], outputs[k]) for k in truth])
        print(f"held-out ({FOLDS}-fold over sites) F1, rendering {name}: {held_out[f'{name}_kfold']:.3f}")
    everything = [
        page_lines(key, body, truth[key]) for bodies in renderings.values() for key, body in bodies.items()
    ]
    final = fit(everything, truth)
    print(f"final model: {len(FEATURES)} features, drop below {final.drop_below}, add from {final.add_from}")
    if not args.dry_run:
        MODEL_PATH.write_text(to_json(final, held_out), encoding="utf-8")
        print(f"wrote {MODEL_PATH}")


if __name__ == "__main__":
    main()
