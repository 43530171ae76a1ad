"""Score the clean stage's metadata on wcxb-dev's articles beside trafilatura and htmldate (same run).

Pages: wcxb-dev's 793 `article` pages (CC BY 4.0, Murrough Foley 2026), in 5 folds by `site`
(`bench.common.fold_of`). A field is scored on the pages whose truth has it. Each line gives the
share of those pages that are right, overall and per fold; the metadata scorer has no weights fitted
on wcxb-dev (its evidence weights are set by hand), so every fold is held out from fitting.

The scorer (the same as issue #27's):

- author: right when every true author's surname is among the authors found. The truth string is
  split into authors at ",", ";", "&" and "and"; parts that are credentials ("MS", "RD", "PhD") are
  not authors; a surname is the last word of a name, compared case- and accent-folded against the
  words of the authors found.
- day: the publication day found (`published_at`, its date in the page's own offset) equals the
  truth's `publish_date`.
- updated_at, section, site_name: wcxb-dev's truth has none of them, so they are not scored.
- headline: the titles folded (case, accents, punctuation, spacing) are equal, or one holds the other
  and the shorter has at least 80% of the longer one's words.

Peers: trafilatura 2.3.1's metadata (`bare_extraction(html, url=..., with_metadata=True)`: title,
author split at ";", date) and htmldate (`find_date(html, original_date=True)`, dates only).
newsflow's metadata is the stage's own call (`extract_metadata` of the parsed page, as
`clean()` runs it). The text-dump line runs the real clean stage on wcxb-dev's w3m renderings
(`bench.common.load_wcxb_w3m`, no title hint) and scores its headline against the true titles
with the same headline scorer; the text-dump headline model was trained on AEB only
(`bench/train_clean.py`), so wcxb-dev is held out from it.

    nice -n 10 .venv/bin/python bench/meta_eval.py             # everything
    nice -n 10 .venv/bin/python bench/meta_eval.py --misses author   # also list the author misses
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import FOLDS, fold_of, load_wcxb, load_wcxb_w3m  # path set up above
from schemas.raw import RawArticle
from workers.core.errors import PermanentError
from workers.stages.clean import clean
from workers.stages.cleaning.guards import prepare_html
from workers.stages.cleaning.html import parse_html
from workers.stages.cleaning.htmlmeta import extract_metadata

TARGETS = {"author": 0.85, "day": 0.92, "headline": 0.93, "textdump_headline": 0.90}
"""Issue #27's targets."""

_WORD = re.compile(r"\w+")
_CREDENTIAL = re.compile(r"^(?:[A-Z]{2,5}|Ph\.?D\.?|M\.?D\.?|Jr\.?|Sr\.?|[A-Z]\.?[A-Z]\.?)$")


def fold_text(text: str | None) -> str:
    """Case-, accent- and punctuation-folded words joined by one space."""
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(_WORD.findall(text.replace("_", " ")))


def headline_right(true: str | None, found: str | None) -> bool:
    """Equal folded, or one holds the other and the shorter has >= 80% of the longer one's words."""
    a, b = fold_text(true), fold_text(found)
    if not a or not b:
        return False
    if a == b:
        return True
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    return f" {short} " in f" {long} " and len(short.split()) >= 0.8 * len(long.split())


def true_surnames(author: str) -> list[str]:
    """The surnames of a truth's author string ("A B, C D and E F" -> [b, d, f]), credentials left out."""
    surnames = []
    for raw in re.split(r"\s*(?:,|;|&|\band\b)\s*", author):
        part = raw.strip()
        if not part or _CREDENTIAL.match(part):
            continue
        words = fold_text(part).split()
        if words:
            surnames.append(words[-1])
    return surnames


def author_right(true: str, found: list[str]) -> bool:
    """Every true author's surname is a word of the authors found."""
    words = set(fold_text(" ".join(found)).split())
    surnames = true_surnames(true)
    return bool(surnames) and all(s in words for s in surnames)


def day_right(true: str, found: datetime | None) -> bool:
    """The day found equals the truth's YYYY-MM-DD."""
    return found is not None and found.date().isoformat() == true[:10]


Found = dict[str, object]


def ours(html: str, url: str) -> Found:
    """newsflow's metadata of one page, as the clean stage computes it."""
    tree = parse_html(prepare_html(html))
    if tree is None:
        return {"title": None, "authors": [], "published_at": None}
    return extract_metadata(tree, url=url)


def trafilatura_meta(html: str, url: str) -> Found:
    """trafilatura's own metadata of one page."""
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(html, url=url, with_metadata=True)
    except Exception:  # a peer's crash counts as "nothing found", not a bench crash
        doc = None
    if doc is None:
        return {"title": None, "authors": [], "published_at": None}
    date = None
    if doc.date:
        try:
            date = datetime.fromisoformat(doc.date[:10])
        except ValueError:
            date = None
    authors = [a.strip() for a in (doc.author or "").split(";") if a.strip()]
    return {"title": doc.title, "authors": authors, "published_at": date}


