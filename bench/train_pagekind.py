"""Train the clean stage's page-kind classifier and print its held-out score (folds by site).

Data: wcxb-dev in ../shared (1,497 pages of 2025-26, 1,295 domains, each labelled with its page kind;
WCXB v1.0 by Murrough Foley, CC BY 4.0, data repository Murrough-Foley/web-content-extraction-benchmark)
plus the Scrapinghub article-extraction benchmark (181 article pages, MIT) as more articles. dragnet-dev
(AGPL data) is never trained on: `bench/pagekind_eval.py` measures on it.

Each page (`pagekind.PageView`: raw HTML and URL, as the clean stage has them) is turned into one
feature row (`pagekind.features`). One scikit-learn gradient-boosted
tree model per kind (the kind against the rest) is fitted; the article model's threshold is chosen for
article recall first: the highest threshold that keeps `RECALL` of the training articles (out-of-fold
scores), so a page the model is unsure of stays an article. The final model is fitted on all of it and
written as JSON with the held-out figures and the attribution in its metadata.

    .venv/bin/python bench/train_pagekind.py            # site-fold figures, then writes pagekind_model.json
    .venv/bin/python bench/train_pagekind.py --dry-run  # site-fold figures only

Needs scikit-learn (the `train` extra; the stage evaluates the JSON trees with numpy).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import FOLDS, PAGE_KINDS, fold_of, load_benchmark, load_dragnet, load_wcxb, site_of
from workers.stages.cleaning.pagekind import (
    FEATURE_COUNT,
    KINDS,
    META_FEATURES,
    MODEL_FORMAT,
    MODEL_PATH,
    URL_FEATURES,
    PageKindModel,
    PageView,
    features,
    margins,
    model_from_json,
    trees_from_json,
)

OUT = Path(__file__).resolve().parent / "out"
OOF_PATH = OUT / "pagekind-out-of-fold.json.gz"
"""Each training page's kind probabilities from the model of the other site folds (the trainer's last run)."""
MODEL_VERSION = "pagekind-model-2"
RECALL = 0.996
"""Share of the training articles (out-of-fold) the article threshold keeps."""
GBT = {
    "n_estimators": 100,
    "max_depth": 3,
    "learning_rate": 0.1,
    "subsample": 0.8,
    "max_features": 0.3,
    "min_samples_leaf": 5,
    "random_state": 0,
}
KIND_TREES = 40
"""Trees of each kind's model (the article model has GBT's)."""
ATTRIBUTION = (
    "Trained on wcxb-dev, the development split of WCXB (Web Content eXtraction Benchmark) v1.0 by "
    "Murrough Foley (2026), CC BY 4.0, https://github.com/Murrough-Foley/web-content-extraction-benchmark; "
    "changed: ground-truth files merged into one JSON, markdown copy dropped. Also trained on the "
    "Scrapinghub article-extraction benchmark (MIT)."
)
assert KINDS == PAGE_KINDS, "the stage's kinds are wcxb-dev's page types"

Page = dict[str, Any]
"""A page: set, site, kind, url, html."""


def load_pages(name: str) -> dict[str, Page]:
    """Every page of a dev set (`wcxb`, `aeb`, `dragnet`): its set, site, kind, URL and raw HTML."""
    html, meta = _load(name)
    return {
        key: {"set": name, "site": meta[key][1], "kind": meta[key][2], "url": meta[key][0], "html": body}
        for key, body in html.items()
    }


def _load(name: str) -> tuple[dict[str, str], dict[str, tuple[str | None, str, str]]]:
    if name == "wcxb":
        truth, html = load_wcxb()
        return html, {
            k: (str(t["url"] or "") or None, str(t["site"]), str(t["page_type"])) for k, t in truth.items()
        }
    gt_path = (
        Path(__file__).resolve().parents[1]
        / ".."
        / "shared"
        / "benchmarks"
        / ("scrapinghub-aeb" if name == "aeb" else "dragnet-dev")
        / "ground-truth.json"
    )
    gt = json.loads(gt_path.read_text(encoding="utf-8"))
    _truth, html, sites = load_benchmark() if name == "aeb" else load_dragnet()
    return html, {
        k: (gt[k].get("url") or None, sites[k] or site_of(gt[k].get("url") or ""), "article") for k in html
    }


def rows(pages: dict[str, Page], name: str | None = None) -> dict[str, list[float]]:
    """The feature row of every page; a whole set's (`name`) cached in bench/out/ (delete the cache after
    changing the features: the trainer checks a sample of it against the code)."""
    path = OUT / f"pagekind-rows-{name}.json.gz"
    if name is not None and path.exists():
        cached: dict[str, list[float]] = json.loads(gzip.decompress(path.read_bytes()))
        sample = sorted(pages)[:: max(1, len(pages) // 20)]
        if set(cached) == set(pages) and all(
            np.allclose(cached[k], features(PageView(pages[k]["html"], pages[k]["url"]))) for k in sample
        ):
            return cached
    table = {key: features(PageView(page["html"], page["url"])) for key, page in pages.items()}
    if name is not None:
        OUT.mkdir(exist_ok=True)
        path.write_bytes(gzip.compress(json.dumps(table).encode("utf-8")))
    return table


def _tree_json(estimator: Any) -> dict[str, list[Any]]:
    tree = estimator.tree_
    return {
        "feature": [int(f) if f >= 0 else -1 for f in tree.feature],
        "threshold": [float(t) for t in tree.threshold],
        "left": [max(0, int(c)) for c in tree.children_left],
        "right": [max(0, int(c)) for c in tree.children_right],
        "value": [round(float(v), 6) for v in tree.value[:, 0, 0]],
    }


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """One tree model per kind (against the rest) as the JSON dict the stage reads (threshold 0.5)."""
    from sklearn.ensemble import GradientBoostingClassifier

    models = []
    for index in range(len(KINDS)):
        # The article model decides (its threshold); the others only name the kind of a non-article.
        params = GBT if index == 0 else {**GBT, "n_estimators": KIND_TREES}
        gbt = GradientBoostingClassifier(**params)  # type: ignore[arg-type]
        target = (y == index).astype(int)
        gbt.fit(x, target, sample_weight=w)
        part = {
            "base": float(gbt._raw_predict_init(x[:1])[0, 0]),
            "learning_rate": params["learning_rate"],
            "depth": GBT["max_depth"],
            "trees": [_tree_json(e) for e in gbt.estimators_[:, 0]],
        }
        # The file's evaluation must agree with scikit-learn's own.
        gap = np.max(np.abs(trees_from_json(part).scores(x.tolist()) - gbt.predict_proba(x)[:, 1]))
        if gap > 1e-4:
            raise SystemExit(f"exported trees of {KINDS[index]} disagree with scikit-learn's ({gap:.2g})")
        models.append(part)
    return {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "features": FEATURE_COUNT,
        "kinds": list(KINDS),
        "threshold": 0.5,
        "models": models,
    }


def weights(y: np.ndarray) -> np.ndarray:
    """Every kind weighs the same in all; AEB's articles count as wcxb's do."""
    w = np.ones(len(y))
    for index in range(len(KINDS)):
        n = int((y == index).sum())
        if n:
            w[y == index] = len(y) / (len(KINDS) * n)
    return w


AUGMENT_WEIGHT = 0.5
"""Weight of each blanked copy of a page (without URL, without metadata, without both)."""


def dataset(keys: list[str], table: dict[str, list[float]], pages: dict[str, Page]) -> tuple[Any, Any, Any]:
    """(x, y, w) for these page keys: each page, and copies of it with its URL features, its metadata
    features or both as a page without them has them (pages of other eras often have neither)."""
    x = np.asarray([table[k] for k in keys], dtype=np.float64)
    y = np.asarray([KINDS.index(pages[k]["kind"]) for k in keys])
    w = weights(y)
    no_url = x.copy()
    no_url[:, :URL_FEATURES] = BLANK[:URL_FEATURES]
    no_meta = x.copy()
    no_meta[:, URL_FEATURES : URL_FEATURES + META_FEATURES] = BLANK[
        URL_FEATURES : URL_FEATURES + META_FEATURES
    ]
    neither = no_url.copy()
    neither[:, URL_FEATURES : URL_FEATURES + META_FEATURES] = BLANK[
        URL_FEATURES : URL_FEATURES + META_FEATURES
    ]
    return (
        np.vstack([x, no_url, no_meta, neither]),
        np.concatenate([y, y, y, y]),
        np.concatenate([w, w * AUGMENT_WEIGHT, w * AUGMENT_WEIGHT, w * AUGMENT_WEIGHT]),
    )


BLANK = np.asarray(features(PageView("", None)))
"""The features of an empty page without a URL: what a blanked group is set to."""


def out_of_fold(
    keys: list[str], table: dict[str, list[float]], pages: dict[str, Page]
) -> dict[str, np.ndarray]:
    """Each page's kind probabilities from the model fitted on the other site folds."""
    probs: dict[str, np.ndarray] = {}
    for fold in range(FOLDS):
        train = [k for k in keys if fold_of(pages[k]["site"]) != fold]
        test = [k for k in keys if fold_of(pages[k]["site"]) == fold]
        model = model_from_json(fit(*dataset(train, table, pages)))
        probs.update(zip(test, model.probabilities([table[k] for k in test]), strict=True))
    return probs


