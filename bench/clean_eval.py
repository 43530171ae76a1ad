"""Score the clean stage's HTML path on two dev sets, beside trafilatura, readability and resiliparse.

The metric follows the AEB benchmark's README/evaluate.py: \\w+ tokens, 4-gram shingles counted with
multiplicity, per-page tp/fp/fn normalised to sum 1, precision averaged over pages with any
prediction, recall over pages with any truth, F1 from the two means. We also print the mean per-page
F1 where an empty output counts 0, the empty outputs, the outputs holding ` | ` (joined table
cells) and the median CPU ms per page of each extractor, all run page by page in this process
(alternating their order), with the per-page oracle of trafilatura and readability: the bar.

Two dev sets, two eras. AEB (181 modern pages, 126 sites, MIT): "k-fold" scores every page with the
ensemble model fitted on the other folds' sites (`bench/train_ensemble.py`) and every switchable
rule chosen on the other folds (the ablation table prints both). dragnet-dev (316 pages of 2012,
223 sites, AGPL-3.0): nothing is fitted on it; the one choice made on it (which design) is made on
half of its sites and measured on the other half, both ways. Text dumps (w3m, lynx, html2text on
both dev sets, with headline accuracy) follow, from `bench/textdump_eval.py`.

    .venv/bin/python bench/clean_eval.py             # HTML, then text dumps
    .venv/bin/python bench/clean_eval.py --html-only # HTML only
    .venv/bin/python bench/clean_eval.py --text-only # text dumps only (same as bench/textdump_eval.py)
    .venv/bin/python bench/clean_eval.py --worst 10  # also list the ten worst pages of ours

The k-fold figures refit the models per fold: install the `train` extra first
(`.venv/bin/pip install -e '.[train]'`, scikit-learn).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FOLDS, fold_of, load_benchmark, summarise, tp_fp_fn  # path set up above
from schemas.raw import RawArticle
from workers.core.errors import PermanentError
from workers.stages.clean import clean
from workers.stages.cleaning.extraction import CleanOptions

BENCH = Path(__file__).resolve().parents[1] / ".." / "shared" / "benchmarks" / "scrapinghub-aeb"


def ours(body: str, options: CleanOptions | None = None) -> str:
    """Our clean stage on one page; a dead letter counts as empty output."""
    try:
        return clean(RawArticle(source="bench", body=body), "0" * 32, options=options).text
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
    print(f"TARGET {name:<46} {value:.4f}{unit} vs >= {target:.4f}{unit}: {verdict}")


def _worst(label: str, n: int, outputs: dict[str, str], truth: dict[str, str], sites: dict[str, str]) -> None:
    print(f"\nWorst {n} pages of newsflow clean ({label}):")
    scored = sorted((summarise([tp_fp_fn(truth[k], outputs[k])])["page_f1"], k) for k in truth)
    for f1, key in scored[:n]:
        print(f"  {f1:.3f} {key[:16]} {sites[key]}")


def f1_of(outputs: dict[str, str], truth: dict[str, str], keys: list[str] | None = None) -> float:
    """The benchmark F1 of these outputs over `keys` (default: all pages)."""
    return summarise([tp_fp_fn(truth[k], outputs[k]) for k in (keys if keys is not None else truth)])["f1"]


def _line(name: str, outputs: dict[str, str], truth: dict[str, str], extra: str = "") -> None:
    m = summarise([tp_fp_fn(truth[k], outputs[k]) for k in truth])
    print(
        f"  {name:<34} F1={m['f1']:.3f}  P={m['precision']:.3f}  R={m['recall']:.3f}  "
        f"page-F1={m['page_f1']:.3f}  empty={int(m['empty'])}{extra}",
        flush=True,
    )


Config = tuple[tuple[str, bool], ...]


def held_out_selection(
    defaults: dict[str, bool],
    run_config: Callable[[Config], dict[str, str]],
    truth: dict[str, str],
    sites: dict[str, str],
) -> dict[str, str]:
    """Print the ablation of each switch and return the k-fold outputs.

    Each switch starts at its production default; for each fold, it keeps the default only if
    flipping it (every other switch at its default) does not raise the F1 of the other folds'
    pages, and the fold's pages are then scored with the switches so chosen.
    """
    names = list(defaults)
    base = run_config(tuple(defaults.items()))
    flipped = {name: run_config(tuple((n, v != (n == name)) for n, v in defaults.items())) for name in names}
    folds = {f: [k for k in truth if fold_of(sites[k]) == f] for f in range(FOLDS)}
    folds = {f: keys for f, keys in folds.items() if keys}
    kfold: dict[str, str] = {}
    default_everywhere = set(names)
    for fold, keys in folds.items():
        train = [k for k in truth if fold_of(sites[k]) != fold]
        choice = []
        for name in names:
            keep = f1_of(base, truth, train) >= f1_of(flipped[name], truth, train)
            choice.append((name, defaults[name] if keep else not defaults[name]))
            if not keep:
                default_everywhere.discard(name)
        outputs = run_config(tuple(choice))
        kfold.update({k: outputs[k] for k in keys})
    print("  ablation (F1 with the switch at its default / flipped; held-out = mean over the folds):")
    for name in names:
        held_base = sum(f1_of(base, truth, keys) for keys in folds.values()) / len(folds)
        held_flip = sum(f1_of(flipped[name], truth, keys) for keys in folds.values()) / len(folds)
        verdict = "default held on every fold" if name in default_everywhere else "flipped on some fold"
        print(
            f"    {name:<16} default={defaults[name]!s:<5}  full {f1_of(base, truth):.3f} / "
            f"{f1_of(flipped[name], truth):.3f}   held-out {held_base:.3f} / {held_flip:.3f}   {verdict}"
        )
    return kfold


def resiliparse_main(body: str) -> str:
    """resiliparse's main-content extraction with its defaults."""
    from resiliparse.extract.html2text import extract_plain_text

    return str(extract_plain_text(body, main_content=True))


