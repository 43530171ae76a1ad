"""The pure dedup stage: canonical URLs, text keys, signatures, band keys and verification."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from schemas.cleaned import CleanedArticle
from tests.samples import sample_page
from workers.stages.dedup import (
    VERSION,
    Candidate,
    DedupParams,
    best_match,
    body_paragraphs,
    canonical_url,
    compare,
    fingerprint,
    minhash,
    normalise_for_keys,
    raw_key,
    signature_from_bytes,
    signature_to_bytes,
    text_key,
    url_key,
    verify,
    words,
)

PARAMS = DedupParams()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/news/story", "https://example.com/news/story"),
        ("HTTP://WWW.Example.COM:80/news/story/", "https://example.com/news/story"),
        ("https://example.com:443/news/story#comments", "https://example.com/news/story"),
        (
            "https://example.com/news/story?utm_source=tw&utm_medium=social&fbclid=x",
            "https://example.com/news/story",
        ),
        ("https://example.com/news/story?b=2&a=1&gclid=z", "https://example.com/news/story?a=1&b=2"),
        ("https://m.example.com/news/story", "https://example.com/news/story"),
        ("https://amp.example.com/news/story", "https://example.com/news/story"),
        ("https://example.com/amp/news/story", "https://example.com/news/story"),
        ("https://example.com/news/story/amp/", "https://example.com/news/story"),
        ("https://example.com/news/story.amp.html", "https://example.com/news/story.html"),
        ("https://example.com/news/story?amp=1", "https://example.com/news/story"),
        ("https://example.com/news/story?outputType=amp", "https://example.com/news/story"),
        ("https://example.com/a/./b/../story", "https://example.com/a/story"),
        ("https://example.com//news//story", "https://example.com/news/story"),
        ("https://example.com/news/%7estory", "https://example.com/news/~story"),
        ("https://bücher.example/artikel", "https://xn--bcher-kva.example/artikel"),
        ("https://xn--bcher-kva.example/artikel", "https://xn--bcher-kva.example/artikel"),
        ("https://example.com:8080/x", "https://example.com:8080/x"),
        ("https://example.com", "https://example.com/"),
    ],
)
def test_canonical_url_folds_variants(url: str, expected: str) -> None:
    """Tracking, fragments, case, ports, slashes, AMP, mobile hosts and IDN fold to one form."""
    assert canonical_url(url) == expected
    assert canonical_url(expected) == expected  # idempotent


@pytest.mark.parametrize(
    "url", [None, "", "mailto:x@example.com", "ftp://example.com/f", "not a url", "https://"]
)
def test_canonical_url_rejects_non_web_urls(url: str | None) -> None:
    """Anything that is not an http(s) URL with a host has no canonical form."""
    assert canonical_url(url) is None
    assert url_key(url) is None


def test_url_key_is_a_short_hash_of_the_canonical_url() -> None:
    """Variants of one URL share one 32-hex-digit key; different URLs do not."""
    key = url_key("https://www.example.com/a?utm_campaign=z")
    assert key == url_key("http://example.com/a/")
    assert key is not None
    assert len(key) == 32
    assert key != url_key("https://example.com/b")


def test_text_key_ignores_case_spacing_punctuation_invisible_and_homoglyphs() -> None:
    """Copies differing only in presentation share the text key; a changed word does not."""
    base = "The Minister said: “We will act.” Prices rose 10%."
    variants = [
        "the minister said we will act prices rose 10",
        'THE  MINISTER said:\n\n"We will act". Prices rose 10 %.',
        "The Mini\u200bster said: \u202a“We will act.”\u202c Prices rose 10%.",
        "Тhе Ministеr said: “We will act.” Prices rose 10%.",  # Cyrillic Т, е
        "The Minister said: “We will act.” Prices rose １０%.",  # fullwidth digits (NFKC)
    ]
    for variant in variants:
        assert text_key(variant) == text_key(base), variant
    assert text_key(base.replace("rose", "fell")) != text_key(base)
    assert len(text_key(base)) == 32


def test_text_key_is_stable_across_processes() -> None:
    """The key is a fixed function of the text (no per-process hash seed): workers agree."""
    code = "from workers.stages.dedup import text_key; print(text_key('Stable across processes.'))"
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert other == text_key("Stable across processes.")


def test_words_split_scripts_sensibly() -> None:
    """Punctuation separates words, marks stay inside words, CJK characters are words of their own."""
    assert words("Héllo, WORLD! ‘quoted’ — a_b 3.5") == ["héllo", "world", "quoted", "a_b", "3", "5"]
    assert words("हिन्दी समाचार") == ["हिन्दी", "समाचार"]
    assert words("北京欢迎你") == ["北", "京", "欢", "迎", "你"]
    assert normalise_for_keys("ÀB\u200bc") == normalise_for_keys(normalise_for_keys("ÀB\u200bc")) == "àbc"


def _body(seed: int, n_words: int = 400) -> str:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)]
    return " ".join(rng.choice(vocab) for _ in range(n_words))


def _edit(text: str, rate: float, seed: int) -> str:
    rng = random.Random(seed)
    out = []
    for w in text.split():
        r = rng.random()
        if r < rate / 2:
            out.append("edited")
        elif r < rate:
            continue
        else:
            out.append(w)
    return " ".join(out)


def _fp(text: str, article_id: str = "a") -> tuple[CleanedArticle, Candidate]:
    cleaned = CleanedArticle(article_id=article_id, version="t", text=text)
    fp = fingerprint(cleaned, PARAMS)
    return cleaned, Candidate(article_id, fp.signature, fp.shingles, fp.evidence)


def test_fingerprint_is_deterministic_and_sized() -> None:
    """Same text, same signature and bands; sizes follow the parameters."""
    cleaned = CleanedArticle(article_id="a", version="t", text=_body(1), url="https://example.com/x")
    one, two = fingerprint(cleaned, PARAMS), fingerprint(cleaned, PARAMS)
    assert np.array_equal(one.signature, two.signature)
    assert one.bands == two.bands
    assert one.signature.shape == (PARAMS.num_perm,)
    # body bands, whole-text bands and one key for the single paragraph
    assert len(one.bands) == PARAMS.bands + PARAMS.text_bands + 1
    assert one.keyed
    assert one.shingles == 396
    assert one.canonical_url == "https://example.com/x"
    assert one.url_key == url_key("https://example.com/x")
    assert signature_from_bytes(signature_to_bytes(one.signature)).tolist() == one.signature.tolist()


def test_minhash_estimates_jaccard() -> None:
    """Signature agreement tracks the true Jaccard of two sets within a few points."""
    rng = np.random.default_rng(3)
    pool = np.unique(rng.integers(0, 1 << 32, size=3000, dtype=np.uint64))
    for true in (0.2, 0.5, 0.8):
        shared = int(1000 * 2 * true / (1 + true))
        a = pool[:1000]
        b = np.concatenate((pool[:shared], pool[1000 : 1000 + 1000 - shared]))
        estimate, _ = compare(minhash(a, 128, 1), 1000, minhash(b, 128, 1), 1000)
        assert abs(estimate - true) < 0.12, (true, estimate)
    assert minhash(np.empty(0, dtype=np.uint64), 16, 1).tolist() == [0xFFFFFFFF] * 16


def test_edited_copy_is_verified_and_unrelated_text_is_not() -> None:
    """A copy with 5% word edits matches; a different text with the same vocabulary does not."""
    body = _body(2)
    _, cand = _fp(body, "orig")
    copy_article, _ = _fp(_edit(body, 0.05, 9), "copy")
    match = verify(fingerprint(copy_article, PARAMS), cand, PARAMS)
    assert match is not None
    assert match.article_id == "orig"
    assert match.similarity >= 0.5
    other, _ = _fp(_body(3), "other")
    assert verify(fingerprint(other, PARAMS), cand, PARAMS) is None


def test_trimmed_copy_matches_by_containment_not_jaccard() -> None:
    """Half an article with edits fails Jaccard but passes containment."""
    body = _body(4, 600)
    _, cand = _fp(body, "orig")
    trimmed, _ = _fp(_edit(" ".join(body.split()[:300]), 0.03, 5), "trim")
    match = verify(fingerprint(trimmed, PARAMS), cand, PARAMS)
    assert match is not None
    assert match.reason.startswith("body_containment")
    assert match.jaccard < PARAMS.threshold <= match.containment


def test_snippet_below_the_floor_is_not_keyed_nor_matched() -> None:
    """A 20-word snippet contained in an article is below the floor: no bands, never a near-duplicate."""
    body = _body(6)
    _, cand = _fp(body, "orig")
    snippet, _ = _fp(" ".join(body.split()[:20]), "snip")
    fp = fingerprint(snippet, PARAMS)
    assert fp.evidence.body_words < PARAMS.min_body_words
    assert not fp.keyed
    assert fp.bands == ()
    assert verify(fp, cand, PARAMS) is None


def test_best_match_prefers_the_most_similar() -> None:
    """Among verified candidates the most similar wins, ties broken by article id."""
    body = _body(7)
    query, _ = _fp(body, "q")
    _, close = _fp(_edit(body, 0.02, 1), "close")
    _, far = _fp(_edit(body, 0.06, 2), "far")
    _, same = _fp(body, "a-same")
    fp = fingerprint(query, PARAMS)
    best = best_match(fp, [far, close], PARAMS)
    assert best is not None
    assert best.article_id == "close"
    tie = best_match(
        fp, [far, same, Candidate("b-same", same.signature, same.shingles, same.evidence)], PARAMS
    )
    assert tie is not None
    assert tie.article_id == "a-same"
    assert best_match(fp, [], PARAMS) is None


def test_params_are_validated_and_recorded() -> None:
    """Bad parameters are refused; the record holds every parameter for the verdict."""
    with pytest.raises(ValueError, match="bands"):
        DedupParams(bands=100, rows=2, num_perm=128)
    with pytest.raises(ValueError, match="thresholds"):
        DedupParams(threshold=0.0)
    record = PARAMS.as_record()
    assert record["threshold"] == 0.5
    assert record["num_perm"] == 128
    assert record["shingle_size"] == 5
    assert VERSION.startswith("dedup-")


def test_sample_page_copy_with_other_chrome_is_a_near_duplicate() -> None:
    """The sample story reprinted, re-wrapped in another site's chrome with a new headline, still matches."""
    text = sample_page().read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if len(p.split()) > 8]
    _, cand = _fp("\n\n".join(paragraphs), "orig")
    reprint = "\n\n".join(
        ["Breaking: fishing ministers meet in Lisbon", "Home » World", *paragraphs[:-2], "© Other Site"]
    )
    match = verify(
        fingerprint(CleanedArticle(article_id="re", version="t", text=reprint), PARAMS), cand, PARAMS
    )
    assert match is not None
    assert match.article_id == "orig"


def test_table_cells_are_judged_as_a_reader_sees_them() -> None:
    """A body laid out in table cells joined by ` | ` is prose, cell by cell; a ` | ` nav bar is not."""
    params = DedupParams()
    sentence = "The harbour committee approved the new breakwater plan on Tuesday after a long debate"
    table = f"{sentence} in the council chamber. | {sentence} about costs and delays. | Photo: City Desk"
    assert body_paragraphs(table, params) == [
        f"{sentence} in the council chamber.",
        f"{sentence} about costs and delays.",
    ]
    nav = "Home | World | Business | Sport | Opinion | Culture | Travel | Weather | Contact us"
    assert body_paragraphs(nav, params) == []


def test_raw_key_is_the_exact_body() -> None:
    """The raw key changes with any byte of the raw body, and is equal for equal bodies."""
    assert raw_key("<p>a</p>") == raw_key("<p>a</p>")
    assert raw_key("<p>a</p>") != raw_key("<p>a</p> ")
    assert len(raw_key("x")) == 32