def htmldate_meta(html: str, url: str) -> Found:
    """htmldate's publication date of one page (its default, extensive search)."""
    from htmldate import find_date

    try:
        found = find_date(html, url=url, original_date=True, outputformat="%Y-%m-%d")
    except Exception:  # a peer's crash counts as "nothing found"
        found = None
    return {"published_at": datetime.fromisoformat(found) if found else None}


FIELDS: dict[str, tuple[str, str, Callable[[object, object], bool]]] = {
    "author": ("author", "authors", lambda t, f: author_right(str(t), list(f or []))),  # type: ignore[call-overload]
    "day": ("publish_date", "published_at", lambda t, f: day_right(str(t), f)),  # type: ignore[arg-type]
    "headline": ("title", "title", lambda t, f: headline_right(str(t), f)),  # type: ignore[arg-type]
}


def score(
    truth: dict[str, dict[str, object]], found: dict[str, Found], field: str
) -> tuple[float, list[float], int, list[str]]:
    """(overall share right, share per fold, pages judged, keys of the misses) of one field."""
    true_key, found_key, right = FIELDS[field]
    judged = [k for k, t in truth.items() if t.get(true_key)]
    ok = {k: right(truth[k][true_key], found[k].get(found_key)) for k in judged}
    per_fold = []
    for fold in range(FOLDS):
        keys = [k for k in judged if fold_of(str(truth[k]["site"])) == fold]
        per_fold.append(sum(ok[k] for k in keys) / max(1, len(keys)))
    return sum(ok.values()) / max(1, len(judged)), per_fold, len(judged), [k for k in judged if not ok[k]]


def textdump_headlines(truth: dict[str, dict[str, object]]) -> tuple[int, int]:
    """(dumps whose stage headline is right, dumps judged): w3m renderings through `clean()`."""
    dumps = load_wcxb_w3m()
    right = judged = 0
    for key, body in dumps.items():
        title = truth[key].get("title")
        if not title or not body.strip():
            continue
        judged += 1
        try:
            article = clean(RawArticle(source="bench", body=body, content_type="text/plain"), "0" * 32)
        except PermanentError:
            continue
        right += headline_right(str(title), article.title)
    return right, judged


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--misses", choices=sorted(FIELDS), help="list newsflow's misses of one field")
    parser.add_argument("--no-peers", action="store_true", help="skip trafilatura and htmldate (faster)")
    parser.add_argument("--no-dumps", action="store_true", help="skip the text-dump headline line")
    args = parser.parse_args()

    truth_all, html = load_wcxb()
    truth = {k: t for k, t in truth_all.items() if t["page_type"] == "article"}
    runs: dict[str, dict[str, Found]] = {"newsflow": {}}
    if not args.no_peers:
        runs["trafilatura"] = {}
        runs["htmldate"] = {}
    for key, t in truth.items():
        url = str(t["url"])
        runs["newsflow"][key] = ours(html[key], url)
        if not args.no_peers:
            runs["trafilatura"][key] = trafilatura_meta(html[key], url)
            runs["htmldate"][key] = htmldate_meta(html[key], url)

    print(
        f"wcxb-dev articles: {len(truth)} pages, {len({t['site'] for t in truth.values()})} sites, {FOLDS} folds by site"
    )
    met = {}
    for field in FIELDS:
        print(f"\n{field} (target {TARGETS[field]:.2f})")
        for name, found in runs.items():
            if name == "htmldate" and field != "day":
                continue
            overall, per_fold, judged, misses = score(truth, found, field)
            folds = " ".join(f"{x:.3f}" for x in per_fold)
            print(f"  {name:<12} {overall:.3f}  on {judged} pages   folds: {folds}")
            if name == "newsflow":
                met[field] = overall
                if args.misses == field:
                    for k in misses:
                        t = truth[k]
                        print(
                            f"    {k} {t['site']}: true={t[FIELDS[field][0]]!r} found={found[k].get(FIELDS[field][1])!r}"
                        )
    if not args.no_dumps:
        right, judged = textdump_headlines(truth)
        met["textdump_headline"] = right / max(1, judged)
        print(f"\ntext-dump headline (w3m, target 0.90): {right}/{judged} = {right / max(1, judged):.3f}")
    print(
        "\n" + "  ".join(f"{k}={v:.3f}{'' if v >= TARGETS[k] else ' (below target)'}" for k, v in met.items())
    )


if __name__ == "__main__":
    main()