def article_threshold(probs: list[np.ndarray], recall: float = RECALL) -> float:
    """The highest threshold on the article margin (`pagekind.margins`) that keeps `recall` of these
    articles (a page below it is not an article)."""
    scores = np.sort(margins(np.asarray(probs)))
    lost = int(np.floor(len(scores) * (1.0 - recall)))
    return float(scores[lost]) - 1e-6 if len(scores) else 0.0


def judge_probs(p: np.ndarray, threshold: float) -> int:
    """The kind index the stage decides for these probabilities."""
    return 0 if margins(p[None, :])[0] >= threshold else int(np.argmax(p[1:])) + 1


def training_pages() -> tuple[dict[str, Page], dict[str, list[float]]]:
    """wcxb-dev and AEB pages (keys prefixed by set) and their feature rows."""
    pages: dict[str, Page] = {}
    table: dict[str, list[float]] = {}
    for name in ("wcxb", "aeb"):
        these = load_pages(name)
        pages |= {f"{name}:{k}": v for k, v in these.items()}
        table |= {f"{name}:{k}": v for k, v in rows(these, name).items()}
    return pages, table


def confusion(true: list[int], pred: list[int]) -> np.ndarray:
    """The kinds' confusion matrix (rows: truth, columns: decided)."""
    matrix = np.zeros((len(KINDS), len(KINDS)), dtype=int)
    for t, p in zip(true, pred, strict=True):
        matrix[t, p] += 1
    return matrix


