"""Train the text-dump models of the clean stage and print their held-out scores (k-fold over sites).

Three small logistic regressions, shipped as plain JSON: the run model (which candidate runs of
lines are the article, `run_model.json`), the line model (corrects the chosen runs line by line,
`line_model.json`) and the headline model (which line before the body is the headline, also in
`run_model.json`). Data: the Scrapinghub article-extraction benchmark in ../shared (181 pages, 126
sites, MIT), each page rendered by w3m (`textdumps-w3m.jsonl.gz`), lynx and html2text (rendered
here by `bench/textdump.py`, cached outside the repository). Labels: a run or line is article text
when half or more of its 4-word shingles occur in the page's ground truth; the headline is the line
equal (folded) to the title the HTML path finds on the same page. Fits weight a line by its token
count (the benchmark scores tokens); thresholds are chosen on the training pages. Folds split by
site: no site is in both the part a model is trained on and the part it is scored on. The final
models are fitted on every page and written as JSON, with the held-out figures beside them.
dragnet-dev (AGPL) is never fitted on: see `bench/textdump_eval.py` for it.

    .venv/bin/python bench/train_clean.py            # k-fold figures, then writes both model files
    .venv/bin/python bench/train_clean.py --dry-run  # k-fold figures only
    .venv/bin/python bench/train_clean.py --headline-only  # refit the headline model alone (see below)

`--headline-only` keeps the shipped run and line models byte for byte and refits the headline
model on AEB's w3m renderings (labels: the HTML title) and wcxb-dev's w3m dumps (labels: the set's true
`title`; CC BY 4.0, Murrough Foley 2026, attribution in `run_model.json`). It prints the headline
accuracy held out by site fold (5 folds, `fold_of(site)`) on wcxb-dev and AEB w3m dumps through
`clean()`, and dragnet-dev's (never trained on) with the old and the new model, in the same run.

Needs scikit-learn (training only; the stage applies the JSON coefficients itself).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import BENCH, FOLDS, fold_of, load_benchmark  # path set up above
from bench.textdump import render, render_with
from workers.stages.cleaning.extraction import CleanOptions
from workers.stages.cleaning.guards import drop_huge_tokens
from workers.stages.cleaning.linemodel import (
    FEATURES,
    HEADLINE_FEATURES,
    MODEL_PATH,
    RUN_FEATURES,
    RUN_MODEL_PATH,
    LineModel,
    Logistic,
    RunModel,
    candidate_runs,
    headed_runs,
    headline_candidates,
    headline_features,
    line_features,
    model_from_json,
    run_features,
    runs_from_json,
    trim_headline,
)
from workers.stages.cleaning.lines import fold as fold_text
from workers.stages.cleaning.normalise import normalise_text
from workers.stages.cleaning.textdump import _keep, dump_lines, split_columns

MODEL_VERSION = "line-model-2"
RUN_MODEL_VERSION = "run-model-1"
KEEP_FROM = (0.4, 0.5, 0.6, 0.7, 0.8)
TRAIN_RENDERERS = ("w3m", "lynx", "html2text")
_TOKEN = re.compile(r"\w+")
DROP_BELOW = (0.0, 0.1, 0.2, 0.3)
ADD_FROM = (0.8, 0.9, 0.95, 1.01)


def load_w3m() -> dict[str, str]:
    """Return the w3m renderings of the benchmark pages keyed by page id."""
    with gzip.open(BENCH / "textdumps-w3m.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {row["page_id"]: row["body"] for row in rows}


def own_renderings(html: dict[str, str]) -> dict[str, str]:
    """Return the bench's own rendering (`bench/textdump.py`) of every page."""
    return {key: render(body) for key, body in html.items()}


def dump_text(body: str) -> str:
    """A raw text dump as the stage prepares it before judging lines (see `workers.stages.clean`)."""
    return normalise_text(split_columns(drop_huge_tokens(body)))


@dataclass
class PageLines:
    """One rendered page as the stage sees it: features per line, labels, token weights, texts."""

    key: str
    rows: list[list[float]]
    labels: list[int]
    weights: list[float]
    texts: list[str]
    rule_keep: list[bool]


@dataclass
class PageRuns:
    """One rendered page's candidate runs: features, labels, weights and the text each run keeps."""

    key: str
    rows: list[list[float]]
    labels: list[int]
    weights: list[float]
    texts: list[str]
    headed: list[bool]


