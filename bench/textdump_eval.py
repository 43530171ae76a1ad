"""Score the clean stage on text dumps: every renderer, AEB k-fold by site and dragnet-dev, and headlines.

Renderers: w3m (the renderings in ../shared), lynx and html2text (rendered here by
`bench/textdump.py`, cached in ~/.cache/newsflow-textdumps, never in the repository). Sets:

- AEB (`scrapinghub-aeb`, 181 pages, 126 sites, MIT): each page is cleaned with the models trained
  on the other folds' sites (`bench/train_clean.py`, 5 folds by site), so no site is both trained on
  and scored.
- dragnet-dev (316 pages of 2012, AGPL): never trained on. It is cleaned with the shipped models
  (trained on all of AEB); the one design choice the bench makes on it (models or rules only) is
  made on one half of its sites and scored on the other half, both ways round ("chosen on the
  other half" line). The choices: the shipped models, the same without the comment-thread rule
  (`RunModel.drop_threads`, added after looking at dragnet-dev's worst pages), or the rules only.

Body text is scored like the HTML benchmark (`bench/clean_eval.py`: 4-gram token shingles, precision
and recall averaged over pages). Headline accuracy: the share of pages whose dump title equals
(case, accents and punctuation folded) the title the HTML path of the stage finds on the same page,
over the pages where the HTML path finds one. That reference is noisy (on blogs the HTML path often
finds the blog's name), so the "ceiling" line counts the pages whose HTML title is a line of the dump
at all. Peers in the same run: the rules alone (densest run
of prose and the rule headline, no learned model) and the whole dump uncleaned.

    .venv/bin/python bench/textdump_eval.py           # every renderer, both sets
    .venv/bin/python bench/textdump_eval.py --worst 5 # also the five worst pages of each
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FOLDS, fold_of, load_benchmark, summarise, tp_fp_fn  # path set up above
from bench.textdump import render_with
from bench.train_clean import TRAIN_RENDERERS, html_titles, kfold_models, training_renderings
from schemas.raw import RawArticle
from workers.core.errors import PermanentError
from workers.stages.clean import clean
from workers.stages.cleaning.extraction import CleanOptions
from workers.stages.cleaning.linemodel import load_model
from workers.stages.cleaning.lines import fold

DRAGNET = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "dragnet-dev"
TARGETS = {"aeb": 0.93, "dragnet": 0.90, "headline": 0.90}
"""Issue 17's targets for each renderer: AEB k-fold F1, dragnet-dev F1, headline accuracy on both."""

Result = tuple[str, str | None]


