"""Dedup end to end: raw pages through the REAL clean stage and the real dedup index, on SQLite.

    .venv/bin/python bench/dedup_e2e.py                 # both halves, the current parameters
    .venv/bin/python bench/dedup_e2e.py --half tune     # one half only
    .venv/bin/python bench/dedup_e2e.py --show 10       # also list wrong merges and missed copies

Pages: ../shared/benchmarks/scrapinghub-aeb (181 real pages of 126 sites: HTML in html/, the w3m
renderings in textdumps-w3m.jsonl.gz, the article bodies in ground-truth.json). They are split BY
SITE (a hash of the host) into a tuning half and a held-out half; every item of a half is built
only from that half's pages, and no threshold or rule of the dedup stage was chosen on the
held-out half. Per half:

* originals: every page's HTML, as fetched;
* syndicated copies of each original (positives), on syndicator hosts: the original's
  ground-truth body with a new headline, the tail trimmed, ~3% of the words edited and an ad line
  inserted, wrapped in the chrome of ANOTHER page of the half (the lines of its w3m rendering
  outside its article region that match no part of its ground-truth body by a fuzzy match, see
  `_in_article`: a rendered line seldom equals a ground-truth line, so an exact filter left most
  of the other article in its "chrome"; as much or as little of it as a cut takes, sometimes all of
  it); saved as text (the whole rendering with the body swapped) or as simple HTML (the chrome
  lines around the paragraphs);
* same-site copies of half the originals: the same HTML under a second URL of the site, or the
  page's rendering saved as text (another layout of the same page);
* hard negatives, each on the original's own site with the original's own chrome: a different
  article (paragraphs of sentences from many other pages), a same-topic follow-up (the
  original's names, one of its background paragraphs, the rest new) and, once per site, a
  near-empty stub (the chrome and one short line) that a cleaner may reduce to chrome alone.
  Composites are drawn from sentences of 6 to 60 words as dedup counts them (a CJK character is a
  word): counted by spaces, a Japanese body was one "sentence" of hundreds of words that most
  composites shared, so they were not different articles.

Pages of the set that carry the same story (real wire copies) share a label. Every item goes
through `workers.stages.clean.clean` with the chrome the pipeline would give it (source lines
learned through `repo.learn_chrome` under `repo.sighting_id`, in the same database, as `clean_step`
does), then `workers.db.dedup_index.ensure_verdict`, one transaction each, in a shuffled order.
Items the cleaner rejects (`no_content` and other permanent errors) are counted and left out.
Pairs are counted from the clusters the index ends with: pair precision and recall, the share of
distinct articles wrongly merged with another, and per-role counts.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import itertools
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from schemas.raw import RawArticle  # noqa: E402
from workers.core.errors import PermanentError  # noqa: E402
from workers.core.ids import article_id  # noqa: E402
from workers.core.settings import Settings  # noqa: E402
from workers.db import repo  # noqa: E402
from workers.db.dedup_index import ensure_verdict  # noqa: E402
from workers.db.engine import get_engine, transaction, upgrade  # noqa: E402
from workers.stages import clean as clean_stage  # noqa: E402
from workers.stages.dedup import VERSION, DedupParams, raw_key  # noqa: E402
from workers.stages.dedup import words as dedup_words  # noqa: E402

# ../shared beside the checkout; NEWSFLOW_SHARED points elsewhere (a git worktree has none beside it)
DATA = Path(os.environ.get("NEWSFLOW_SHARED", ROOT.parent / "shared")) / "benchmarks" / "scrapinghub-aeb"
T0 = datetime(2008, 3, 1, tzinfo=UTC)
SYNDICATORS = [
    f"{name}.example" for name in ("newswire-daily", "metro-digest", "the-aggregator", "worldpost")
]
ADS = [
    "Advertisement: Save 40% on your first year of home delivery. Subscribe today!",
    "ADVERTISEMENT - Click here to compare mortgage rates in your area",
    "Sponsored: The one trick doctors don't want you to know about",
]


@dataclass(frozen=True)
class Page:
    page_id: str
    site: str
    url: str
    html: str
    rendering: list[str]  # the w3m lines
    body: str  # ground truth
    head: list[str]  # rendering lines before the body, body lines removed
    tail: list[str]  # rendering lines after the body


@dataclass
class Item:
    raw: RawArticle
    label: str  # true article
    role: str  # original / copy / sibling / followup / stub
    page: str  # the page it was made from
    tags: tuple[str, ...] = ()
    text: str = ""  # the article text it was built from (generated negatives only)
    article_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.article_id = article_id(self.raw)


def _fold(line: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", line.lower()).split())


def half_of(site: str) -> str:
    """The half a site belongs to: 'tune' or 'held' (a fixed hash of the host, so deterministic)."""
    return "tune" if hashlib.sha256(site.encode()).digest()[0] % 2 == 0 else "held"


def load_pages() -> list[Page]:
    """Every page of the set with its rendering split into chrome (head, tail) and body."""
    truth = json.loads((DATA / "ground-truth.json").read_text())
    dumps = {}
    with gzip.open(DATA / "textdumps-w3m.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            dumps[record["page_id"]] = record
    pages = []
    for page_id, gt in sorted(truth.items()):
        dump = dumps[page_id]
        body = gt["articleBody"] or ""
        folded_body = _fold(body)
        body_grams = _grams(body)
        lines = dump["body"].split("\n")
        is_body = [_in_article(line, folded_body, body_grams) for line in lines]
        marks = [i for i, flag in enumerate(is_body) if flag]
        first, last = (marks[0], marks[-1]) if marks else (len(lines), len(lines))
        # chrome is what lies outside the article region and matches no part of the article, fuzzily
        head = [line for line, flag in zip(lines[:first], is_body[:first], strict=True) if not flag]
        tail = [line for line, flag in zip(lines[last + 1 :], is_body[last + 1 :], strict=True) if not flag]
        with gzip.open(DATA / "html" / f"{page_id}.html.gz", "rt", encoding="utf-8", errors="replace") as raw:
            page_html = raw.read()
        pages.append(Page(page_id, dump["source"], gt["url"], page_html, lines, body, head, tail))
    return pages


def _in_article(line: str, folded_body: str, body_grams: set[tuple[str, ...]]) -> bool:
    """Whether a rendered line carries part of the article, by fuzzy match: a line rarely equals a
    ground-truth line (wrapping, markers such as `[img]`, quotes), so a line counts as article when
    a fifth of its word 5-grams are in the body, or when it is a 25+ character run of the body."""
    folded = _fold(line)
    grams = _grams(line)
    if grams and len(grams & body_grams) >= 0.2 * len(grams):
        return True
    return len(folded) >= 25 and folded in folded_body


def _paragraphs(body: str) -> list[str]:
    return [p.strip() for p in body.split("\n") if p.strip()]


def _sentences(body: str) -> list[str]:
    # 6 to 60 words as dedup counts them (a CJK character is a word): a body without sentence marks, or
    # in a script without spaces, would otherwise give one huge "sentence" that every composite shares
    parts = re.split(r"(?<=[.!?])\s+|(?<=[。！？])", body.replace("\n", " "))
    return [s.strip() for s in parts if 6 <= len(dedup_words(s)) <= 60]


def _grams(body: str, n: int = 5) -> set[tuple[str, ...]]:
    tokens = dedup_words(body)
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def labels(pages: list[Page]) -> dict[str, str]:
    """Page id -> label; pages whose bodies share half of the smaller one's 5-grams share a label."""
    grams = {p.page_id: _grams(p.body) for p in pages}
    parent = {p.page_id: p.page_id for p in pages}

    def find(x: str) -> str:
        while parent[x] != x:
            x = parent[x]
        return x

    ids = sorted(grams)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            small = min(len(grams[a]), len(grams[b]))
            if small and len(grams[a] & grams[b]) >= 0.5 * small:
                parent[find(b)] = find(a)
    return {x: find(x) for x in ids}


