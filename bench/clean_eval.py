"""Score the clean stage on the Scrapinghub article-extraction benchmark, beside trafilatura and readability.

The metric follows the benchmark's README/evaluate.py: \\w+ tokens, 4-gram shingles counted with
multiplicity, per-page tp/fp/fn normalised to sum 1, precision averaged over pages with any
prediction, recall over pages with any truth, F1 from the two means. We also print the mean per-page
F1 where an empty output counts 0. Speed is pages per CPU-second of one process; the ratio against
trafilatura comes from running both page by page, alternating, so both see the same machine load.
The last lines state each issue-3 target, its value and whether it holds.

    .venv/bin/python bench/clean_eval.py            # HTML and text-dump scores, ours and baselines
    .venv/bin/python bench/clean_eval.py --quick    # ours only (HTML and text dumps), no speed ratio
    .venv/bin/python bench/clean_eval.py --worst 10 # also list the ten worst pages of ours (HTML, dumps)
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.textdump import render  # path set up above
from schemas.raw import RawArticle
from workers.errors import PermanentError
from workers.stages.clean import clean

BENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "scrapinghub-aeb"
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


def ours(body: str) -> str:
    """Our clean stage on one page; a dead letter counts as empty output."""
    try:
        return clean(RawArticle(source="bench", body=body), "0" * 32).text
    except PermanentError:
        return ""


def trafilatura_default(body: str) -> str:
    """trafilatura.extract with its defaults."""
    import trafilatura

    return trafilatura.extract(body) or ""


def trafilatura_precision(body: str) -> str:
    """trafilatura.extract with favor_precision."""
    import trafilatura

    return trafilatura.extract(body, favor_precision=True) or ""


def readability_lxml(body: str) -> str:
    """readability-lxml's summary, as text with a newline per block."""
    import lxml.html
    from readability import Document

    html = Document(body).summary(html_partial=True)
    return "\n".join(t.strip() for t in lxml.html.fromstring(html).itertext() if t.strip())


