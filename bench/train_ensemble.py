"""Train the HTML ensemble's block model of the clean stage and print its held-out score (k-fold over sites).

Data: the Scrapinghub article-extraction benchmark in ../shared (181 pages, 126 sites, MIT). Each
page is cut into blocks (`ensemble.page_blocks`); every voting extractor runs once on it
(`html.run_extractors`). A block's label is whether it is article text: half or more of its word
4-grams (the whole block as a word sequence, when shorter) occur in the page's ground truth. A
scikit-learn gradient-boosted tree model over `ensemble.FEATURES` is fitted with sample weights equal
to the block's token count (the benchmark scores tokens, not blocks); the decision threshold is the
one that gives the best benchmark F1 on the training pages. Folds split by site
(`bench/train_clean.py`): no site is in both the part a model is fitted on and the part it is scored
on. The final model is fitted on every AEB page and written as JSON, with the held-out figures
beside it. dragnet-dev (AGPL data) is never used here: `bench/clean_eval.py` measures on it.

    .venv/bin/python bench/train_ensemble.py            # k-fold figures, then writes ensemble_model.json
    .venv/bin/python bench/train_ensemble.py --dry-run  # k-fold figures only

Extractor outputs are cached in bench/out/ (rebuilt when missing; delete it after changing an
extractor). Needs scikit-learn (training only; the stage evaluates the JSON trees itself).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FOLDS, fold_of, load_benchmark  # path set up above
from workers.stages.cleaning.ensemble import (
    FEATURES,
    MODEL_FORMAT,
    MODEL_PATH,
    Block,
    EnsembleModel,
    _tokens,
    block_features,
    coverage,
    model_from_json,
    model_to_json,
    page_blocks,
    text_grams,
)
from workers.stages.cleaning.guards import prepare_html
from workers.stages.cleaning.html import parse_html, run_extractors

OUT = Path(__file__).resolve().parent / "out"
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks"
MODEL_VERSION = "ensemble-model-1"
LABEL_SHARE = 0.5
THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))
GBT = {
    "n_estimators": 250,
    "max_depth": 3,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "min_samples_leaf": 20,
    "random_state": 0,
}

Page = dict[str, Any]


def extract_page(body: str) -> Page:
    """Blocks and every voting extractor's paragraphs of one page, as plain JSON data."""
    prepared = prepare_html(body)
    tree = parse_html(prepared)
    if tree is None:
        return {"blocks": [], "extracted": {}}
    blocks = page_blocks(tree)
    extracted = run_extractors(prepared, tree, None)
    return {
        "blocks": [[b.text, b.tag, b.link_chars, b.chrome_ancestor] for b in blocks],
        "extracted": extracted,
    }


def cached_pages(name: str, html: dict[str, str]) -> dict[str, Page]:
    """Every page's blocks and extractor outputs, from bench/out/ when cached there."""
    path = OUT / f"ensemble-{name}.json.gz"
    if path.exists():
        return dict(json.loads(gzip.decompress(path.read_bytes())))
    OUT.mkdir(exist_ok=True)
    start = time.process_time()
    pages = {key: extract_page(body) for key, body in html.items()}
    print(f"extracted {len(pages)} {name} pages in {time.process_time() - start:.1f} CPU-s", flush=True)
    path.write_bytes(gzip.compress(json.dumps(pages).encode("utf-8")))
    return pages


def blocks_of(page: Page) -> list[Block]:
    """The cached blocks of a page."""
    return [Block(text, tag, links, chrome) for text, tag, links, chrome in page["blocks"]]


def rows_of(page: Page) -> list[list[float]]:
    """The feature rows of a cached page's blocks (computed once per page and process)."""
    if "rows" not in page:
        page["rows"] = block_features(blocks_of(page), page["extracted"])
    rows: list[list[float]] = page["rows"]
    return rows


def labelled(page: Page, truth: str) -> tuple[list[list[float]], list[int], list[float]]:
    """Feature rows, labels (block is article text) and weights (tokens) of one page's blocks."""
    blocks = blocks_of(page)
    rows = rows_of(page)
    tokens = [_tokens(block.text) for block in blocks]
    shares = coverage(tokens, text_grams(truth.split("\n")))
    labels = [int(share >= LABEL_SHARE) for share in shares]
    weights = [float(max(1, len(t))) for t in tokens]
    return rows, labels, weights