def _edit(paragraphs: list[str], rate: float, vocab: list[str], rng: random.Random) -> list[str]:
    out = []
    for paragraph in paragraphs:
        tokens = paragraph.split()
        for i in range(len(tokens)):
            if rng.random() < rate:
                action = rng.random()
                if action < 0.5:
                    tokens[i] = rng.choice(vocab)
                elif action < 0.75:
                    tokens[i] = ""
                else:
                    tokens[i] = tokens[i] + " " + rng.choice(vocab)
        out.append(" ".join(t for t in tokens if t))
    return out


def _headline(body: str, rng: random.Random) -> str:
    words = _fold(body).split()[:8]
    return rng.choice(["Report: ", "UPDATE: ", "", "Watch: "]) + " ".join(words).capitalize()


def _cut(lines: list[str], rng: random.Random, heavy: bool, from_end: bool) -> list[str]:
    if heavy or not lines:
        return lines
    size = rng.randint(0, min(len(lines), 40))
    return lines[len(lines) - size :] if from_end else lines[:size]


def _as_html(title: str, head: list[str], paragraphs: list[str], tail: list[str]) -> str:
    nav = "".join(f"<li>{html.escape(line)}</li>" for line in head if line.strip())
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    foot = "".join(f"<div>{html.escape(line)}</div>" for line in tail if line.strip())
    return (
        f"<html><head><title>{html.escape(title)}</title></head><body><ul class='menu'>{nav}</ul>"
        f"<div class='story'><h1>{html.escape(title)}</h1>{body}</div><div class='bottom'>{foot}</div></body></html>"
    )