def oracle_of(outputs: list[dict[str, str]], truth: dict[str, str]) -> dict[str, str]:
    """Per page, the output with the best page F1 (needs the truth: a bar, not a method)."""
    return {
        k: max((o[k] for o in outputs), key=lambda t, k=k: summarise([tp_fp_fn(truth[k], t)])["page_f1"])
        for k in truth
    }


def _pipes(outputs: dict[str, str]) -> int:
    return sum(1 for text in outputs.values() if " | " in text)


def _peers(
    label: str, htmls: dict[str, str], truth: dict[str, str], options_for: Callable[[str], CleanOptions]
) -> tuple[dict[str, str], dict[str, str], list[float], list[float]]:
    """Run ours (shipped model) and the peers page by page in this process; print each line.

    Returns (ours, oracle of trafilatura and readability, our CPU ms per page, trafilatura's).
    """
    fns: dict[str, Callable[[str], str]] = {
        "newsflow clean (shipped model)": lambda body: body,  # placeholder, replaced per page below
        "trafilatura 2.3.1": trafilatura_default,
        "readability-lxml": readability_lxml,
        "resiliparse main_content": resiliparse_main,
    }
    names = list(fns)
    outputs: dict[str, dict[str, str]] = {name: {} for name in names}
    ms: dict[str, list[float]] = {name: [] for name in names}
    for index, (key, body) in enumerate(htmls.items()):
        for name in names if index % 2 == 0 else names[::-1]:
            start = time.process_time()
            if name == names[0]:
                outputs[name][key] = ours(body, options_for(key))
            else:
                try:
                    outputs[name][key] = fns[name](body)
                except Exception:  # a peer failing on a page scores it empty
                    outputs[name][key] = ""
            ms[name].append(1000 * (time.process_time() - start))
    print(f"\n{label}")
    for name in names:
        _line(
            name,
            outputs[name],
            truth,
            f"  pipes={_pipes(outputs[name])}  median {statistics.median(ms[name]):.1f} ms CPU",
        )
    oracle = oracle_of([outputs["trafilatura 2.3.1"], outputs["readability-lxml"]], truth)
    _line("oracle max(trafilatura, readability)", oracle, truth, "  (per page, needs the truth)")
    return outputs[names[0]], oracle, ms[names[0]], ms["trafilatura 2.3.1"]