def fit(pages: dict[str, Page], truth: dict[str, str], keys: list[str]) -> dict[str, Any]:
    """Fit the trees on these pages, choose the threshold on them; return the model as a JSON dict."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    x: list[list[float]] = []
    y: list[int] = []
    w: list[float] = []
    for key in keys:
        rows, labels, weights = labelled(pages[key], truth[key])
        x += rows
        y += labels
        total = sum(weights) or 1.0
        w += [weight / total for weight in weights]  # every page weighs the same, as in the benchmark
    gbt = GradientBoostingClassifier(**GBT)  # type: ignore[arg-type]
    gbt.fit(np.asarray(x), np.asarray(y), sample_weight=np.asarray(w))
    trees = []
    for estimator in gbt.estimators_[:, 0]:
        tree = estimator.tree_
        trees.append(
            {
                "feature": [int(f) if f >= 0 else -1 for f in tree.feature],
                "threshold": [float(t) for t in tree.threshold],
                "left": [max(0, int(c)) for c in tree.children_left],
                "right": [max(0, int(c)) for c in tree.children_right],
                "value": [float(v) for v in tree.value[:, 0, 0]],
            }
        )
    base = float(gbt._raw_predict_init(np.asarray(x[:1]))[0, 0])  # the prior log-odds
    model: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "features": list(FEATURES),
        "base": base,
        "learning_rate": GBT["learning_rate"],
        "depth": GBT["max_depth"],
        "threshold": 0.5,
        "trees": trees,
    }
    # The file's evaluation must agree with scikit-learn's own.
    check = model_from_json(model).scores(x[:2000])
    expected = gbt.predict_proba(np.asarray(x[:2000]))[:, 1]
    if float(np.max(np.abs(check - expected))) > 1e-6:
        raise SystemExit("exported trees disagree with scikit-learn's predictions")
    loaded = model_from_json(model)
    scores = {key: loaded.scores(rows_of(pages[key])) for key in keys}
    model["threshold"] = max(THRESHOLDS, key=lambda t: threshold_f1(t, scores, pages, truth))
    return model


def page_text(model: EnsembleModel, page: Page) -> str:
    """The article text the model keeps on one cached page (blocks joined, no post-processing)."""
    blocks = blocks_of(page)
    if not blocks:
        return ""
    scores = model.scores(rows_of(page))
    return "\n\n".join(b.text for b, s in zip(blocks, scores, strict=True) if s >= model.threshold)


def threshold_f1(
    threshold: float, scores: dict[str, Any], pages: dict[str, Page], truth: dict[str, str]
) -> float:
    """The benchmark F1 over these pages when the blocks scoring `threshold` or more are kept."""
    from bench.common import summarise, tp_fp_fn

    pages_scores = []
    for key, page_scores in scores.items():
        text = "\n\n".join(
            b[0] for b, s in zip(pages[key]["blocks"], page_scores, strict=True) if s >= threshold
        )
        pages_scores.append(tp_fp_fn(truth[key], text))
    return summarise(pages_scores)["f1"]


def kfold_models(
    pages: dict[str, Page], truth: dict[str, str], sites: dict[str, str]
) -> dict[int, dict[str, Any]]:
    """One model per fold, fitted on the other folds' pages."""
    return {fold: fit(pages, truth, [k for k in truth if fold_of(sites[k]) != fold]) for fold in range(FOLDS)}


def main() -> None:
    """Print the k-fold figures, then write the model fitted on every AEB page (unless --dry-run)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="print the k-fold figures, write nothing")
    args = parser.parse_args()
    truth, html, sites = load_benchmark()
    pages = cached_pages("aeb", html)
    models = kfold_models(pages, truth, sites)
    held: dict[str, str] = {}
    for fold, model in models.items():
        loaded = model_from_json(model)
        held.update({k: page_text(loaded, pages[k]) for k in truth if fold_of(sites[k]) == fold})
    from bench.common import summarise, tp_fp_fn

    m = summarise([tp_fp_fn(truth[k], held[k]) for k in truth])
    thresholds = sorted(model["threshold"] for model in models.values())
    print(
        f"AEB k-fold over sites ({FOLDS} folds, blocks joined, before the stage's post-processing): "
        f"F1={m['f1']:.3f} P={m['precision']:.3f} R={m['recall']:.3f} empty={int(m['empty'])} "
        f"thresholds {thresholds}"
    )
    final = fit(pages, truth, list(truth))
    final["held_out"] = {"aeb_kfold_f1": round(m["f1"], 4), "folds": FOLDS}
    if args.dry_run:
        print("dry run: model not written")
        return
    MODEL_PATH.write_text(model_to_json(final), encoding="utf-8")
    print(f"wrote {MODEL_PATH} ({len(final['trees'])} trees, threshold {final['threshold']})")


if __name__ == "__main__":
    main()