def _composite(pages: list[Page], exclude: str, words: int, rng: random.Random) -> list[str]:
    """Paragraphs of sentences drawn from many other pages, one sentence per page (`words` is kept
    small enough for that), as distinct articles rarely share more than a quote."""
    pool = [p for p in pages if p.page_id != exclude and _sentences(p.body)]
    rng.shuffle(pool)
    donors = itertools.cycle(pool)
    paragraphs: list[str] = []
    total = 0
    while total < words:
        sentences = [rng.choice(_sentences(next(donors).body)) for _ in range(rng.randint(2, 4))]
        paragraphs.append(" ".join(sentences))
        total += sum(len(s.split()) for s in sentences)
    return paragraphs


def build_items(pages: list[Page], seed: int) -> list[Item]:
    """The labelled items of one half (see the module docstring)."""
    rng = random.Random(seed)
    label = labels(pages)
    vocab = sorted({w for p in pages for w in p.body.split() if w.isalpha() and len(w) > 3})
    published = {p.page_id: T0 + timedelta(hours=rng.randint(0, 2000)) for p in pages}
    items: list[Item] = [
        Item(
            RawArticle(source=page.site, body=page.html, url=page.url, content_type="text/html"),
            label[page.page_id],
            "original",
            page.page_id,
        )
        for page in pages
    ]
    with_body = [p for p in pages if len(_paragraphs(p.body)) >= 2 and len(p.body.split()) >= 80]
    for page in with_body:
        paragraphs = _paragraphs(page.body)
        others = [p for p in pages if p.site != page.site and (p.head or p.tail)]
        for n in range(2):
            wrapper = rng.choice(others)
            heavy = rng.random() < 0.35
            keep = max(2, round(len(paragraphs) * rng.uniform(0.6, 1.0)))
            body = _edit(paragraphs[:keep], 0.03, vocab, rng)
            body.insert(min(2, len(body)), rng.choice(ADS))
            headline = _headline(page.body, rng)
            head = _cut(wrapper.head, rng, heavy, from_end=True)
            tail = _cut(wrapper.tail, rng, heavy, from_end=False)
            host = rng.choice(SYNDICATORS)
            url = f"https://{host}/{published[page.page_id]:%Y/%m/%d}/story-{page.page_id[:10]}-{n}"
            as_text = rng.random() < 0.6
            if as_text:
                document = "\n".join([*head, "", headline, "", "\n\n".join(body), "", *tail])
            else:
                document = _as_html(headline, head, body, tail)
            raw = RawArticle(
                source=host,
                body=document,
                url=url,
                content_type="text/plain" if as_text else "text/html",
                published_at=published[page.page_id] + timedelta(hours=rng.randint(-3, 30)),
            )
            tags = ("text" if as_text else "html", "heavy_chrome" if heavy else "cut_chrome")
            items.append(Item(raw, label[page.page_id], "copy", page.page_id, tags))
    host = {p.page_id: urlsplit(p.url).hostname for p in pages}
    stubbed: set[str] = set()
    for page in with_body:
        # copies on the page's own site: the same HTML under another URL, or its rendering as text
        roll = rng.random()
        if roll < 0.5:
            same_html = roll < 0.25
            raw = RawArticle(
                source=page.site,
                body=page.html if same_html else "\n".join(page.rendering),
                url=f"https://{host[page.page_id]}/{'print' if same_html else 'text'}/story-{page.page_id[:10]}",
                content_type="text/html" if same_html else "text/plain",
                published_at=published[page.page_id] + timedelta(hours=rng.randint(0, 5)),
            )
            tags = ("same_site", "identical_html" if same_html else "rendering")
            items.append(Item(raw, label[page.page_id], "copy", page.page_id, tags))
    for page in pages:
        if not (page.head or page.tail):
            continue
        length = min(450, max(150, len(page.body.split())))
        # a different article of the same site, in the same chrome
        sibling = _composite(pages, page.page_id, length, rng)
        items.append(_on_site(page, sibling, "sibling", "other", rng))
        # a same-topic follow-up: the original's names, one background paragraph, new text around it
        paragraphs = _paragraphs(page.body)
        names = sorted({w for w in page.body.split() if w[:1].isupper() and w.isalpha() and len(w) > 3})
        follow = _composite(pages, page.page_id, max(150, length // 2), rng)
        follow[0] = " ".join(rng.sample(names, min(3, len(names)))) + " said on Tuesday that " + follow[0]
        if len(paragraphs) >= 3:
            follow.insert(len(follow) // 2, paragraphs[rng.randint(1, len(paragraphs) - 1)])
        items.append(_on_site(page, follow, "followup", "followup", rng))
        # one stub per site: two stubs of one site (its chrome and a label each) are one empty page to a
        # reader, not two different articles, so that pair is no hard negative
        if page.site not in stubbed:
            stubbed.add(page.site)
            stub = [rng.choice(["Photo gallery", "Video", "Live updates", "Breaking News:"])]
            items.append(_on_site(page, stub, "stub", "stub", rng))
    items = _drop_ambiguous(items, pages)
    rng.shuffle(items)
    return items + story_families(pages, rng, published)


FAMILIES = ("twice_on_site", "live_blog", "standard_note", "print_subset", "captions")


def story_families(pages: list[Page], rng: random.Random, published: dict[str, datetime]) -> list[Item]:
    """Issue 28's cases, each group in the order the issue gives (after the shuffled items, so the
    order holds), on real chrome of the half's pages:

    * twice_on_site: a new story (sentences of many pages) on a site under two URLs (its page and a
      print version), then on two other sites in their chrome: one label;
    * live_blog: a blog of updates on a site, revised under the same URL (two updates added on top),
      then a copy of the revised blog on another site: one label;
    * standard_note: six different 40-50-word stories of one site, each followed by the same 200-600
      word editor's note (sentences of other pages): six labels;
    * print_subset: a new story (250-450 words) on a site in its chrome, and its print copy (its
      first 40-80% of paragraphs, no chrome), the print copy first or second: one label;
    * captions: another site's text dump of an original's lead (half of it to all, 80 words or more) with
      a photo caption and credit (a sentence of another page) after each paragraph, in that site's
      chrome: the original's label.
    """
    chromed = [p for p in pages if p.head or p.tail]
    with_body = [p for p in chromed if len(_paragraphs(p.body)) >= 3 and len(p.body.split()) >= 120]
    items: list[Item] = []
    label = labels(pages)
    for n, page in enumerate(rng.sample(chromed, min(8, len(chromed)))):
        others = [p for p in chromed if p.site != page.site]
        story = _composite(pages, page.page_id, rng.randint(150, 400), rng)
        title = f"Story {n} {page.page_id[:6]}"
        host = urlsplit(page.url).hostname
        group = [
            _raw_on(page, story, f"/world/wire-{n}", published[page.page_id], title),
            _raw_on(page, story, f"/print/wire-{n}", published[page.page_id], title, layout="print"),
            *(
                _raw_on(
                    other, story, f"/wire/{host}-{n}", published[page.page_id] + timedelta(hours=2 + k), title
                )
                for k, other in enumerate(rng.sample(others, 2))
            ),
        ]
        items += [Item(raw, f"wire:{page.page_id}:{n}", "copy" if k else "original", page.page_id, ("twice_on_site",),
                       "\n\n".join(story)) for k, raw in enumerate(group)]  # fmt: skip
    for n, page in enumerate(rng.sample(chromed, min(6, len(chromed)))):
        other = rng.choice([p for p in chromed if p.site != page.site])
        updates = _composite(pages, page.page_id, rng.randint(150, 300), rng)
        new = _composite(pages, page.page_id, 60, rng)[:2]
        when = published[page.page_id]
        group = [
            _raw_on(page, updates, f"/live/blog-{n}", when, "Live updates"),
            _raw_on(
                page,
                [*new, *updates],
                f"/live/blog-{n}?utm_source=rss",
                when + timedelta(hours=1),
                "Live updates",
            ),
            _raw_on(
                other, [*new, *updates], f"/live/{page.page_id[:8]}-{n}", when + timedelta(hours=2), "Live"
            ),
        ]
        texts = ["\n\n".join(updates), *["\n\n".join([*new, *updates])] * 2]
        items += [Item(raw, f"blog:{page.page_id}:{n}", "copy" if k else "original", page.page_id, ("live_blog",),
                       texts[k]) for k, raw in enumerate(group)]  # fmt: skip
    for n, page in enumerate(rng.sample(chromed, min(4, len(chromed)))):
        note = " ".join(_composite(pages, page.page_id, rng.choice([200, 260, 400, 600]), rng))
        for k in range(6):
            short = _short_story(pages, page.page_id, note, rng)
            raw = _raw_on(
                page,
                [short, note],
                f"/briefs/{n}-{k}",
                published[page.page_id] + timedelta(hours=k),
                f"Brief {k}",
            )
            items.append(
                Item(
                    raw,
                    f"brief:{page.page_id}:{n}:{k}",
                    "sibling",
                    page.page_id,
                    ("standard_note",),
                    f"{short}\n\n{note}",
                )
            )
    for n, page in enumerate(rng.sample(chromed, min(10, len(chromed)))):
        story = _composite(pages, page.page_id, rng.randint(250, 450), rng)
        keep = max(2, round(len(story) * rng.uniform(0.4, 0.8)))
        when = published[page.page_id]
        pair = [
            (_raw_on(page, story, f"/news/story-{n}", when, f"Story {n}"), story),
            (
                _raw_on(page, story[:keep], f"/print/story-{n}", when, f"Story {n}", layout="print"),
                story[:keep],
            ),
        ]
        tags = ("print_subset", "print_first" if rng.random() < 0.5 else "page_first")
        pair = pair[::-1] if tags[1] == "print_first" else pair
        items += [Item(raw, f"print:{page.page_id}:{n}", "copy" if k else "original", page.page_id, tags,
                       "\n\n".join(text)) for k, (raw, text) in enumerate(pair)]  # fmt: skip
    donors = [s for p in pages for s in _sentences(p.body) if 10 <= len(s.split()) <= 30]
    for page in rng.sample(with_body, min(10, len(with_body))):
        other = rng.choice([p for p in chromed if p.site != page.site])
        # the lead: two paragraphs or more, 80 words or more (a shorter text is a snippet, not a copy)
        lead = _paragraphs(page.body)
        size = next((k for k in range(2, len(lead) + 1) if len(" ".join(lead[:k]).split()) >= 80), len(lead))
        paragraphs = lead[: max(size, round(len(lead) * rng.uniform(0.5, 1.0)))]
        lines = []
        for paragraph in paragraphs:
            credit = rng.choice(
                ["(AP Photo/{})", "(Photo by {}/Getty Images)", "Photo: {}/Reuters", "Credit: {}"]
            )
            lines += [paragraph, f"{rng.choice(donors)} {credit.format(rng.choice(PHOTOGRAPHERS))}"]
        document = "\n".join([*other.head, "", "\n\n".join(lines), "", *other.tail])
        host = urlsplit(other.url).hostname
        raw = RawArticle(
            source=other.site, body=document, url=f"https://{host}/gallery/{page.page_id[:10]}", content_type="text/plain",
            published_at=published[page.page_id] + timedelta(hours=rng.randint(1, 30)),
        )  # fmt: skip
        items.append(Item(raw, label[page.page_id], "copy", page.page_id, ("captions",), "\n\n".join(lines)))
    return items


PHOTOGRAPHERS = ["Lise Aserud", "Evan Vucci", "Marit Hommedal", "Tomas Reyes", "Lena Berg", "Kim Hong-Ji"]


def _short_story(pages: list[Page], exclude: str, note: str, rng: random.Random) -> str:
    """A 40-50-word story: two or three sentences of three other pages, none of them in `note`."""
    pool = [
        fitting
        for p in pages
        if p.page_id != exclude
        and (fitting := [s for s in _sentences(p.body) if 12 <= len(s.split()) <= 25 and s not in note])
    ]
    while True:
        sentences = [rng.choice(choices) for choices in rng.sample(pool, 3)]
        for size in (2, 3):
            text = " ".join(sentences[:size])
            if 40 <= len(text.split()) <= 50:
                return text


def _raw_on(
    page: Page, paragraphs: list[str], path: str, when: datetime, title: str, *, layout: str = "web"
) -> RawArticle:
    """`paragraphs` on the page's site at `path`: in its rendered chrome as text, or (print) as a bare
    HTML print page."""
    host = urlsplit(page.url).hostname
    if layout == "print":
        body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
        document = f"<html><head><title>{html.escape(title)} (print)</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
        content_type = "text/html"
    else:
        document = "\n".join([*page.head, "", title, "", "\n\n".join(paragraphs), "", *page.tail])
        content_type = "text/plain"
    return RawArticle(
        source=page.site,
        body=document,
        url=f"https://{host}{path}",
        content_type=content_type,
        published_at=when,
    )


def _drop_ambiguous(items: list[Item], pages: list[Page]) -> list[Item]:
    """Leave out a generated negative whose text shares a fifth of its 5-grams with another page's
    body or an earlier composite (a follow-up's own page excepted: it quotes it on purpose): by its
    text it is not a distinct article."""
    bodies = {p.page_id: _grams(p.body) for p in pages}
    composites: list[set[tuple[str, ...]]] = []
    kept = []
    for item in items:
        if item.role in {"sibling", "followup"}:
            grams = _grams(item.text)
            others = [g for pid, g in bodies.items() if pid != item.page] + composites
            if grams and max((len(grams & g) for g in others), default=0) > 0.2 * len(grams):
                continue
            composites.append(grams)
        kept.append(item)
    return kept


def _on_site(page: Page, paragraphs: list[str], role: str, suffix: str, rng: random.Random) -> Item:
    """An item on the page's own site, in its own rendered chrome, saved as text."""
    document = "\n".join([*page.head, "", "\n\n".join(paragraphs), "", *page.tail])
    raw = RawArticle(
        source=page.site,
        body=document,
        # unique per page: two pages of a site may share a path (and differ by query)
        url=f"https://{urlsplit(page.url).hostname}{urlsplit(page.url).path.rstrip('/')}-{page.page_id[:8]}-{suffix}",
        content_type="text/plain",
        published_at=T0 + timedelta(hours=rng.randint(0, 2000)),
    )
    return Item(raw, f"{page.page_id}:{suffix}", role, page.page_id, text="\n".join(paragraphs))


def check_generator(name: str, pages: list[Page], seed: int) -> None:
    """Show that the issue-28 families hold what `story_families` claims: per family the counts, the
    measured property of every group, and one sample (its labels, its raw text and what the clean
    stage makes of it)."""
    items = build_items(pages, seed)
    print(f"{name} half: generator check, {len(items)} items")
    for family in FAMILIES:
        members = [i for i in items if family in i.tags]
        groups: dict[str, list[Item]] = defaultdict(list)
        for i in members:
            groups[i.label if family != "standard_note" else i.label.rsplit(":", 1)[0]].append(i)
        facts: list[str] = []
        for group in groups.values():
            words = [len(dedup_words(i.text)) for i in group]
            if family == "twice_on_site":
                sources = [i.raw.source for i in group]
                facts.append(
                    f"labels={len({i.label for i in group})} sources={sources[0] == sources[1]}+{len(set(sources[2:]))} other"
                )
            elif family == "live_blog":
                first, revised, copy = (i.text for i in group)
                facts.append(
                    f"same_url={group[0].raw.url.split('?')[0] == group[1].raw.url.split('?')[0]} "
                    f"first_in_revised={first in revised} copy_is_revised={copy == revised}"
                )
            elif family == "standard_note":
                note = group[0].text.split("\n\n")[-1]
                story_words = sorted(len(i.text.split("\n\n")[0].split()) for i in group)
                facts.append(
                    f"stories={len({i.label for i in group})} "
                    f"story_words={story_words} "
                    f"note_words={len(note.split())} same_note={all(i.text.endswith(note) for i in group)}"
                )
            elif family == "print_subset":
                page, printed = sorted(group, key=lambda i: "/print/" in (i.raw.url or ""))
                facts.append(
                    f"{group[0].tags[1]} print_words/page_words={words[group.index(printed)]}/{words[group.index(page)]} "
                    f"print_in_page={printed.text in page.text}"
                )
            else:
                (copy,) = group
                lines = copy.text.split("\n\n")
                captions = [line for line in lines if re.search(r"Photo|Credit:", line)]
                facts.append(f"paragraphs={len(lines) - len(captions)} captions={len(captions)} "
                             f"caption_words={sum(len(c.split()) for c in captions)} story_words={sum(len(x.split()) for x in lines if x not in captions)}")  # fmt: skip
        print(f"  {family}: {len(members)} items in {len(groups)} groups")
        for fact in facts:
            print(f"    {fact}")
        if members:
            group = groups[next(iter(groups))]
            for i in group[:3]:
                cleaned = clean_stage.clean(i.raw, i.article_id).text
                print(f"    sample {i.role} label={i.label} {i.raw.source} {i.raw.url}")
                print(f"      raw:     {' '.join(i.raw.body.split())[:160]}")
                print(f"      cleaned: {' '.join(cleaned.split())[:160]}")


def _pairs(sizes: list[int]) -> int:
    return sum(s * (s - 1) // 2 for s in sizes)


def run_half(name: str, pages: list[Page], params: DedupParams, seed: int, show: int) -> dict[str, float]:
    """Build one half's items, run them end to end and print its figures."""
    items = build_items(pages, seed)
    settings = Settings()
    rejected: Counter[str] = Counter()
    kept: list[Item] = []
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/e2e.db"
        upgrade(url)
        started = time.perf_counter()
        for item in items:
            try:
                # as workers.runtime.pipeline.clean_step: learn the source's lines, then clean with its chrome
                keys = clean_stage.line_keys(item.raw)
                with transaction(url) as session:
                    (chrome,) = repo.learn_chrome(
                        session,
                        [(item.raw.source, repo.sighting_id(item.raw), keys)],
                        settings.chrome_min_articles,
                    )
                cleaned = clean_stage.clean(item.raw, item.article_id, chrome=chrome)
            except PermanentError as exc:
                rejected[f"{item.role}:{getattr(exc, 'reason', type(exc).__name__)}"] += 1
                continue
            with transaction(url) as session:
                verdicts[item.article_id] = ensure_verdict(
                    session, cleaned, params, source=item.raw.source, raw_key=raw_key(item.raw.body)
                )
            kept.append(item)
        elapsed = time.perf_counter() - started
        with get_engine(url).connect() as conn:
            clusters = dict(conn.execute(text("SELECT article_id, cluster_id FROM dedup_signatures")).all())
        get_engine(url).dispose()
    pred = {i.article_id: clusters[i.article_id] for i in kept}
    joint = Counter((i.label, pred[i.article_id]) for i in kept)
    tp = _pairs(list(joint.values()))
    pred_pairs = _pairs(list(Counter(pred.values()).values()))
    true_pairs = _pairs(list(Counter(i.label for i in kept).values()))
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    labels_in: dict[str, set[str]] = defaultdict(set)
    for i in kept:
        labels_in[pred[i.article_id]].add(i.label)
    distinct = {i.label for i in kept}
    wrongly = {i.label for i in kept if len(labels_in[pred[i.article_id]]) > 1}
    roles = Counter(i.role for i in kept)
    merged_roles = Counter(i.role for i in kept if len(labels_in[pred[i.article_id]]) > 1)
    copies = [i for i in kept if i.role == "copy"]
    original_cluster = {i.label: pred[i.article_id] for i in kept if i.role == "original"}
    found = [i for i in copies if original_cluster.get(i.label) == pred[i.article_id]]
    by_tag: dict[str, list[bool]] = defaultdict(list)
    for i in copies:
        if i.label in original_cluster:
            for tag in i.tags:
                by_tag[tag].append(original_cluster[i.label] == pred[i.article_id])
    kinds = Counter(v.kind for v in verdicts.values())
    print(f"{name} half: {len({p.site for p in pages})} sites, {len(pages)} pages -> {len(items)} items "
          f"({dict(Counter(i.role for i in items))}); {VERSION}")  # fmt: skip
    print(f"  rejected by clean (left out): {sum(rejected.values())} {dict(sorted(rejected.items()))}")
    print(
        f"  pair precision {precision:.4f}  pair recall {recall:.4f}  "
        f"(true pairs {true_pairs}, predicted {pred_pairs}, correct {tp})"
    )
    print(
        f"  distinct articles wrongly merged: {len(wrongly)} of {len(distinct)} "
        f"({100 * len(wrongly) / max(1, len(distinct)):.2f}%); items in a wrong merge by role: {dict(merged_roles)}"
    )
    print(
        f"  copies joined to their original: {len(found)}/{sum(1 for i in copies if i.label in original_cluster)}; "
        + ", ".join(f"{t} {sum(v)}/{len(v)}" for t, v in sorted(by_tag.items()))
    )
    print(
        f"  verdicts: {dict(kinds)}; kept by role {dict(roles)}; {len(kept) / elapsed:.1f} items/s clean+dedup"
    )
    if show:
        by_cluster: dict[str, list[Item]] = defaultdict(list)
        for i in kept:
            by_cluster[pred[i.article_id]].append(i)
        shown = 0
        for members in by_cluster.values():
            if len({m.label for m in members}) > 1 and shown < show:
                shown += 1
                print("    wrong merge: " + "; ".join(
                    f"{m.role} {m.page[:8]} {verdicts[m.article_id].kind} {verdicts[m.article_id].reason}"
                    for m in members
                ))  # fmt: skip
        for i in [i for i in copies if i.label in original_cluster and i not in found][:show]:
            print(
                f"    missed copy of {i.page[:8]} {i.tags}: {verdicts[i.article_id].kind} {verdicts[i.article_id].reason}"
            )
    return {"precision": precision, "recall": recall, "wrongly_merged": len(wrongly) / max(1, len(distinct))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half", choices=["tune", "held"], action="append")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--show", type=int, default=0, help="list this many wrong merges and missed copies")
    parser.add_argument(
        "--check", action="store_true", help="check the issue-28 families of the generator, run nothing"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a DedupParams field (tuning half only!)",
    )
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"benchmark data not found at {DATA}")
    pages = load_pages()
    overrides = {}
    for item in args.param:
        name, _, value = item.partition("=")
        overrides[name] = type(getattr(DedupParams, name))(value)
    params = DedupParams(**{"threshold": Settings().dedup_threshold, **overrides})
    for name in args.half or ["tune", "held"]:
        if args.check:
            check_generator(name, [p for p in pages if half_of(p.site) == name], args.seed)
            continue
        run_half(name, [p for p in pages if half_of(p.site) == name], params, args.seed, args.show)


if __name__ == "__main__":
    main()