def run(
    name: str, fn: Callable[[str], str], inputs: dict[str, str], truth: dict[str, str]
) -> tuple[float, dict[str, str]]:
    """Run one extractor over all inputs, print its scores and speed, return (CPU seconds, outputs).

    The machine may be shared, so speed is shown both as wall-clock and per CPU-second of this
    process (one core); ratios use CPU time.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    outputs = {key: fn(body) for key, body in inputs.items()}
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    m = summarise([tp_fp_fn(truth[k], outputs[k]) for k in truth])
    print(
        f"{name:<28} F1={m['f1']:.3f}  P={m['precision']:.3f}  R={m['recall']:.3f}  "
        f"page-F1(empty=0)={m['page_f1']:.3f}  empty={int(m['empty'])}  "
        f"{len(inputs) / seconds:6.1f} pages/s wall, {len(inputs) / cpu:6.1f} pages/s per CPU-second",
        flush=True,
    )
    return cpu, outputs


def run_interleaved(
    fns: dict[str, Callable[[str], str]], inputs: dict[str, str], truth: dict[str, str]
) -> dict[str, tuple[float, dict[str, str]]]:
    """Run several extractors page by page, alternating their order, and print each one's scores.

    Other processes share the machine, so contention drifts over a run; measuring the extractors
    side by side on each page exposes them to the same load, which keeps CPU-time ratios steady.
    Returns each extractor's (CPU seconds, outputs).
    """
    cpu = dict.fromkeys(fns, 0.0)
    outputs: dict[str, dict[str, str]] = {name: {} for name in fns}
    names = list(fns)
    for index, (key, body) in enumerate(inputs.items()):
        for name in names if index % 2 == 0 else names[::-1]:
            start = time.process_time()
            outputs[name][key] = fns[name](body)
            cpu[name] += time.process_time() - start
    for name in names:
        m = summarise([tp_fp_fn(truth[k], outputs[name][k]) for k in truth])
        print(
            f"{name:<28} F1={m['f1']:.3f}  P={m['precision']:.3f}  R={m['recall']:.3f}  "
            f"page-F1(empty=0)={m['page_f1']:.3f}  empty={int(m['empty'])}  "
            f"{len(inputs) / cpu[name]:6.1f} pages/s per CPU-second (interleaved)",
            flush=True,
        )
    return {name: (cpu[name], outputs[name]) for name in names}


def _target(name: str, value: float, target: float, unit: str = "") -> None:
    verdict = "holds" if value >= target else "DOES NOT HOLD"
    print(f"TARGET {name:<42} {value:.3f}{unit} vs >= {target:.3f}{unit}: {verdict}")


def _worst(
    label: str, n: int, outputs: dict[str, str], truth: dict[str, str], gt: dict[str, dict[str, str]]
) -> None:
    print(f"\nWorst {n} pages of newsflow clean ({label}):")
    scored = sorted((summarise([tp_fp_fn(truth[k], outputs[k])])["page_f1"], k) for k in truth)
    for f1, key in scored[:n]:
        print(f"  {f1:.3f} {key[:16]} {gt[key].get('url', '')}")


def main() -> None:
    """Print the benchmark figures of the clean stage and its baselines."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="skip the baselines")
    parser.add_argument("--worst", type=int, default=0, help="list the N worst pages of ours on HTML")
    args = parser.parse_args()
    if not BENCH.exists():
        sys.exit(f"benchmark not found at {BENCH}")
    gt = json.loads((BENCH / "ground-truth.json").read_text(encoding="utf-8"))
    truth = {key: item.get("articleBody", "") for key, item in gt.items()}
    htmls = {
        key: gzip.decompress((BENCH / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8") for key in gt
    }
    for body in list(htmls.values())[:3]:
        ours(body)  # warm up lazy imports and models so they do not count as page time
        trafilatura_default(body)

    print(f"HTML pages ({len(htmls)})")
    if args.quick:
        _seconds, ours_out = run("newsflow clean", ours, htmls, truth)
        ratio = None
    else:
        pair = run_interleaved(
            {"newsflow clean": ours, "trafilatura 2.3.1": trafilatura_default}, htmls, truth
        )
        ours_seconds, ours_out = pair["newsflow clean"]
        ratio = pair["trafilatura 2.3.1"][0] / ours_seconds
        run("trafilatura favor_precision", trafilatura_precision, htmls, truth)
        run("readability-lxml", readability_lxml, htmls, truth)
        print(f"speed ratio newsflow/trafilatura (CPU time, interleaved, same run): {ratio:.2f}")

    dumps = {key: render(body) for key, body in htmls.items()}
    print(f"\nText dumps ({len(dumps)}, rendered by bench/textdump.py)")
    _seconds, dump_out = run("newsflow clean", ours_text, dumps, truth)
    if not args.quick:
        run("whole dump (no cleaning)", lambda body: body, dumps, truth)

    if args.worst:
        _worst("HTML", args.worst, ours_out, truth, gt)
        _worst("text dumps", args.worst, dump_out, truth, gt)

    print()
    _target("HTML F1 (issue 3)", summarise([tp_fp_fn(truth[k], ours_out[k]) for k in truth])["f1"], 0.970)
    _target(
        "text-dump F1 (issue 3)", summarise([tp_fp_fn(truth[k], dump_out[k]) for k in truth])["f1"], 0.930
    )
    if ratio is not None:
        # 30 pages/s on one core where trafilatura alone does about 35: a ratio of 30/35.
        _target("speed, pages/CPU-s vs trafilatura (issue 3)", ratio, 30 / 35, "x")
    else:
        print("TARGET speed: not measured with --quick (needs trafilatura in the same run)")


def ours_text(body: str) -> str:
    """Our clean stage on a text dump."""
    try:
        return clean(RawArticle(source="bench", body=body, content_type="text/plain"), "0" * 32).text
    except PermanentError:
        return ""


if __name__ == "__main__":
    main()
