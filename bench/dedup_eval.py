"""Dedup benchmark: quality on a labelled syndication set, pure-stage throughput, index scale.

    .venv/bin/python bench/dedup_eval.py                      # everything, sizes 10k,100k,1M
    .venv/bin/python bench/dedup_eval.py --only quality       # or throughput / scale
    .venv/bin/python bench/dedup_eval.py --only scale --sizes 10000,100000

Quality: a labelled set built from the ground-truth bodies of ../shared/benchmarks/scrapinghub-aeb:
syndicated copies (other site chrome, changed headline, trimmed tail, inserted ad lines, 3-5% word
edits, combined at random), exact copies (whitespace, zero-width, homoglyph and width variants),
revisions (same URL up to tracking parameters or AMP, a paragraph added) and hard negatives
(different articles built from sentences of many others, sharing the original's names and one or
two of its sentences; follow-ups that reuse its opening paragraph). Every article goes through the
real `ensure_verdict` on SQLite, in a shuffled order; pair precision/recall, ARI and merged hard
negatives are computed from the clusters the index ends with.

Scale: a private PostgreSQL (tests/servers.py, or --database-url) is bulk-loaded to each size with
synthetic rows shaped like the real index of the seed articles (the same signature, evidence and
verdict sizes, three exact keys, as many band keys and `dedup_lines` rows per article; server-side
INSERT ... SELECT, the big primary keys rebuilt), then new articles go through the real
`ensure_verdict`, one transaction each: latency p50/p99 of that index step, and rows and bytes per
article (pg_total_relation_size, indexes and TOAST included) of every dedup table.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from schemas.cleaned import CleanedArticle  # noqa: E402
from workers.db.dedup_index import ensure_verdict  # noqa: E402
from workers.db.engine import get_engine, transaction, upgrade  # noqa: E402
from workers.stages.dedup import DedupParams, fingerprint, raw_key  # noqa: E402

# ../shared beside the checkout; NEWSFLOW_SHARED points elsewhere (a git worktree has none beside it)
GROUND_TRUTH = (
    Path(os.environ.get("NEWSFLOW_SHARED", ROOT.parent / "shared"))
    / "benchmarks"
    / "scrapinghub-aeb"
    / "ground-truth.json"
)
T0 = datetime(2024, 3, 1, tzinfo=UTC)

SITES = [
    (
        "dailyplanet.example",
        ["Home » World » Asia", "The Daily Planet"],
        [
            "© 2024 The Daily Planet. All rights reserved.",
            "Subscribe to our newsletter for the latest headlines.",
        ],
    ),
    (
        "ctnnews.example",
        ["Connect with us", "World News", "Avatar of CTN News"],
        ["Share this: Facebook Twitter WhatsApp Email", "Related Topics: Asia Pacific"],
    ),
    (
        "metrowire.example",
        ["Metro Wire | Breaking News", "Updated 3 hours ago"],
        ["Copyright 2024 Metro Wire Media Group", "Sign up for our daily briefing"],
    ),
    (
        "valleyherald.example",
        ["Valley Herald", "By Staff Writer"],
        ["Comments are closed.", "More from Valley Herald: Local | Sports | Business"],
    ),
    (
        "globalpost.example",
        ["GlobalPost", "Menu Search Sign in"],
        ["Follow us on Twitter and Facebook", "Terms of Use | Privacy Policy | Contact"],
    ),
    (
        "newsline.example",
        ["NEWSLINE", "Latest Stories"],
        ["This story was provided by a wire service.", "Back to top"],
    ),
]
ADS = [
    "Advertisement",
    "Story continues below advertisement",
    "READ MORE: The 10 best deals this weekend",
    "Sponsored: Compare mortgage rates in your area today",
    "Click here to subscribe for just $1 a week",
    "ADVERTISEMENT - CONTINUE READING BELOW",
]
HEADLINES = [
    "Officials confirm details",
    "What we know so far",
    "Breaking update",
    "Report: talks continue",
    "Analysis of the latest",
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"“])")
_NAME = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})*")


@dataclass
class Item:
    """One article of the labelled stream and what it should be."""

    article: CleanedArticle
    group: str  # articles of one group are the same story (pairs within a group are true pairs)
    role: str  # original / copy / exact / revision / negative / followup
    tags: tuple[str, ...] = ()
    source: str | None = None  # the original a copy/revision/negative derives from
    order_after: str | None = None  # must be processed after this article
    expected: str = "unique"
    extra: dict[str, object] = field(default_factory=dict)


def _paragraphs(body: str) -> list[str]:
    paras = [p.strip() for p in re.split(r"\n+", body) if p.strip()]
    return paras or [body.strip()]


def _sentences(body: str) -> list[str]:
    return [s.strip() for p in _paragraphs(body) for s in _SENTENCE.split(p) if len(s.split()) >= 6]


def _edit_words(paras: list[str], rate: float, vocab: list[str], rng: random.Random) -> list[str]:
    tokens = [p.split(" ") for p in paras]
    total = sum(len(t) for t in tokens)
    for _ in range(max(1, round(rate * total))):
        p = rng.randrange(len(tokens))
        if not tokens[p]:
            continue
        i = rng.randrange(len(tokens[p]))
        op = rng.random()
        if op < 0.4:
            tokens[p][i] = rng.choice(vocab)
        elif op < 0.7 and len(tokens[p]) > 1:
            del tokens[p][i]
        else:
            tokens[p].insert(i, rng.choice(vocab))
    return [" ".join(t) for t in tokens if t]


def _exact_variant(body: str, rng: random.Random) -> str:
    out = []
    for word in body.split(" "):
        r = rng.random()
        if r < 0.03:
            out.append(word[:1] + "\u200b" + word[1:])
        elif r < 0.06:
            out.append(word.replace("a", "а").replace("o", "о"))  # Cyrillic look-alikes
        elif r < 0.08:
            out.append(word.upper())
        else:
            out.append(word)
    text_ = "  ".join(out) if rng.random() < 0.5 else " ".join(out)
    return text_.replace("1", "１").replace(",", " ,")  # fullwidth digit (NFKC), spacing before punctuation


def _article_id(group: str, suffix: str) -> str:
    return f"{group}{suffix}"[:32]


def _with_names(sentence: str, names: list[str], rng: random.Random) -> str:
    """`sentence` with its capitalised names replaced by the original's names (same topic)."""
    return _NAME.sub(lambda _m: rng.choice(names), sentence)