def load_dragnet() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Return dragnet-dev's (truth, html, site) keyed by page id."""
    gt = json.loads((DRAGNET / "ground-truth.json").read_text(encoding="utf-8"))
    truth = {key: item.get("articleBody", "") for key, item in gt.items()}
    html = {
        key: gzip.decompress((DRAGNET / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8") for key in gt
    }
    return truth, html, {key: item.get("site", "") for key, item in gt.items()}


def dragnet_renderings(html: dict[str, str]) -> dict[str, dict[str, str]]:
    """dragnet-dev's pages in every renderer: w3m from ../shared, lynx and html2text rendered here."""
    with gzip.open(DRAGNET / "textdumps-w3m.jsonl.gz", "rt", encoding="utf-8") as handle:
        renderings = {"w3m": {row["page_id"]: row["body"] for row in map(json.loads, handle)}}
    for name in TRAIN_RENDERERS[1:]:
        renderings[name] = render_with(name, "dragnet-dev", html)
    return renderings


def clean_dumps(bodies: dict[str, str], options_for: Callable[[str], CleanOptions]) -> dict[str, Result]:
    """Run the stage on every dump; (text, title) out, ("", None) for a dead letter or an empty dump."""
    out: dict[str, Result] = {}
    for key, body in bodies.items():
        try:
            article = clean(
                RawArticle(source="bench", body=body, content_type="text/plain"),
                "0" * 32,
                options=options_for(key),
            )
            out[key] = (article.text, article.title)
        except (PermanentError, ValueError):  # ValueError: a blank rendering fails RawArticle's validation
            out[key] = ("", None)
    return out


def f1(results: dict[str, Result], truth: dict[str, str], keys: list[str] | None = None) -> float:
    """The benchmark F1 of the results' texts over `keys` (default: every page)."""
    return summarise([tp_fp_fn(truth[k], results[k][0]) for k in (keys if keys is not None else truth)])["f1"]


def headline_accuracy(results: dict[str, Result], titles: dict[str, str | None]) -> tuple[int, int]:
    """(pages whose dump title folds equal to the HTML path's title, pages where the HTML path has one)."""
    judged = [k for k, t in titles.items() if t and fold(t)]
    right = sum(1 for k in judged if results[k][1] and fold(results[k][1]) == fold(titles[k] or ""))
    return right, len(judged)


def _row(
    label: str, results: dict[str, Result], truth: dict[str, str], titles: dict[str, str | None]
) -> None:
    m = summarise([tp_fp_fn(truth[k], results[k][0]) for k in truth])
    right, judged = headline_accuracy(results, titles)
    print(
        f"  {label:<34} F1={m['f1']:.3f}  P={m['precision']:.3f}  R={m['recall']:.3f}  "
        f"empty={int(m['empty'])}  headline {right}/{judged} = {right / max(1, judged):.3f}",
        flush=True,
    )


def _ceiling(bodies: dict[str, str], titles: dict[str, str | None]) -> None:
    judged = [k for k, t in titles.items() if t and fold(t)]
    found = sum(1 for k in judged if fold(titles[k] or "") in {fold(line) for line in bodies[k].split("\n")})
    print(
        f"  {'headline ceiling':<34} HTML title is a line of the dump on {found}/{len(judged)} = {found / max(1, len(judged)):.3f}"
    )


def _worst(results: dict[str, Result], truth: dict[str, str], sites: dict[str, str], n: int) -> None:
    scored = sorted((summarise([tp_fp_fn(truth[k], results[k][0])])["page_f1"], k) for k in truth)
    for page_f1, key in scored[:n]:
        print(f"    worst {page_f1:.3f} {key[:16]} {sites[key]}")


def _halves(
    variants: dict[str, dict[str, Result]], truth: dict[str, str], sites: dict[str, str]
) -> dict[str, Result]:
    """Choose the variant on one half of the sites, score it on the other half (both ways); merged results."""
    half = {k: zlib.crc32(sites[k].encode("utf-8")) % 2 for k in truth}
    merged: dict[str, Result] = {}
    for scored in (0, 1):
        chooser = [k for k in truth if half[k] != scored]
        best = max(variants, key=lambda name: f1(variants[name], truth, chooser))
        keys = [k for k in truth if half[k] == scored]
        print(
            f"  half {scored}: chose {best!r} on the other half, F1 here {f1(variants[best], truth, keys):.3f}"
        )
        merged.update({k: variants[best][k] for k in keys})
    return merged


def report(worst: int = 0) -> dict[str, dict[str, tuple[float, float]]]:
    """Print the text-dump report; return {set: {renderer: (F1, headline accuracy)}} of the shipped design."""
    truth, html, sites = load_benchmark()
    renderings = training_renderings(html)
    titles = html_titles(html)
    print(f"Text dumps of AEB ({len(truth)} pages, {len(set(sites.values()))} sites), {FOLDS}-fold by site")
    models = kfold_models(renderings, truth, sites)
    figures: dict[str, dict[str, tuple[float, float]]] = {"aeb": {}, "dragnet": {}}
    for name, bodies in renderings.items():
        print(f" rendered by {name}")
        kfold = clean_dumps(bodies, lambda key: CleanOptions(line_model=models[fold_of(sites[key])]))
        _row("newsflow clean, k-fold over sites", kfold, truth, titles)
        _row(
            "rules only (no learned model)",
            clean_dumps(bodies, lambda _k: CleanOptions(use_line_model=False)),
            truth,
            titles,
        )
        _row("whole dump (no cleaning)", {k: (b, None) for k, b in bodies.items()}, truth, titles)
        _ceiling(bodies, titles)
        right, judged = headline_accuracy(kfold, titles)
        figures["aeb"][name] = (f1(kfold, truth), right / max(1, judged))
        if worst:
            _worst(kfold, truth, sites, worst)

    shipped_model = load_model()
    if shipped_model.runs is None:
        sys.exit("the shipped model has no run model: run bench/train_clean.py")
    no_thread_rule = replace(shipped_model, runs=replace(shipped_model.runs, drop_threads=False))
    d_truth, d_html, d_sites = load_dragnet()
    d_titles = html_titles(d_html)
    print(
        f"\nText dumps of dragnet-dev ({len(d_truth)} pages, {len(set(d_sites.values()))} sites), never trained on"
    )
    for name, bodies in dragnet_renderings(d_html).items():
        print(f" rendered by {name}")
        shipped = clean_dumps(bodies, lambda _k: CleanOptions())
        threads = clean_dumps(bodies, lambda _k: CleanOptions(line_model=no_thread_rule))
        rules = clean_dumps(bodies, lambda _k: CleanOptions(use_line_model=False))
        _row("newsflow clean, shipped models", shipped, d_truth, d_titles)
        _row("shipped models, no thread rule", threads, d_truth, d_titles)
        _row("rules only (no learned model)", rules, d_truth, d_titles)
        _row("whole dump (no cleaning)", {k: (b, None) for k, b in bodies.items()}, d_truth, d_titles)
        variants = {"models": shipped, "models, no thread rule": threads, "rules only": rules}
        chosen = _halves(variants, d_truth, d_sites)
        _row("chosen on the other half of sites", chosen, d_truth, d_titles)
        _ceiling(bodies, d_titles)
        right, judged = headline_accuracy(shipped, d_titles)
        figures["dragnet"][name] = (f1(shipped, d_truth), right / max(1, judged))
        if worst:
            _worst(shipped, d_truth, d_sites, worst)

    print()
    for name in figures["aeb"]:
        for label, key, index in (
            ("AEB k-fold F1", "aeb", 0),
            ("dragnet-dev F1", "dragnet", 0),
            ("AEB headline accuracy", "aeb", 1),
            ("dragnet-dev headline accuracy", "dragnet", 1),
        ):
            value = figures[key][name][index]
            target = TARGETS["headline" if index else key]
            verdict = "holds" if value >= target else "DOES NOT HOLD"
            print(f"TARGET {name:<10} {label:<30} {value:.3f} vs >= {target:.2f}: {verdict}")
    return figures


def main() -> None:
    """Print the text-dump report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worst", type=int, default=0, help="list the N worst pages of each renderer")
    args = parser.parse_args()
    if not DRAGNET.exists():
        sys.exit(f"dragnet-dev not found at {DRAGNET}")
    report(args.worst)


if __name__ == "__main__":
    main()