def _label(line: str, truth_grams: set[tuple[str, ...]], truth_joined: str) -> int:
    tokens = _TOKEN.findall(line)
    if not tokens:
        return 0
    if len(tokens) < 4:
        return int(f" {' '.join(tokens)} " in truth_joined)
    grams = [tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    return int(sum(g in truth_grams for g in grams) >= 0.5 * len(grams))


def _truth_index(truth: str) -> tuple[set[tuple[str, ...]], str]:
    tokens = _TOKEN.findall(truth)
    return {tuple(tokens[i : i + 4]) for i in range(max(0, len(tokens) - 3))}, " " + " ".join(tokens) + " "


def page_runs(key: str, body: str, truth: str) -> PageRuns:
    """Return the candidate runs of one rendered page with features and labels (no model applied)."""
    dump = dump_lines(dump_text(body))
    runs = candidate_runs(dump.infos)
    rows = run_features(dump.infos, runs, dump.rule_span)
    grams, joined = _truth_index(truth)
    labels, weights, texts = [], [], []
    for start, end in runs:
        text = "\n".join(info.text for info in dump.infos[start:end] if info.chrome is None)
        labels.append(_label(text, grams, joined))
        weights.append(1.0 + min(2000, len(_TOKEN.findall(text))) ** 0.5)
        texts.append(text)
    headed = headed_runs(dump.infos, runs)
    return PageRuns(key=key, rows=rows, labels=labels, weights=weights, texts=texts, headed=headed)


_RUNS: dict[tuple[str, str], PageRuns] = {}


def _page_runs(key: str, body: str, truth: str) -> PageRuns:
    """`page_runs`, memoised: the folds share each page's runs (they depend on no model)."""
    if (key, body) not in _RUNS:
        _RUNS[key, body] = page_runs(key, body, truth)
    return _RUNS[key, body]


def page_lines(key: str, body: str, truth: str, model: LineModel | None = None) -> PageLines:
    """Return the lines of one rendered page with features and labels, prepared as the stage does.

    `model` carries the run model that chooses the body runs (the rules' run without one).
    """
    dump = dump_lines(dump_text(body), model=model)
    rows = line_features(dump.infos, dump.scores, dump.body)
    grams, joined = _truth_index(truth)
    texts = [info.text for info in dump.infos]
    labels = [_label(t, grams, joined) for t in texts]
    weights = [1.0 + min(100, len(_TOKEN.findall(t))) for t in texts]
    rule_keep = [b and info.chrome is None for b, info in zip(dump.body, dump.infos, strict=True)]
    return PageLines(key=key, rows=rows, labels=labels, weights=weights, texts=texts, rule_keep=rule_keep)


def is_title(title: str | None, line: str) -> bool:
    """A headline label: the trimmed line folds equal to the title, or holds it whole (80% of its words)."""
    wanted, found = fold_text(title or ""), fold_text(trim_headline(line))
    if not wanted or not found:
        return False
    return wanted == found or (
        f" {wanted} " in f" {found} " and len(wanted.split()) >= 0.8 * len(found.split())
    )


def page_headlines(body: str, title: str | None, model: LineModel) -> tuple[list[list[float]], list[int]]:
    """Return the headline candidates' features of one rendered page and their labels (`is_title`)."""
    dump = dump_lines(dump_text(body), model=model)
    if dump.start == dump.end:
        return [], []
    keep = _keep(dump, model)
    candidates = headline_candidates(dump.infos, dump.start, dump.end)
    body_text = "\n".join(info.text for info, k in zip(dump.infos, keep, strict=True) if k)
    rows = headline_features(dump.infos, candidates, dump.start, body_text)
    return rows, [int(is_title(title, dump.infos[i].text)) for i in candidates]


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


def _logistic(rows: list[list[float]], labels: list[int], weights: list[float] | None = None) -> Logistic:
    """Fit a logistic regression on standardised features (scikit-learn, training only)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.array(rows, dtype=float)
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(C=1.0, max_iter=3000).fit(
        scaler.transform(x), np.array(labels), sample_weight=None if weights is None else np.array(weights)
    )
    return Logistic(
        mean=tuple(float(m) for m in scaler.mean_),
        scale=tuple(float(v) if v > 0 else 1.0 for v in scaler.scale_),
        coef=tuple(float(c) for c in classifier.coef_[0]),
        intercept=float(classifier.intercept_[0]),
    )


def fit_runs(pages: list[PageRuns], truth: dict[str, str]) -> RunModel:
    """Fit the run model on these pages and choose its keep threshold on them too."""
    logistic = _logistic(
        [row for page in pages for row in page.rows],
        [label for page in pages for label in page.labels],
        [weight for page in pages for weight in page.weights],
    )

    def f1(keep_from: float) -> float:
        model = RunModel(version=RUN_MODEL_VERSION, logistic=logistic, keep_from=keep_from)
        pairs = [
            (truth[page.key], "\n".join(page.texts[i] for i in model.select(page.rows, page.headed)))
            for page in pages
        ]
        return benchmark_f1(pairs)

    return RunModel(version=RUN_MODEL_VERSION, logistic=logistic, keep_from=max(KEEP_FROM, key=f1))


def fit(pages: list[PageLines], truth: dict[str, str]) -> LineModel:
    """Fit the line model on these pages and choose its thresholds on them too."""
    logistic = _logistic(
        [row for page in pages for row in page.rows],
        [label for page in pages for label in page.labels],
        [weight for page in pages for weight in page.weights],
    )
    model = LineModel(
        MODEL_VERSION, logistic.mean, logistic.scale, logistic.coef, logistic.intercept, 0.0, 1.01
    )
    per_page = [model.probabilities(page.rows) for page in pages]
    grid = [(lo, hi) for lo in DROP_BELOW for hi in ADD_FROM]
    best = max(grid, key=lambda pair: _kept_f1(pages, per_page, truth, *pair))
    return replace(model, drop_below=best[0], add_from=best[1])


def fit_all(
    renderings: dict[str, dict[str, str]],
    truth: dict[str, str],
    titles: dict[str, str | None],
    keys: set[str],
) -> LineModel:
    """Fit the run, line and headline models, in that order, on the pages `keys` of every rendering."""
    bodies = [(key, body) for pages in renderings.values() for key, body in pages.items() if key in keys]
    runs = fit_runs([_page_runs(key, body, truth[key]) for key, body in bodies], truth)
    with_runs = LineModel(MODEL_VERSION, (), (), (), 0.0, 0.0, 1.01, runs=runs)
    lines = replace(
        fit([page_lines(key, body, truth[key], with_runs) for key, body in bodies], truth), runs=runs
    )
    rows: list[list[float]] = []
    labels: list[int] = []
    for key, body in bodies:
        page_rows, page_labels = page_headlines(body, titles.get(key), lines)
        if any(page_labels):  # pages whose headline is not among the candidates teach nothing
            rows += page_rows
            labels += page_labels
    return replace(lines, headline=_logistic(rows, labels))


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
    """The line model file's text: plain JSON, one number per feature."""
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


def _section(logistic: Logistic, features: tuple[str, ...]) -> dict[str, object]:
    return {
        "features": list(features),
        "mean": [round(v, 8) for v in logistic.mean],
        "scale": [round(v, 8) for v in logistic.scale],
        "coef": [round(v, 8) for v in logistic.coef],
        "intercept": round(logistic.intercept, 8),
    }


def runs_to_json(model: LineModel, held_out: dict[str, float]) -> str:
    """The run model file's text: the run and headline regressions as plain JSON."""
    if model.runs is None or model.headline is None:
        raise ValueError("a run model file needs the run and the headline model")
    data = {
        "version": model.runs.version,
        "kind": "logistic regressions over candidate runs and headline lines (bench/train_clean.py)",
        "runs": {
            **_section(model.runs.logistic, RUN_FEATURES),
            "keep_from": model.runs.keep_from,
            "drop_threads": model.runs.drop_threads,
        },
        "headline": _section(model.headline, HEADLINE_FEATURES),
        "held_out": {k: round(v, 4) for k, v in held_out.items()},
    }
    return json.dumps(data, indent=1) + "\n"


_TITLES: dict[str, str | None] = {}


def html_titles(html: dict[str, str]) -> dict[str, str | None]:
    """The title the HTML path of the stage finds on each page (None when it finds none); memoised."""
    from schemas.raw import RawArticle
    from workers.core.errors import PermanentError
    from workers.stages.clean import clean

    for key, body in html.items():
        if key not in _TITLES:
            try:
                _TITLES[key] = clean(RawArticle(source="bench", body=body), "0" * 32).title
            except PermanentError:
                _TITLES[key] = None
    return {key: _TITLES[key] for key in html}


def kfold_models(
    renderings: dict[str, dict[str, str]], truth: dict[str, str], sites: dict[str, str]
) -> dict[int, LineModel]:
    """Return one model bundle per fold, each trained on the pages of the other folds' sites (all renderings)."""
    _truth, html, _sites = load_benchmark()
    titles = html_titles({key: html[key] for key in truth if key in html})
    models = {}
    for fold in range(FOLDS):
        keys = {key for key in truth if fold_of(sites[key]) != fold}
        models[fold] = fit_all(renderings, truth, titles, keys)
        runs = models[fold].runs
        print(
            f"fold {fold}: runs kept from {runs.keep_from if runs else '-'}, lines dropped below "
            f"{models[fold].drop_below}, added from {models[fold].add_from}",
            flush=True,
        )
    return models


def training_renderings(html: dict[str, str]) -> dict[str, dict[str, str]]:
    """The AEB pages in every training rendering: w3m (shared), lynx and html2text (rendered here)."""
    renderings = {"w3m": load_w3m()}
    for name in TRAIN_RENDERERS[1:]:
        renderings[name] = render_with(name, "scrapinghub-aeb", html)
    return renderings


WCXB_ATTRIBUTION = (
    "headline model trained in part on wcxb-dev's w3m text dumps and true titles: WCXB, the Web Content "
    "eXtraction Benchmark v1.0 (development split), Murrough Foley 2026, CC BY 4.0, data repository "
    "Murrough-Foley/web-content-extraction-benchmark; changed: ground-truth files merged into one JSON, "
    "pages rendered by w3m"
)


@dataclass
class HeadlinePage:
    """One dump's headline candidates: features and labels, its site, its set and its true title."""

    key: str
    site: str
    rows: list[list[float]]
    labels: list[int]


def _fit_headline(pages: list[HeadlinePage]) -> Logistic:
    """Fit the headline model as a ranking on the pages whose headline is among the candidates.

    The stage keeps a page's most likely candidate, so the fit compares candidates of one page:
    a logistic regression over the differences (headline minus each other candidate, both ways,
    no intercept) on standardised features. Its weights rank the candidates as the stage's
    `Logistic` scores them (the intercept, 0, does not change which candidate is the most likely).
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    taught = [page for page in pages if any(page.labels)]
    scaler = StandardScaler().fit(np.array([r for p in taught for r in p.rows], dtype=float))
    differences, labels = [], []
    for page in taught:
        x = scaler.transform(np.array(page.rows, dtype=float))
        truth = np.array(page.labels)
        headline = x[truth == 1][0]
        for other in x[truth == 0]:
            differences += [headline - other, other - headline]
            labels += [1, 0]
    ranker = LogisticRegression(C=1.0, max_iter=3000, fit_intercept=False).fit(
        np.array(differences), np.array(labels)
    )
    return Logistic(
        mean=tuple(float(m) for m in scaler.mean_),
        scale=tuple(float(v) if v > 0 else 1.0 for v in scaler.scale_),
        coef=tuple(float(c) for c in ranker.coef_[0]),
        intercept=0.0,
    )


def _headline_score(
    bodies: dict[str, str], titles: dict[str, str | None], model_for: Callable[[str], LineModel]
) -> tuple[int, int]:
    """(dumps whose `clean()` headline is the title by `is_title`, dumps with a title and a body)."""
    from schemas.raw import RawArticle
    from workers.core.errors import PermanentError
    from workers.stages.clean import clean

    right = judged = 0
    for key, body in bodies.items():
        if not titles.get(key) or not body.strip():
            continue
        judged += 1
        try:
            raw = RawArticle(source="bench", body=body, content_type="text/plain")
            found = clean(raw, "0" * 32, options=CleanOptions(line_model=model_for(key))).title
        except PermanentError:
            continue
        right += bool(found) and is_title(titles[key], found or "")
    return right, judged


def headline_only(write: bool) -> None:
    """Refit the headline model alone on AEB and wcxb-dev dumps; held-out figures; write it into run_model.json."""
    from bench.common import load_dragnet, load_wcxb, load_wcxb_w3m

    lines = model_from_json(json.loads(MODEL_PATH.read_text(encoding="utf-8")))
    run_data = json.loads(RUN_MODEL_PATH.read_text(encoding="utf-8"))
    shipped = replace(lines, runs=runs_from_json({**run_data, "headline": run_data["runs"]}, lenient=True)[0])
    _truth, html, sites = load_benchmark()
    aeb_titles = html_titles(html)
    aeb = load_w3m()
    wcxb_truth, _html = load_wcxb()
    wcxb = {k: v for k, v in load_wcxb_w3m().items() if v.strip()}
    wcxb_titles: dict[str, str | None] = {
        k: str(wcxb_truth[k]["title"]) if wcxb_truth[k].get("title") else None for k in wcxb
    }
    wcxb_sites = {k: str(wcxb_truth[k]["site"]) for k in wcxb}
    pages = [
        HeadlinePage(key, sites[key], *page_headlines(body, aeb_titles.get(key), shipped))
        for key, body in aeb.items()
    ]
    pages += [
        HeadlinePage(key, wcxb_sites[key], *page_headlines(body, wcxb_titles[key], shipped))
        for key, body in wcxb.items()
    ]
    print(
        f"headline pages: {len(pages)}, headline among the candidates on {sum(any(p.labels) for p in pages)}"
    )
    folds = {
        fold: replace(shipped, headline=_fit_headline([p for p in pages if fold_of(p.site) != fold]))
        for fold in range(FOLDS)
    }
    final = replace(shipped, headline=_fit_headline(pages))
    _d_truth, d_html, _d_sites = load_dragnet()
    d_titles = html_titles(d_html)
    with gzip.open(BENCH.parent / "dragnet-dev" / "textdumps-w3m.jsonl.gz", "rt", encoding="utf-8") as handle:
        dragnet = {row["page_id"]: row["body"] for row in map(json.loads, handle)}
    held_out: dict[str, float] = {}
    sets: list[tuple[str, dict[str, str], dict[str, str | None], dict[str, str]]] = [
        ("wcxb_w3m", wcxb, wcxb_titles, wcxb_sites),
        ("aeb_w3m", aeb, aeb_titles, sites),
    ]
    for label, bodies, titles, site_of_key in sets:
        after = _headline_score(bodies, titles, lambda k, s=site_of_key: folds[fold_of(s[k])])  # type: ignore[misc]
        held_out[f"headline_{label}_kfold"] = after[0] / max(1, after[1])
        print(
            f"headline {label}, {FOLDS}-fold by site: {after[0]}/{after[1]} = {after[0] / max(1, after[1]):.3f}"
        )
    after = _headline_score(dragnet, d_titles, lambda _k: final)
    held_out["headline_dragnet_w3m"] = after[0] / max(1, after[1])
    print(
        f"headline dragnet_w3m (never trained on): {after[0]}/{after[1]} = {after[0] / max(1, after[1]):.3f}"
    )
    if write and final.headline is not None:
        data = json.loads(RUN_MODEL_PATH.read_text(encoding="utf-8"))
        data["headline"] = _section(final.headline, HEADLINE_FEATURES)
        data["headline"]["held_out"] = {k: round(v, 4) for k, v in held_out.items()}
        data["headline"]["training_data"] = WCXB_ATTRIBUTION
        RUN_MODEL_PATH.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        print(f"wrote the headline section of {RUN_MODEL_PATH}")


def main() -> None:
    """Print k-fold held-out figures of the models, then fit on everything and write the files."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="do not write the model files")
    parser.add_argument("--headline-only", action="store_true", help="refit the headline model alone")
    args = parser.parse_args()
    if args.headline_only:
        headline_only(not args.dry_run)
        return
    from bench.common import score_text_dumps  # the stage itself, scored the benchmark's way

    truth, html, sites = load_benchmark()
    renderings = training_renderings(html)
    models = kfold_models(renderings, truth, sites)
    held_out: dict[str, float] = {}
    for name, bodies in renderings.items():
        outputs = score_text_dumps(bodies, lambda key: CleanOptions(line_model=models[fold_of(sites[key])]))
        held_out[f"{name}_kfold"] = benchmark_f1([(truth[k], outputs[k]) for k in truth])
        print(f"held-out ({FOLDS}-fold over sites) F1, rendering {name}: {held_out[f'{name}_kfold']:.3f}")
    final = fit_all(renderings, truth, html_titles(html), set(truth))
    runs = final.runs
    print(
        f"final models: {len(RUN_FEATURES)} run features, runs kept from {runs.keep_from if runs else '-'}; "
        f"{len(FEATURES)} line features, dropped below {final.drop_below}, added from {final.add_from}; "
        f"{len(HEADLINE_FEATURES)} headline features"
    )
    if not args.dry_run:
        MODEL_PATH.write_text(to_json(final, held_out), encoding="utf-8")
        RUN_MODEL_PATH.write_text(runs_to_json(final, held_out), encoding="utf-8")
        print(f"wrote {MODEL_PATH} and {RUN_MODEL_PATH}")


if __name__ == "__main__":
    main()