def build_labelled_set(seed: int = 7, copies: int = 3) -> list[Item]:
    """The labelled stream, deterministic for a seed."""
    rng = random.Random(seed)
    data = json.loads(GROUND_TRUTH.read_text())
    bodies = [
        (key, v["articleBody"].strip(), v["url"])
        for key, v in sorted(data.items())
        if len(v["articleBody"].split()) >= 60
    ]
    vocab = sorted({w for _, b, _ in bodies for w in b.split() if w.isalpha() and len(w) > 2})
    all_sentences = [(k, s) for k, b, _ in bodies for s in _sentences(b)]
    by_article: dict[str, list[str]] = defaultdict(list)
    for k, s in all_sentences:
        by_article[k].append(s)
    items: list[Item] = []
    for n, (key, body, url) in enumerate(bodies):
        gid = key[:24]
        aid = functools.partial(_article_id, gid)
        published = T0 + timedelta(hours=n)
        paras = _paragraphs(body)
        names = sorted(set(_NAME.findall(body))) or ["Smith"]
        original = CleanedArticle(
            article_id=aid("o"),
            version="bench",
            title="Original headline",
            text=body,
            url=url,
            published_at=published,
        )
        items.append(Item(original, gid, "original", source=original.article_id))
        for c in range(copies):
            site, header, footer = SITES[(n + c) % len(SITES)]
            tags = ["edits"]
            new = list(paras)
            if rng.random() < 0.5 and len(new) > 2:
                keep = max(1, round(len(new) * rng.uniform(0.55, 0.9)))
                new = new[:keep]
                tags.append("trim")
            new = _edit_words(new, rng.uniform(0.03, 0.05), vocab, rng)
            if rng.random() < 0.6:
                for _ in range(rng.randint(1, 3)):
                    new.insert(rng.randint(1, max(1, len(new))), rng.choice(ADS))
                tags.append("ads")
            if rng.random() < 0.7:
                new = header + new + footer
                tags.append("chrome")
            if rng.random() < 0.5:
                new.insert(0, rng.choice(HEADLINES) + " " + rng.choice(names))
                tags.append("headline_in_text")
            early = rng.random() < 0.15
            when = (
                published - timedelta(minutes=30)
                if early
                else published + timedelta(minutes=rng.randint(10, 600))
            )
            art = CleanedArticle(
                article_id=aid(f"c{c}"),
                version="bench",
                title=rng.choice(HEADLINES),
                text="\n\n".join(new),
                url=f"https://www.{site}/news/{n}-{c}",
                published_at=when,
                site_name=site,
            )
            items.append(Item(art, gid, "copy", tuple(tags), original.article_id, expected="near_duplicate"))
        if n % 4 == 0:
            art = CleanedArticle(
                article_id=aid("x"),
                version="bench",
                text=_exact_variant(body, rng),
                url=f"https://mirror.example/{n}",
                published_at=published + timedelta(hours=2),
            )
            items.append(Item(art, gid, "exact", ("exact",), original.article_id, expected="exact_duplicate"))
        if n % 3 == 0:
            foreign = [s for k, s in rng.sample(all_sentences, 3) if k != key]
            update = "Update: " + " ".join(foreign)
            variant = (
                url.replace("https://", "http://").rstrip("/")
                + "/?utm_source=twitter&utm_medium=social#comments"
            )
            art = CleanedArticle(
                article_id=aid("r"),
                version="bench",
                text="\n\n".join([*paras, update]),
                url=variant,
                published_at=published + timedelta(hours=5),
            )
            items.append(
                Item(
                    art, gid, "revision", ("revision",), original.article_id, original.article_id, "revision"
                )
            )
        # hard negative: same topic (names) and one or two shared sentences, otherwise other articles' sentences
        own = _sentences(body)
        target = max(6, len(own))
        others = [k for k in by_article if k != key]
        picked = [
            _with_names(rng.choice(by_article[k]), names, rng)
            for k in (rng.sample(others, min(target, len(others))) * 2)[:target]
        ]
        short_own = [s for s in own if len(s.split()) <= 40]
        for s in rng.sample(short_own, min(2, len(short_own))):
            picked.insert(rng.randrange(len(picked) + 1), s)
        art = CleanedArticle(
            article_id=aid("n"),
            version="bench",
            text="\n\n".join(" ".join(picked[i : i + 3]) for i in range(0, len(picked), 3)),
            url=f"https://rival.example/story/{n}",
            published_at=published + timedelta(hours=1),
        )
        items.append(Item(art, f"{gid}-neg", "negative", ("negative",), original.article_id))
        # follow-up: reuses the opening paragraph as background (only if it is at most 20% of the original)
        if len(paras) >= 4 and len(paras[0].split()) <= 0.2 * len(body.split()):
            extra_s: list[str] = []
            while len(" ".join(extra_s).split()) < min(600, 2 * len(body.split())):
                k, s = rng.choice(all_sentences)
                if k != key:
                    extra_s.append(_with_names(s, names, rng))
            art = CleanedArticle(
                article_id=aid("f"),
                version="bench",
                text="\n\n".join([paras[0], " ".join(extra_s)]),
                url=f"https://rival.example/followup/{n}",
                published_at=published + timedelta(days=1),
            )
            items.append(Item(art, f"{gid}-fu", "followup", ("negative",), original.article_id))
    items = _drop_ambiguous_negatives(items)
    rng.shuffle(items)
    # revisions after their originals (same URL: it must be the second one seen)
    seen: set[str] = set()
    ordered: list[Item] = []
    waiting: list[Item] = []
    for item in items:
        (waiting if item.order_after and item.order_after not in seen else ordered).append(item)
        seen.add(item.article.article_id)
    return ordered + waiting


