"""Measure the clean stage's page-kind classifier on all three dev sets, and the text it keeps per kind.

Prints, with site folds on wcxb-dev and AEB (each page judged by a model fitted on the other folds'
sites, at the shipped threshold) and dragnet-dev as it is (judged by the shipped model, never trained on):
- of all article pages of AEB, dragnet-dev and wcxb-dev, the share kept as articles (target ≥ 99.5%);
- of wcxb-dev's non-article pages, the share recognised as not articles (target ≥ 85%);
- the 7×7 confusion matrix of wcxb-dev's kinds;
- per kind on wcxb-dev, the main content's word F1 (wcxb's own score) of the clean stage's text beside
  trafilatura's (`trafilatura.extract`, its defaults), for a user who keeps that kind;
- the classifier's CPU time per page beside the clean stage's, in the same run.

    nice -n 10 .venv/bin/python bench/pagekind_eval.py

The held-out probabilities are the ones `bench/train_pagekind.py` saved in bench/out/ (refitted, which needs
scikit-learn, the `train` extra, when missing); the kept kinds' texts are cached there too.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import statistics
import sys
import time
import zlib
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import workers.stages.clean as clean_module
from bench.common import load_wcxb, word_f1
from bench.train_pagekind import (
    OOF_PATH,
    OUT,
    confusion,
    judge_probs,
    load_pages,
    out_of_fold,
    print_confusion,
    rows,
    training_pages,
)
from schemas.raw import RawArticle
from workers.core.errors import PermanentError
from workers.stages.clean import clean
from workers.stages.cleaning.pagekind import KINDS, Judgement, PageView, features, load_model

TIMED_PAGES = 40


def kept_texts(shard: tuple[int, int] = (0, 1)) -> dict[str, dict[str, str]]:
    """The main text of wcxb-dev's non-article pages, by the clean stage as a user who keeps that kind gets
    it (the page judged its true kind) and by trafilatura (`trafilatura.extract`, its defaults); cached in
    bench/out/ (`shard` (i, n): the pages whose id's CRC is i modulo n, for parallel processes)."""
    import trafilatura

    name = "pagekind-texts-wcxb" + ("" if shard == (0, 1) else f"-{shard[0]}of{shard[1]}")
    path = OUT / f"{name}.json.gz"
    if path.exists():
        return dict(json.loads(gzip.decompress(path.read_bytes())))
    parts = sorted(OUT.glob("pagekind-texts-wcxb-*of*.json.gz")) if shard == (0, 1) else []
    if parts and len(parts) == int(parts[0].name.rsplit("of", 1)[1].split(".")[0]):
        return {k: v for p in parts for k, v in json.loads(gzip.decompress(p.read_bytes())).items()}
    truth, html = load_wcxb()
    texts: dict[str, dict[str, str]] = {}
    for key in sorted(truth):
        kind = str(truth[key]["page_type"])
        if kind == "article" or zlib.crc32(key.encode()) % shard[1] != shard[0]:
            continue
        url = str(truth[key]["url"] or "") or None
        raw = RawArticle(source="bench", body=html[key], url=url, content_type="text/html")
        judged = Judgement(kind, 1.0, "true-kind")  # type: ignore[arg-type]
        try:
            with mock.patch.object(clean_module, "judge", lambda _view, _j=judged: _j):
                ours = clean(raw, "0" * 32).text
        except PermanentError:
            ours = ""
        texts[key] = {"kind": kind, "newsflow": ours, "trafilatura": trafilatura.extract(html[key]) or ""}
    OUT.mkdir(exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(texts).encode("utf-8")))
    return texts