def main() -> None:  # one report, printed in order
    """Print the benchmark figures of the clean stage's HTML path and its peers on both dev sets."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worst", type=int, default=0, help="list the N worst pages of ours")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--html-only", action="store_true", help="skip the text-dump report")
    only.add_argument("--text-only", action="store_true", help="only the text-dump report")
    args = parser.parse_args()
    if not BENCH.exists():
        sys.exit(f"benchmark not found at {BENCH}")
    if not args.text_only:
        html_report(args.worst)
    if not args.html_only:
        from bench.textdump_eval import report

        print("\n== text dumps ==")
        report(args.worst)


def html_report(worst: int) -> None:
    """Print the HTML figures: both dev sets beside the peers, the k-fold and held-out choices, targets."""
    from bench.common import load_dragnet
    from bench.train_ensemble import cached_pages, kfold_models
    from workers.stages.cleaning.ensemble import load_model, model_from_json

    truth, htmls, sites = load_benchmark()
    d_truth, d_htmls, d_sites = load_dragnet()
    for body in list(htmls.values())[:3]:
        ours(body)  # warm up lazy imports and models so they do not count as page time
        trafilatura_default(body)
        readability_lxml(body)
        resiliparse_main(body)

    shipped = load_model()
    print(f"shipped ensemble model {shipped.version}: fitted on all AEB pages (MIT), never on dragnet-dev")
    aeb_ours, aeb_oracle, aeb_ms, aeb_traf_ms = _peers(
        f"AEB: {len(htmls)} pages from {len(set(sites.values()))} sites",
        htmls,
        truth,
        lambda _key: CleanOptions(),
    )
    d_ours, d_oracle, d_ms, d_traf_ms = _peers(
        f"dragnet-dev: {len(d_htmls)} pages of 2012 from {len(set(d_sites.values()))} sites (AGPL: measured only)",
        d_htmls,
        d_truth,
        lambda _key: CleanOptions(),
    )

    # AEB k-fold: each page scored by the model fitted on the other folds' sites, and every switch
    # chosen on the other folds (held_out_selection).
    print(f"\nAEB k-fold over sites ({FOLDS} folds): models fitted and switches chosen on the other folds")
    fold_models = {
        f: model_from_json(m) for f, m in kfold_models(cached_pages("aeb", htmls), truth, sites).items()
    }
    cache: dict[Config, dict[str, str]] = {}

    def aeb_config(config: Config) -> dict[str, str]:
        if config not in cache:
            switches = dict(config)
            cache[config] = {
                k: ours(b, CleanOptions(ensemble_model=fold_models[fold_of(sites[k])], **switches))
                for k, b in htmls.items()
            }
        return cache[config]

    html_defaults = {"chrome_lines": False, "html_repeats": False}
    aeb_kfold = held_out_selection(html_defaults, aeb_config, truth, sites)
    _line("newsflow clean, k-fold over sites", aeb_kfold, truth, f"  pipes={_pipes(aeb_kfold)}")
    _line("newsflow clean, shipped model (fitted on these)", aeb_ours, truth)
    old = {k: ours(b, CleanOptions(ensemble=False)) for k, b in htmls.items()}
    _line("clean-1.2 design (trafilatura + readability merge)", old, truth, f"  pipes={_pipes(old)}")

    # dragnet-dev: nothing fitted on it. The one choice made on it (which design, whether the chrome
    # rules run after the model) is made on half of its sites and measured on the other half.
    print("\ndragnet-dev: design chosen on one half of its sites, measured on the other half")
    designs: dict[str, dict[str, str]] = {
        "ensemble alone": d_ours,
        "ensemble + chrome rules": {k: ours(b, CleanOptions(chrome_lines=True)) for k, b in d_htmls.items()},
        "clean-1.2 design": {k: ours(b, CleanOptions(ensemble=False)) for k, b in d_htmls.items()},
    }
    halves = {h: [k for k in d_truth if zlib.crc32(d_sites[k].encode("utf-8")) % 2 == h] for h in (0, 1)}
    d_held: dict[str, str] = {}
    for half, keys in halves.items():
        other = halves[1 - half]
        choice = max(designs, key=lambda name: f1_of(designs[name], d_truth, other))
        d_held.update({k: designs[choice][k] for k in keys})
        figures = "  ".join(f"{name} {f1_of(out, d_truth, keys):.3f}" for name, out in designs.items())
        print(
            f"  half {half} ({len(keys)} pages): chosen on half {1 - half}: {choice!r} -> "
            f"{f1_of(designs[choice], d_truth, keys):.3f}; oracle {f1_of(d_oracle, d_truth, keys):.3f}; all: {figures}"
        )
    _line("newsflow clean, choice held out", d_held, d_truth, f"  pipes={_pipes(d_held)}")
    for name, out in designs.items():
        _line(name, out, d_truth, f"  pipes={_pipes(out)}")

    silent = 0
    for body in htmls.values():
        with contextlib.suppress(PermanentError):
            silent += not clean(RawArticle(source="bench", body=body), "0" * 32).removed
    print(f"\naudit: AEB pages with nothing listed in `removed`: {silent} of {len(htmls)}")
    if worst:
        _worst("AEB, k-fold", worst, aeb_kfold, truth, sites)
        _worst("dragnet-dev, shipped", worst, d_ours, d_truth, d_sites)

    all_ms = aeb_ms + d_ms
    traf_ms = aeb_traf_ms + d_traf_ms
    empty_aeb = sum(1 for k in truth if not aeb_kfold[k])
    empty_d = sum(1 for k in d_truth if not d_held[k])
    print(
        f"CPU per page (median over both dev sets): newsflow clean {statistics.median(all_ms):.1f} ms, "
        f"trafilatura alone {statistics.median(traf_ms):.1f} ms (same process, interleaved)"
    )
    print()
    _target("AEB k-fold F1 (issue 16)", f1_of(aeb_kfold, truth), 0.977)
    _target("AEB k-fold F1 above oracle(traf, read)", f1_of(aeb_kfold, truth), f1_of(aeb_oracle, truth))
    _target("dragnet-dev held-out F1 (issue 16)", f1_of(d_held, d_truth), 0.945)
    _target("dragnet-dev F1 above oracle(traf, read)", f1_of(d_held, d_truth), f1_of(d_oracle, d_truth))
    print(f"TARGET {'no_content / empty outputs (AEB, dragnet-dev)':<46} {empty_aeb}, {empty_d} vs 0")
    pipes = _pipes(aeb_kfold) + _pipes(d_held)
    label = "outputs containing ' | ' (both sets)"
    print(f"TARGET {label:<46} {pipes} vs 0")
    median = statistics.median(all_ms)
    verdict = "holds" if median <= 45 else "DOES NOT HOLD"
    print(f"TARGET {'clean CPU ms per page, median':<46} {median:.1f} vs <= 45: {verdict}")


if __name__ == "__main__":
    main()