def _grams(body: str) -> set[tuple[str, ...]]:
    tokens = re.findall(r"\w+", body.lower())
    return {tuple(tokens[i : i + 5]) for i in range(max(1, len(tokens) - 4))}


def _drop_ambiguous_negatives(items: list[Item]) -> list[Item]:
    """Keep a negative only if it shares at most 25% of the smaller side's word 5-grams with every
    original: a label must be true independently of the detector under test."""
    others = [_grams(i.article.text) for i in items if i.role == "original"]
    kept = []
    for item in items:
        if item.role in {"negative", "followup"}:
            grams = _grams(item.article.text)
            if any(len(grams & o) > 0.25 * min(len(grams), len(o)) for o in others):
                continue
            others.append(grams)  # negatives must not repeat one another either
        kept.append(item)
    return kept


def _pairs(sizes: list[int]) -> int:
    return sum(s * (s - 1) // 2 for s in sizes)


def _ari(labels_true: list[str], labels_pred: list[str]) -> float:
    contingency = Counter(zip(labels_true, labels_pred, strict=True))
    sum_comb = _pairs(list(contingency.values()))
    a = _pairs(list(Counter(labels_true).values()))
    b = _pairs(list(Counter(labels_pred).values()))
    n = _pairs([len(labels_true)])
    expected = a * b / n
    return (sum_comb - expected) / (0.5 * (a + b) - expected)


def run_quality(params: DedupParams, seed: int = 7) -> dict[str, float]:
    """Build the labelled set, run it through ensure_verdict on SQLite and print the figures."""
    items = build_labelled_set(seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/quality.db"
        upgrade(url)
        verdicts = {}
        started = time.perf_counter()
        for item in items:
            with transaction(url) as session:
                verdicts[item.article.article_id] = ensure_verdict(session, item.article, params)
        elapsed = time.perf_counter() - started
        with get_engine(url).connect() as conn:
            clusters = dict(conn.execute(text("SELECT article_id, cluster_id FROM dedup_signatures")).all())
        get_engine(url).dispose()
    # the same clusters rebuilt from the verdicts alone, applying `supersedes` as the store step does
    from_verdicts: dict[str, str] = {}
    for item in items:
        v = verdicts[item.article.article_id]
        if v.supersedes:
            for k, c in from_verdicts.items():
                if c == v.supersedes:
                    from_verdicts[k] = v.cluster_id
        from_verdicts[v.article_id] = v.cluster_id
    truth = [i.group for i in items]
    pred = [clusters[i.article.article_id] for i in items]
    joint = Counter(zip(truth, pred, strict=True))
    tp = _pairs(list(joint.values()))
    pred_pairs = _pairs(list(Counter(pred).values()))
    true_pairs = _pairs(list(Counter(truth).values()))
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    cluster_size = Counter(pred)
    negatives = [i for i in items if i.role in {"negative", "followup"}]
    merged_negatives = [i for i in negatives if cluster_size[clusters[i.article.article_id]] > 1]
    original_cluster = {
        i.article.article_id: clusters[i.article.article_id] for i in items if i.role == "original"
    }
    by_tag: dict[str, list[bool]] = defaultdict(list)
    for i in items:
        if i.role in {"copy", "exact", "revision"}:
            ok = clusters[i.article.article_id] == original_cluster[i.source or ""]
            for tag in i.tags:
                by_tag[tag].append(ok)
    # a verdict kind is only expected when the original was seen first (else the copy is the first)
    position = {i.article.article_id: n for n, i in enumerate(items)}
    kind_ok = Counter(
        (i.role, verdicts[i.article.article_id].kind == i.expected)
        for i in items
        if i.role != "original"
        and (
            i.source is None
            or i.role in {"negative", "followup"}
            or position[i.source] < position[i.article.article_id]
        )
    )
    # canonical: earliest published member of each fully merged group (first seen on ties)
    canonical_ok = canonical_total = 0
    first_seen = {i.article.article_id: n for n, i in enumerate(items)}
    members: dict[str, list[Item]] = defaultdict(list)
    for i in items:
        members[i.group].append(i)
    for group_items in members.values():
        cs = {clusters[i.article.article_id] for i in group_items}
        if len(group_items) > 1 and len(cs) == 1:
            canonical_total += 1
            best = min(group_items, key=lambda i: (i.article.published_at, first_seen[i.article.article_id]))
            canonical_ok += cs.pop() == best.article.article_id
    consistent = sum(from_verdicts[k] == clusters[k] for k in clusters) / len(clusters)
    roles = Counter(i.role for i in items)
    print(f"quality: {len(items)} articles ({dict(roles)}), params {params.as_record()}")
    print(
        f"  pair precision {precision:.4f}  recall {recall:.4f}  (true pairs {true_pairs}, predicted {pred_pairs}, correct {tp})"
    )
    print(f"  ARI {_ari(truth, pred):.4f}")
    print(f"  hard negatives merged: {len(merged_negatives)} of {len(negatives)}")
    for m in merged_negatives[:5]:
        cluster = clusters[m.article.article_id]
        others = [i for i in items if clusters[i.article.article_id] == cluster and i is not m]
        print(
            f"    merged {m.role} {m.article.article_id} (from {m.source}): {verdicts[m.article.article_id].reason}; with "
            + ", ".join(
                f"{o.role} {o.article.article_id} [{verdicts[o.article.article_id].duplicate_of}: {verdicts[o.article.article_id].reason}]"
                for o in others[:3]
            )
        )
    print(
        "  recall by transformation: "
        + ", ".join(f"{t} {sum(v)}/{len(v)}" for t, v in sorted(by_tag.items()))
    )
    print(
        "  verdict kind as expected (original seen first): "
        + ", ".join(
            f"{r} {kind_ok[(r, True)]}/{kind_ok[(r, True)] + kind_ok[(r, False)]}"
            for r in sorted(roles)
            if r != "original"
        )
    )
    print(f"  canonical = earliest published: {canonical_ok}/{canonical_total} merged groups")
    print(f"  clusters from verdicts + supersedes agree with the index: {consistent:.4f}")
    print(
        f"  ensure_verdict on SQLite: {len(items) / elapsed:.0f} articles/s (one transaction each, file DB)"
    )
    missed = [
        i
        for i in items
        if i.role == "copy" and clusters[i.article.article_id] != original_cluster[i.source or ""]
    ]
    for m in missed[:5]:
        print(
            f"    missed copy {m.article.article_id} tags={m.tags}: {verdicts[m.article.article_id].kind} {verdicts[m.article.article_id].reason}"
        )
    return {"precision": precision, "recall": recall, "merged_negatives": len(merged_negatives)}


def run_throughput(params: DedupParams, seconds: float = 5.0) -> None:
    """Pure stage (fingerprint + verify against a fixed candidate), articles/s on one core."""
    from workers.stages.dedup import Candidate, best_match

    data = json.loads(GROUND_TRUTH.read_text())
    articles = [
        CleanedArticle(article_id=k[:32], version="bench", text=v["articleBody"], url=v["url"])
        for k, v in data.items()
        if v["articleBody"].strip()
    ]
    words = statistics.mean(a.word_count for a in articles)
    base = fingerprint(articles[0], params)
    candidates = [Candidate("x" * 32, base.signature, base.shingles)] * 8
    count = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        for article in articles:
            fp = fingerprint(article, params)
            best_match(fp, candidates, params)
        count += len(articles)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(
        f"throughput (pure stage: fingerprint + verify 8 candidates, mean {words:.0f} words/article): "
        f"{count / cpu:.0f} articles/s per CPU-second, {count / wall:.0f} articles/s wall ({count} articles)"
    )


def _bodies() -> list[str]:
    data = json.loads(GROUND_TRUTH.read_text()) if GROUND_TRUTH.exists() else {}
    rng = random.Random(0)
    return [v["articleBody"] for v in data.values() if len(v["articleBody"].split()) >= 60] or [
        " ".join(f"w{rng.randrange(5000)}" for _ in range(600)) for _ in range(50)
    ]


def _seed_articles() -> list[CleanedArticle]:
    """The real bodies, indexed once before the first size: every probe set then meets the same mix."""
    return [
        CleanedArticle(
            article_id=f"s{n:031d}",
            version="bench",
            text=body,
            url=f"https://seed.example/{n}",
            published_at=T0,
        )
        for n, body in enumerate(_bodies())
    ]


def _probe_articles(size: int, count: int, params: DedupParams) -> list[CleanedArticle]:
    """New articles to decide at one index size: half 4%-edited copies of the seed bodies
    (near-duplicates: lookup, verification, cluster join), half with shuffled words (unique)."""
    rng = random.Random(size)
    bodies = _bodies()
    vocab = sorted({w for b in bodies for w in b.split()})
    out = []
    for n in range(count):
        body = bodies[n % len(bodies)]
        paras = _paragraphs(body)
        if n % 2:
            tokens = body.split()
            rng.shuffle(tokens)
            paras = [" ".join(tokens)]
        paras = _edit_words(paras, 0.04, vocab, rng)
        out.append(
            CleanedArticle(
                article_id=f"p{size:08d}{n:06d}".ljust(32, "0"),
                version="bench",
                text="\n\n".join(paras),
                url=f"https://probe.example/{size}/{n}",
                published_at=T0 + timedelta(minutes=n),
            )
        )
    return out


@dataclass(frozen=True)
class _Shape:
    """Per-article sizes of the real index, measured on the seed articles, that the bulk load copies."""

    bands: int
    lines: int
    evidence_bytes: int
    verdict_json: str


def _shape(url: str) -> _Shape:
    with get_engine(url).connect() as conn:
        articles = conn.execute(text("SELECT count(*) FROM dedup_signatures")).scalar_one()
        bands = conn.execute(text("SELECT count(*) FROM dedup_bands")).scalar_one()
        lines = conn.execute(text("SELECT count(*) FROM dedup_lines")).scalar_one()
        evidence = conn.execute(text("SELECT avg(length(evidence)) FROM dedup_signatures")).scalar_one()
        verdict = conn.execute(text("SELECT verdict FROM dedup_signatures LIMIT 1")).scalar_one()
    return _Shape(round(bands / articles), round(lines / articles), int(evidence or 0), verdict)


def _bulk_load(url: str, start: int, stop: int, params: DedupParams, shape: _Shape) -> float:
    """Insert synthetic articles [start, stop) server-side, shaped like the seed articles (`_Shape`):
    signature, evidence and verdict of the same sizes, three keys (raw, text, URL), as many band keys
    and `dedup_lines` rows (random keys, 2,000 sources); primary keys of the two big tables rebuilt."""
    import psycopg

    from tests.servers import libpq_url

    sig_bytes = 4 * params.num_perm
    t = time.perf_counter()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("ALTER TABLE dedup_bands DROP CONSTRAINT IF EXISTS dedup_bands_pkey")
        conn.execute("ALTER TABLE dedup_lines DROP CONSTRAINT IF EXISTS dedup_lines_pkey")
        for lo in range(start, stop, 250_000):
            hi = min(stop, lo + 250_000)
            after = conn.execute("SELECT coalesce(max(seq), 0) FROM dedup_signatures").fetchone()[0]  # type: ignore[index]
            conn.execute(
                """INSERT INTO dedup_signatures (article_id, signature, shingles, published_at, first_seen, cluster_id,
                                                 verdict, evidence)
                   SELECT lpad(to_hex(i), 32, '0'), substring(decode(repeat(md5(i::text), %(rep)s), 'hex') for %(bytes)s),
                          400 + i %% 600, now() - make_interval(secs => i), now(), lpad(to_hex(i), 32, '0'), %(verdict)s,
                          substring(decode(repeat(md5((-i)::text), %(erep)s), 'hex') for %(ebytes)s)
                   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i""",
                {
                    "rep": sig_bytes // 16 + 1,
                    "bytes": sig_bytes,
                    "erep": shape.evidence_bytes // 16 + 1,
                    "ebytes": shape.evidence_bytes,
                    "verdict": shape.verdict_json,
                    "lo": lo,
                    "hi": hi,
                },
            )
            conn.execute(
                """INSERT INTO dedup_keys (kind, key, article_id)
                   SELECT k.kind, md5(k.kind || i::text), lpad(to_hex(i), 32, '0')
                   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i,
                        (VALUES ('raw'), ('text'), ('url')) AS k(kind)""",
                {"lo": lo, "hi": hi},
            )
            conn.execute(
                """INSERT INTO dedup_bands (band, seq)
                   SELECT ((random() - 0.5) * 1.8e19)::bigint, s.seq
                   FROM dedup_signatures AS s, generate_series(1, %(bands)s) AS b
                   WHERE s.seq > %(after)s""",
                {"after": after, "bands": shape.bands},
            )
            conn.execute(
                """INSERT INTO dedup_lines (key, source, article_id)
                   SELECT ((random() - 0.5) * 1.8e19)::bigint, 'site' || (i %% 2000) || '.example',
                          lpad(to_hex(i), 32, '0')
                   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i, generate_series(1, %(lines)s) AS l""",
                {"lo": lo, "hi": hi, "lines": shape.lines},
            )
        conn.execute("ALTER TABLE dedup_bands ADD PRIMARY KEY (band, seq)")
        conn.execute("ALTER TABLE dedup_lines ADD PRIMARY KEY (key, source, article_id)")
        conn.execute("VACUUM ANALYZE dedup_signatures, dedup_keys, dedup_bands, dedup_lines")
        conn.execute("CHECKPOINT")  # the load's dirty pages are written now, not during the measurement
    return time.perf_counter() - t


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


_TABLES = ("dedup_signatures", "dedup_keys", "dedup_bands", "dedup_lines")


def _table_sizes(url: str) -> None:
    """Print rows and bytes (with indexes and TOAST) per indexed article of every dedup table."""
    with get_engine(url).connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM dedup_signatures")).scalar_one()
        parts = []
        for table in _TABLES:
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            size = conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            parts.append(f"{table} {rows / count:.1f} rows {size / count:,.0f} B")
    print("             per article: " + "; ".join(parts))


def run_scale(
    params: DedupParams, sizes: list[int], probes: int, database_url: str | None, shared_buffers: str = "1GB"
) -> None:
    """Bulk-load the index to each size and time ensure_verdict on new articles at each."""
    server = None
    if database_url is None:
        from tests.servers import PostgresServer

        server = PostgresServer()
        server.start()
        import psycopg

        from tests.servers import libpq_url

        with psycopg.connect(libpq_url(server.url), autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
        server.restart()
        database_url = server.create_database("dedup_bench")
        where = (
            f"private PostgreSQL 15 from tests/servers.py (fsync off, shared_buffers {shared_buffers}, "
            "max_wal_size 8GB)"
        )
    else:
        where = database_url.rsplit("@", 1)[-1]
    try:
        upgrade(database_url)
        for seed in _seed_articles():
            with transaction(database_url) as session:
                ensure_verdict(session, seed, params, raw_key=raw_key(seed.text))
        shape = _shape(database_url)
        loaded = len(_seed_articles())
        print(
            f"scale: seed articles index {shape.bands} band keys, {shape.lines} dedup_lines rows and "
            f"{shape.evidence_bytes} evidence bytes each on average; the bulk load copies that shape"
        )
        print(
            f"scale: {where}; {probes} new articles per size, one transaction each (lookup, verify, insert, commit)"
        )
        print(
            f"  {'indexed':>9}  {'load s':>7}  {'p50 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  {'art/s':>6}  {'bytes/article':>13}  SELECT 1 p50/p99  stage p50/p99  verdicts"
        )
        for size in sorted(sizes):
            load_s = _bulk_load(database_url, loaded, size, params, shape) if size > loaded else 0.0
            loaded = max(loaded, size)
            articles = _probe_articles(size, probes, params)
            latencies = []
            baseline = []  # a trivial transaction after each article: this machine's own noise
            stage: list[float] = []
            kinds: Counter[str] = Counter()
            busy = 0.0
            gc.collect()
            gc.freeze()  # as worker children do at start (workers/runtime/celery_app.py)
            for cleaned in articles:
                t = time.perf_counter()
                fingerprint(cleaned, params)  # the pure stage alone: CPU, no database
                stage.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                with transaction(database_url) as session:
                    kinds[ensure_verdict(session, cleaned, params, raw_key=raw_key(cleaned.text)).kind] += 1
                latencies.append((time.perf_counter() - t) * 1000)
                busy += time.perf_counter() - t
                t = time.perf_counter()
                with transaction(database_url) as session:
                    session.execute(text("SELECT 1"))
                baseline.append((time.perf_counter() - t) * 1000)
            rate = len(articles) / busy
            with get_engine(database_url).connect() as conn:
                total = conn.execute(
                    text(" + ".join(f"pg_total_relation_size('{t}')" for t in _TABLES).join(["SELECT ", ""]))
                ).scalar_one()
                count = conn.execute(text("SELECT count(*) FROM dedup_signatures")).scalar_one()
            loaded += probes
            print(
                f"  {count:>9,}  {load_s:>7.0f}  {_percentile(latencies, 0.5):>7.2f}  {_percentile(latencies, 0.99):>7.2f}"
                f"  {max(latencies):>7.2f}  {rate:>6.0f}  {total / count:>13,.0f}"
                f"  {_percentile(baseline, 0.5):>5.2f}/{_percentile(baseline, 0.99):>5.2f}"
                f"  {_percentile(stage, 0.5):>5.2f}/{_percentile(stage, 0.99):>5.2f}  {dict(kinds)}"
            )
            _table_sizes(database_url)
    finally:
        get_engine(database_url).dispose()
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["quality", "throughput", "scale"], action="append")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--probes", type=int, default=1000, help="new articles measured at each size")
    parser.add_argument("--database-url", help="PostgreSQL URL for the scale run (default: a private server)")
    parser.add_argument("--shared-buffers", default="1GB", help="for the private PostgreSQL of the scale run")
    parser.add_argument("--threshold", type=float, default=DedupParams.threshold)
    parser.add_argument("--containment", type=float, default=DedupParams.containment_threshold)
    parser.add_argument("--shingle-size", type=int, default=DedupParams.shingle_size)
    parser.add_argument("--bands", type=int, default=DedupParams.bands)
    parser.add_argument("--rows", type=int, default=DedupParams.rows)
    parser.add_argument("--num-perm", type=int, default=DedupParams.num_perm)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    params = DedupParams(
        threshold=args.threshold,
        containment_threshold=args.containment,
        shingle_size=args.shingle_size,
        bands=args.bands,
        rows=args.rows,
        num_perm=args.num_perm,
    )
    only = set(args.only or ["quality", "throughput", "scale"])
    if "quality" in only:
        if not GROUND_TRUTH.exists():
            print(f"quality: skipped, {GROUND_TRUTH} missing")
        else:
            run_quality(params, args.seed)
    if "throughput" in only and GROUND_TRUTH.exists():
        run_throughput(params)
    if "scale" in only:
        sizes = [int(s) for s in args.sizes.split(",")]
        run_scale(params, sizes, args.probes, args.database_url, args.shared_buffers)


if __name__ == "__main__":
    main()