def cpu_per_page(pages: dict[str, dict[str, object]]) -> tuple[float, float]:
    """(clean stage, page-kind judgement) CPU milliseconds per page, medians over `TIMED_PAGES` pages."""
    model = load_model()
    stage: list[float] = []
    judged: list[float] = []
    for key in sorted(pages)[:TIMED_PAGES]:
        html, url = str(pages[key]["html"]), str(pages[key]["url"] or "") or None
        raw = RawArticle(source="bench", body=html, url=url, content_type="text/html")
        start = time.process_time()
        with contextlib.suppress(PermanentError):
            clean(raw, "0" * 32)
        stage.append(time.process_time() - start)
        start = time.process_time()
        model.judge_rows([features(PageView(html, url))])
        judged.append(time.process_time() - start)
    return statistics.median(stage) * 1000, statistics.median(judged) * 1000


def main() -> None:
    model = load_model()
    pages, table = training_pages()
    keys = sorted(pages)
    if OOF_PATH.exists():  # the trainer's held-out probabilities (same folds and models): no refit
        probs = {k: np.asarray(p) for k, p in json.loads(gzip.decompress(OOF_PATH.read_bytes())).items()}
    else:
        probs = out_of_fold(keys, table, pages)
    threshold = model.threshold
    dragnet = load_pages("dragnet")
    dragnet_table = rows(dragnet, "dragnet")
    dragnet_probs = model.probabilities([dragnet_table[k] for k in sorted(dragnet)])
    print(f"threshold on the article margin: {threshold:.4f} (model {model.version})")
    print("articles kept as articles:")
    total_kept = total = 0
    for name in ("aeb", "wcxb"):
        articles = [k for k in keys if k.startswith(f"{name}:") and pages[k]["kind"] == "article"]
        kept = sum(judge_probs(probs[k], threshold) == 0 for k in articles)
        total_kept, total = total_kept + kept, total + len(articles)
        print(f"  {name:8} (site folds)  {kept}/{len(articles)} = {kept / len(articles):.4f}")
    kept = sum(judge_probs(p, threshold) == 0 for p in dragnet_probs)
    total_kept, total = total_kept + kept, total + len(dragnet_probs)
    print(f"  dragnet  (as it is)    {kept}/{len(dragnet_probs)} = {kept / len(dragnet_probs):.4f}")
    print(f"  all three              {total_kept}/{total} = {total_kept / total:.4f}   (target >= 0.995)")
    wcxb = [k for k in keys if k.startswith("wcxb:")]
    true = [KINDS.index(pages[k]["kind"]) for k in wcxb]
    pred = [judge_probs(probs[k], threshold) for k in wcxb]
    others = [i for i, t in enumerate(true) if t != 0]
    caught = sum(pred[i] != 0 for i in others)
    exact = sum(pred[i] == true[i] for i in others)
    print(
        f"wcxb-dev non-articles recognised (site folds): {caught}/{len(others)} = {caught / len(others):.4f}"
        "   (target >= 0.85)"
    )
    print(f"  with the right kind: {exact}/{len(others)} = {exact / len(others):.4f}")
    print("confusion matrix, wcxb-dev, site folds (rows: truth, columns: decided):")
    print_confusion(confusion(true, pred))
    truth, _html = load_wcxb()
    texts = kept_texts()
    print("main content word F1 on wcxb-dev per kind, when kept as articles: newsflow vs trafilatura")
    for kind in KINDS[1:]:
        these = [k for k, t in texts.items() if t["kind"] == kind]
        ours = [word_f1(str(truth[k]["articleBody"]), texts[k]["newsflow"]) for k in these]
        theirs = [word_f1(str(truth[k]["articleBody"]), texts[k]["trafilatura"]) for k in these]
        best = [max(a, b) for a, b in zip(ours, theirs, strict=True)]
        print(
            f"  {kind:14} {len(these):4} pages   newsflow {np.mean(ours):.3f}   trafilatura {np.mean(theirs):.3f}"
            f"   per-page best of the two {np.mean(best):.3f}"
        )
    stage_ms, judge_ms = cpu_per_page({k.split(":", 1)[1]: pages[k] for k in wcxb})
    print(
        f"CPU per page (median of {TIMED_PAGES} wcxb-dev pages, same run): clean stage {stage_ms:.1f} ms, "
        f"page-kind features + model {judge_ms:.2f} ms"
    )


if __name__ == "__main__":
    main()