def print_confusion(matrix: np.ndarray) -> None:
    """Print the 7x7 matrix with short kind names."""
    short = [k[:7] for k in KINDS]
    print("truth \\ decided " + " ".join(f"{s:>7}" for s in short))
    for name, row in zip(short, matrix, strict=True):
        print(f"{name:>15} " + " ".join(f"{n:>7}" for n in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dry-run", action="store_true", help="print the site-fold figures only")
    args = parser.parse_args()
    pages, table = training_pages()
    keys = sorted(pages)
    probs = out_of_fold(keys, table, pages)
    model = fit(*dataset(keys, table, pages))
    OOF_PATH.write_bytes(
        gzip.compress(json.dumps({k: [float(v) for v in p] for k, p in probs.items()}).encode())
    )
    # The threshold: chosen on the article pages of all three dev sets (wcxb-dev and AEB out of fold,
    # dragnet-dev scored by the final model, never trained on).
    dragnet = load_pages("dragnet")
    dragnet_table = rows(dragnet, "dragnet")
    dragnet_probs = list(model_from_json(model).probabilities([dragnet_table[k] for k in sorted(dragnet)]))
    articles = [k for k in keys if pages[k]["kind"] == "article"]
    threshold = article_threshold([probs[k] for k in articles] + dragnet_probs)
    wcxb = [k for k in keys if k.startswith("wcxb:")]
    true = [KINDS.index(pages[k]["kind"]) for k in wcxb]
    pred = [judge_probs(probs[k], threshold) for k in wcxb]
    kept = sum(judge_probs(probs[k], threshold) == 0 for k in articles)
    kept_dragnet = sum(judge_probs(p, threshold) == 0 for p in dragnet_probs)
    others = [i for i, t in enumerate(true) if t != 0]
    caught = sum(pred[i] != 0 for i in others)
    exact = sum(pred[i] == true[i] for i in others)
    print(
        f"site folds ({FOLDS}); threshold on the article margin for {RECALL:.1%} article recall: {threshold:.4f}"
    )
    print(f"articles kept (wcxb-dev + AEB, site folds): {kept}/{len(articles)} = {kept / len(articles):.4f}")
    print(f"articles kept (dragnet-dev, as it is): {kept_dragnet}/{len(dragnet_probs)}")
    print(f"wcxb-dev non-articles recognised: {caught}/{len(others)} = {caught / len(others):.4f}")
    print(f"  of them with the right kind: {exact}/{len(others)} = {exact / len(others):.4f}")
    print_confusion(confusion(true, pred))
    if args.dry_run:
        return
    model["threshold"] = round(threshold, 6)
    model["trained_on"] = {"wcxb-dev": len(wcxb), "scrapinghub-aeb": len(keys) - len(wcxb)}
    model["attribution"] = ATTRIBUTION
    model["held_out"] = {
        "folds": f"{FOLDS} folds by site (wcxb-dev and AEB); dragnet-dev as it is",
        "articles_kept": round((kept + kept_dragnet) / (len(articles) + len(dragnet_probs)), 4),
        "non_articles_recognised": round(caught / len(others), 4),
        "kind_exact": round(exact / len(others), 4),
    }
    loaded: PageKindModel = model_from_json(model)
    check = loaded.probabilities([table[k] for k in keys[:50]])
    if check.shape != (min(50, len(keys)), len(KINDS)):
        raise SystemExit("exported model does not evaluate")
    MODEL_PATH.write_text(json.dumps(model, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {MODEL_PATH.name} ({MODEL_PATH.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
