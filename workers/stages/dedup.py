"""The dedup stage, pure part: exact keys, MinHash signatures, LSH band keys and the verdict rule.

Nothing here touches a database. `fingerprint` turns a cleaned article into everything the index
needs (canonical URL, normalised-text key, MinHash signature, LSH band keys); `compare` and
`best_match` verify candidates the index found; `workers.db.dedup_index.ensure_verdict` does the
shared, atomic lookup-and-insert around them.

Why these measures (see bench/dedup_eval.py for the figures): a syndicated copy with 3-5% word
edits keeps only ~0.45-0.66 of its 5-word shingles in Jaccard terms, and a trimmed or extended copy
far less, so a candidate is verified on *containment* (shared shingles over the smaller set) as well
as Jaccard, and LSH uses short bands (2 rows) so that candidates with Jaccard ~0.3 are still found.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import xxhash

from schemas.cleaned import CleanedArticle

VERSION = "dedup-3.1"

Signature = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class DedupParams:
    """Tunable parameters of the dedup stage; all of them are recorded on every verdict."""

    threshold: float = 0.5
    """Exact Jaccard of the two bodies' shingle sets (their evidence samples) from which two
    articles are near-duplicates whatever their sizes."""
    containment_threshold: float = 0.5
    """Exact share of the smaller body's shingles found in the other, needed for a near-duplicate
    below `threshold` (a trimmed or extended copy)..."""
    min_share_larger: float = 0.3
    """... and the share of the LARGER body those shared shingles must also be, unless they are at
    least `min_shared` shingles, half that share, and the two cores agree both ways: chrome that one
    text is made of cannot be a large share of the other's prose, nor hold the other's core."""
    min_shared: int = 120
    core_agreement: float = 0.7
    """Share of one body's core (its two longest paragraphs) found in the other body for the cores
    to agree: an article's longest paragraphs are its own, where chrome lines are short."""
    edge_lines: int = 20
    """Prose lines at each end of a body recorded per source to learn its chrome (`dedup_lines`)."""
    line_holders: int = 4
    """Articles of one source recorded per chrome line at most: past that the line is chrome for good,
    and recording it again would only grow `dedup_lines`."""
    same_source_share: float = 0.2
    """Share of a body's prose words in lines that one other cluster of the SAME source alone holds,
    from which the article is checked as a same-source copy of that cluster (those lines are not
    chrome to it); low, because a copy's page may carry much chrome of its site around the story."""
    same_source_core: float = 0.4
    """Share of each body's core (two longest paragraphs) the other must hold for a same-source copy: a
    stub made of the site's chrome holds none of the article's core..."""
    same_source_jaccard: float = 0.7
    """... and the Jaccard of the two bodies: a copy on its own site is the whole story (another URL,
    layout or headline, a paragraph added), where a page of the site's chrome is a part of another."""
    subset_containment: float = 0.9
    """Share of the smaller body found in the larger from which it is a copy whatever the larger's
    size (a print copy with fewer lines, an original that kept its reader comments), whichever
    arrived first..."""
    subset_min_words: int = 120
    """... when the smaller body has at least this many words of prose (a brief quoted whole in a
    round-up is shorter, and so is most of a site's chrome; 60 merged chrome-only stubs into copies
    wrapped in their site's chrome on the e2e tuning half: precision 0.966 vs 0.977) and holds part
    of the larger's core (`same_source_core`): a page of a site's
    chrome is contained in every page of that site, but holds none of an article's core."""
    own_words: int = 20
    """Same-source copies: when each body has at least this much of its own (the new one in whole
    lines the other lacks, the indexed one in shingles), they are two stories that share a standard
    paragraph (an editor's note, a bio), not one story under two URLs."""
    min_body_words: int = 40
    """Floor: an article with fewer words of prose (see `body_paragraphs`) is not keyed for exact or
    near duplicates; too little article to tell a copy from shared boilerplate."""
    prose_min_words: int = 8
    """Fewest words of a line that counts as prose (nav items, teasers and labels are shorter)."""
    evidence_cap: int = 256
    """Most body shingle hashes stored per article (a nested threshold sample beyond it)."""
    num_perm: int = 128
    bands: int = 32
    rows: int = 2
    text_bands: int = 8
    """LSH bands (of `rows` rows) over the whole cleaned text, chrome included, besides the body's."""
    paragraph_keys: int = 12
    """Candidate keys from single paragraphs: the lead ones and the longest, one min-hash each (a
    paragraph's key is one of its shingles: the smallest under a fixed hash), and the last two."""
    common_clusters: int = 5
    """Boilerplate by document frequency: a paragraph whose key the index holds for this many distinct
    clusters (a disclaimer, a standard bio, a cookie notice) is left out of the body like chrome, so
    its shingles are no evidence; its key is then no longer indexed, which bounds its rows."""
    shingle_size: int = 5
    max_candidates: int = 32
    seed: int = 1

    def __post_init__(self) -> None:
        shares = (
            self.threshold,
            self.containment_threshold,
            self.min_share_larger,
            self.core_agreement,
            self.same_source_share,
            self.same_source_core,
            self.same_source_jaccard,
            self.subset_containment,
        )
        if not all(0.0 < value <= 1.0 for value in shares):
            raise ValueError("thresholds must be in (0, 1]")
        if self.bands < 1 or self.rows < 1 or max(self.bands, self.text_bands) * self.rows > self.num_perm:
            raise ValueError("need 1 <= bands * rows <= num_perm")
        if self.shingle_size < 1 or self.max_candidates < 1 or self.evidence_cap < 16:
            raise ValueError("shingle_size and max_candidates must be positive, evidence_cap >= 16")
        if self.text_bands < 0 or self.paragraph_keys < 0 or self.min_body_words < 1:
            raise ValueError("text_bands and paragraph_keys must be >= 0, min_body_words >= 1")
        if self.line_holders < 1 or self.edge_lines < 1 or self.common_clusters < 2:
            raise ValueError("line_holders and edge_lines must be >= 1, common_clusters >= 2")
        if self.subset_min_words < 1 or self.own_words < 1:
            raise ValueError("subset_min_words and own_words must be >= 1")

    def as_record(self) -> dict[str, float | int | str]:
        """The parameters as the flat dict stored in `DedupVerdict.params`; pure."""
        return dict(asdict(self))


@dataclass(frozen=True)
class Evidence:
    """What verification reads of an article's body: a consistent sample of its shingle hashes.

    `body` holds the distinct 32-bit hashes of the body's shingles below 2**32 >> `level` (all of
    them at level 0); the level is the smallest that keeps at most `evidence_cap` of them. Samples
    nest (a hash kept at level L is kept at every lower level), so two articles are compared at the
    larger of their levels, exactly. `core` holds the hashes of the two longest body paragraphs.
    """

    level: int
    body: npt.NDArray[np.uint32]
    core: npt.NDArray[np.uint32]
    body_shingles: int
    body_words: int


@dataclass(frozen=True)
class Fingerprint:
    """Everything the index stores or looks up for one article."""

    canonical_url: str | None
    url_key: str | None
    text_key: str
    signature: Signature
    shingles: int
    bands: tuple[int, ...]
    evidence: Evidence
    keyed: bool
    """False below the floor (`DedupParams.min_body_words`): no text key, bands or evidence are used."""


@dataclass(frozen=True)
class Candidate:
    """An indexed article that shares at least one LSH band with the one being decided."""

    article_id: str
    signature: Signature
    shingles: int
    evidence: Evidence | None = None


@dataclass(frozen=True)
class Match:
    """A verified near-duplicate: which article, how similar, by which measure."""

    article_id: str
    similarity: float
    jaccard: float
    containment: float
    reason: str


# --- exact keys -----------------------------------------------------------------------------------

# Zero-width, invisible and bidi control characters: stripped before any key is computed.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u061c]")
# Latin look-alikes (after casefold) from Cyrillic, Greek and others: folded so a spoofed copy keys
# the same as the original. Applied to both sides, so genuine Cyrillic text only collides with text
# that is identical up to these letters.
_HOMOGLYPHS = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ɡ": "g", "ɑ": "a", "ο": "o", "α": "a", "ν": "v", "ι": "i", "κ": "k",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ε": "e", "ı": "i", "ℓ": "l",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z",
        "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y",
        "Χ": "X",
    }
)  # fmt: skip


_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


@cache
def _fold_char(char: str) -> str:
    """A non-ASCII character with invisible/bidi characters dropped and homoglyphs folded."""
    if _INVISIBLE.fullmatch(char):
        return ""
    return char.translate(_HOMOGLYPHS)


@cache
def _word_char(char: str) -> str:
    """A non-ASCII character as it enters `word_bytes`: folded as in `_fold_char`, then kept inside a
    word (letters, digits, combining marks), made a word of its own (CJK and other wide letters: no
    spaces between words there) or turned into a separator (punctuation, symbols)."""
    folded = _fold_char(char)
    if folded != char:
        return folded
    if unicodedata.east_asian_width(char) in {"W", "F"} and char.isalpha():
        return f" {char} "
    if char.isalnum() or unicodedata.category(char)[0] == "M":
        return char
    return " "


@lru_cache(maxsize=1 << 16)
def _fold_run_text(run: str) -> str:
    return "".join(map(_fold_char, run))


@lru_cache(maxsize=1 << 16)
def _word_run_text(run: str) -> str:
    return "".join(map(_word_char, run))


def _fold_run(match: re.Match[str]) -> str:
    return _fold_run_text(match.group())


def _word_run(match: re.Match[str]) -> str:
    # runs repeat (curly quotes, dashes, accented words): one cached lookup per run
    return _word_run_text(match.group())


def normalise_for_keys(text: str) -> str:
    """Return `text` NFKC-normalised, invisible/bidi characters stripped, homoglyphs folded and
    casefolded; the basis of the text key and of the shingles. Pure and idempotent."""
    if text.isascii():  # fast path: every step below is the identity on ASCII except casefold
        return text.lower()
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    # Only the non-ASCII runs need folding; a per-run callback with cached per-character answers is
    # several times faster than regex substitutions or str.translate over the whole text.
    return _NON_ASCII_RUN.sub(_fold_run, text).casefold()


# ASCII bytes that are not word characters (\w) become spaces; bytes.translate is ~50x a regex.
_ASCII_WORDS = bytes(b if b >= 128 or chr(b).isalnum() or chr(b) == "_" else 32 for b in range(256))


def word_bytes(text: str) -> bytes:
    """Return the words of `text` (normalised as in `normalise_for_keys`) as UTF-8, separated by
    single spaces; punctuation and spacing ignored. The input of the text key and of the shingles. Pure."""
    if text.isascii():
        norm = text.lower()
    else:
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
        norm = _NON_ASCII_RUN.sub(_word_run, text).casefold()
    return b" ".join(norm.encode().translate(_ASCII_WORDS).split())


def words(text: str) -> list[str]:
    """Return the word tokens of `text` after `normalise_for_keys`; punctuation and spacing ignored. Pure."""
    data = word_bytes(text)
    return data.decode().split(" ") if data else []


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8"), digest_size=16).hexdigest()


def raw_key(body: str) -> str:
    """Return the byte-identical-page key of a raw body: a 32-hex-digit hash of its exact UTF-8 bytes,
    taken before any cleaning. Pure."""
    return hashlib.blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def text_key(text: str) -> str:
    """Return the exact-duplicate key of `text`: a 32-hex-digit hash of its normalised words. Pure."""
    return hashlib.blake2b(word_bytes(text), digest_size=16).hexdigest()


_TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gclsrc", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga",
        "_gl", "_hsenc", "_hsmi", "mkt_tok", "ref", "ref_src", "ref_url", "referrer", "cmpid", "cmp",
        "ocid", "taid", "icid", "ito", "smid", "smtyp", "spm", "share", "shared", "src", "source",
        "sr_share", "fb_ref", "fb_source", "amp", "amp_js_v", "usqp", "outputtype", "output", "__twitter_impression",
        "at_medium", "at_campaign", "at_custom1", "cid", "s_cid", "ns_mchannel", "ns_source", "ns_campaign",
        "ns_linkname", "ns_fee", "rss", "feed", "partner", "utm",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "vero_", "oly_")
_HOST_PREFIXES = ("www.", "m.", "mobile.", "amp.", "wap.")
_AMP_SUFFIX = re.compile(r"(?:[./_-]amp)(?=\.html?$|$)", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = "-._~"
_SAFE_PATH = "/!$&'()*+,;=:@%"


def _canonical_host(host: str) -> str | None:
    host = host.strip().rstrip(".").lower()
    if not host:
        return None
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    while True:
        prefix = next((p for p in _HOST_PREFIXES if host.startswith(p) and host.count(".") >= 2), None)
        if prefix is None:
            return host
        host = host[len(prefix) :]


def _canonical_path(path: str) -> str:
    segments: list[str] = []
    for raw in path.split("/"):
        segment = quote(unquote(raw), safe=_SAFE_PATH.replace("/", "") + _UNRESERVED)
        if segment in {"", "."}:
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    # AMP variants: /amp/..., .../amp, story.amp.html, story-amp
    if segments and segments[0].lower() == "amp":
        segments = segments[1:]
    if segments and segments[-1].lower() == "amp":
        segments = segments[:-1]
    if segments:
        segments[-1] = _AMP_SUFFIX.sub("", segments[-1]) or segments[-1]
    return "/" + "/".join(segments)


def canonical_url(url: str | None) -> str | None:
    """Return the canonical form of an http(s) URL, or None if there is none; pure and idempotent.

    Scheme folded to https; host lowercased, IDN encoded as punycode, ``www.``/``m.``/``amp.``
    prefixes and default ports dropped; path dot-segments, empty segments, percent-encoding case,
    AMP markers and the trailing slash normalised; tracking parameters and the fragment dropped,
    remaining query parameters sorted.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = _canonical_host(unquote(parts.hostname))
    if host is None:
        return None
    netloc = host if port is None or port in _DEFAULT_PORTS.values() else f"{host}:{port}"
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_PARAMS and not key.lower().startswith(_TRACKING_PREFIXES)
    )
    return urlunsplit(("https", netloc, _canonical_path(parts.path), urlencode(query), ""))


def url_key(url: str | None) -> str | None:
    """Return the index key of a URL's canonical form (a 32-hex-digit hash), or None. Pure."""
    canonical = canonical_url(url)
    return None if canonical is None else _digest(canonical)


# --- MinHash --------------------------------------------------------------------------------------

_PRIME = 0x100000001B3  # FNV prime: odd, so invertible modulo 2**64
_POLY = np.uint64(_PRIME)
_POLY_INVERSE = np.uint64(pow(_PRIME, -1, 1 << 64))
# Odd 64-bit multipliers that combine the token hashes of one shingle (position-dependent).
_POSITION_MULTIPLIERS = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
     0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9],
    dtype=np.uint64,
)  # fmt: skip
_powers_cache: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]] = []


def _powers(n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """P**i and P**-i modulo 2**64 for i < n (cached, grown by doubling)."""
    if not _powers_cache or _powers_cache[0][0].size < n:
        size = max(n, 2 * _powers_cache[0][0].size if _powers_cache else 8192)
        forward = np.ones(size, dtype=np.uint64)
        backward = np.ones(size, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.cumprod(np.full(size - 1, _POLY, dtype=np.uint64), out=forward[1:])
            np.cumprod(np.full(size - 1, _POLY_INVERSE, dtype=np.uint64), out=backward[1:])
        _powers_cache[:] = [(forward, backward)]
    return _powers_cache[0]


def _fmix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """murmur3's 64-bit finaliser, in place and returned."""
    with np.errstate(over="ignore"):
        values ^= values >> np.uint64(33)
        values *= np.uint64(0xFF51AFD7ED558CCD)
        values ^= values >> np.uint64(33)
        values *= np.uint64(0xC4CEB9FE1A85EC53)
        values ^= values >> np.uint64(33)
    return values


def token_hashes(data: bytes) -> npt.NDArray[np.uint64]:
    """Return one 64-bit hash per space-separated token of `data` (the output of `word_bytes`),
    computed for all tokens at once with polynomial prefix sums. Pure."""
    if not data:
        return np.empty(0, dtype=np.uint64)
    codes = np.frombuffer(data, dtype=np.uint8)
    forward, backward = _powers(codes.size + 1)
    prefix = np.zeros(codes.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * forward[: codes.size], out=prefix[1:])
        spaces = np.flatnonzero(codes == 32)
        starts = np.concatenate(([0], spaces + 1))
        ends = np.concatenate((spaces, [codes.size]))
        return _fmix((prefix[ends] - prefix[starts]) * backward[starts])


def shingle_hashes(tokens: npt.NDArray[np.uint64], size: int) -> npt.NDArray[np.uint64]:
    """Return the distinct 32-bit hashes (as uint64) of the `size`-token shingles of the token hashes
    `tokens` (one shingle of all tokens if there are fewer). Pure."""
    if tokens.size == 0:
        return np.empty(0, dtype=np.uint64)
    if size > len(_POSITION_MULTIPLIERS):
        raise ValueError(f"shingle_size above {len(_POSITION_MULTIPLIERS)} is not supported")
    size = min(size, tokens.size)
    count = tokens.size - size + 1
    combined = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(size):
            combined += tokens[offset : offset + count] * _POSITION_MULTIPLIERS[offset]
    hashes = np.sort(_fmix(combined) >> np.uint64(32))
    # np.unique is ~100x slower than this on small arrays (numpy 2.x hash-based path)
    keep = np.empty(hashes.size, dtype=bool)
    keep[0] = True
    np.not_equal(hashes[1:], hashes[:-1], out=keep[1:])
    return hashes[keep]


_PROBES = 32


@cache
def _probes(num_perm: int, seed: int) -> npt.NDArray[np.int64]:
    """For each bin, a fixed random sequence of other bins an empty bin borrows from."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(1, max(num_perm, 2), size=(num_perm, _PROBES))
    return (np.arange(num_perm)[:, None] + offsets) % num_perm


def minhash(hashes: npt.NDArray[np.uint64], num_perm: int, seed: int) -> Signature:
    """Return a `num_perm`-value MinHash signature of a set of 32-bit hashes (all 0xFFFFFFFF if
    empty). Pure.

    One-permutation hashing with optimal densification (Shrivastava 2017): the hash range is cut
    into `num_perm` bins, each bin keeps its smallest hash, and an empty bin borrows the value of
    the first non-empty bin in its fixed probe sequence, so two signatures agree on a bin with
    probability ~ the Jaccard of the sets. Costs one sort instead of a shingles x num_perm matrix.
    """
    if hashes.size == 0:
        return np.full(num_perm, 0xFFFFFFFF, dtype=np.uint32)
    ordered = np.sort(hashes)
    bins = (ordered * np.uint64(num_perm)) >> np.uint64(32)  # monotonic in the hash: stays sorted
    first = np.searchsorted(bins, np.arange(num_perm, dtype=np.uint64))
    clipped = np.minimum(first, ordered.size - 1)
    present = (first < ordered.size) & (bins[clipped] == np.arange(num_perm, dtype=np.uint64))
    values = ordered[clipped]
    if not present.all():
        empty = np.flatnonzero(~present)
        probes = _probes(num_perm, seed)[empty]
        hit = present[probes]
        source = probes[np.arange(empty.size), hit.argmax(axis=1)]
        fallback = int(np.flatnonzero(present)[0])
        values[empty] = np.where(hit.any(axis=1), values[source], values[fallback])
    return values.astype(np.uint32)


def band_keys(signature: Signature, bands: int, rows: int, namespace: int = 0) -> tuple[int, ...]:
    """Return one signed 64-bit LSH key per band of `signature` (band index and `namespace` mixed
    in). Pure."""
    keys = []
    for band in range(bands):
        chunk = signature[band * rows : (band + 1) * rows].tobytes()
        keys.append(int.from_bytes(xxhash.xxh64_digest(chunk, seed=namespace + band), "big", signed=True))
    return tuple(keys)


# --- the body: prose paragraphs, evidence and candidate keys ----------------------------------------

_SENTENCE_MARKS = re.compile(r"[.,;:!?](?=\s|$)")
_SEPARATORS = re.compile(r"[|•»«›‹>/·]|\s-\s")


def is_prose(line: str, min_words: int) -> bool:
    """Whether a cleaned line reads as article prose rather than chrome; pure.

    Prose has `min_words` words or more, is not a run of separated links (``A | B | C``) and is not
    Title Case throughout (nav bars, section lists and teaser headlines are). Scripts without case
    count as prose when long enough.
    """
    tokens = line.split()
    if len(tokens) < min_words:
        return False
    if 3 * len(_SEPARATORS.findall(line)) > len(tokens):
        return False
    cased = [t for t in tokens if t[:1].isalpha() and (t[:1].isupper() or t[:1].islower())]
    upper = sum(1 for t in cased if t[:1].isupper())
    if not cased or upper <= 0.6 * len(cased) or len(cased) < 0.5 * len(tokens):
        return True
    # all capitals (wire copy, shouting): prose if it is punctuated like sentences
    shouted = sum(1 for t in cased if t.isupper()) >= 0.8 * len(cased)
    return shouted and len(_SENTENCE_MARKS.findall(line)) * 12 >= len(tokens)


_CELLS = re.compile(r" +\| +|\t+| {3,}")


def reader_lines(text: str) -> list[str]:
    """Return the lines of a cleaned text as a reader sees them: a line laid out as table cells
    (joined by ` | `, tabs or runs of 3+ spaces, as text renderers print table layouts) is one line per
    cell. Pure."""
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        out.extend(cell for part in _CELLS.split(line) if (cell := part.strip()))
    return out


# A photo caption or credit: "(AP Photo/Evan Vucci)", "Photo: Jane Doe/Reuters", "Picture by ...",
# "Credit: ...", "Getty Images", "©". Short lines only: a paragraph that mentions a photo is prose.
_CREDIT = re.compile(
    r"\((?:[^()]*\b(?:photo|photograph|image|picture|file|pool|credit|courtesy)\b[^()]*|[^()\s]+/[^()]+)\)"
    r"\s*\.?\s*$"
    r"|^\s*(?:photo|photograph|image|picture|pictured|credit|caption|illustration)s?\s*(?::|by\b)"
    r"|\b(?:photo|photograph|image|picture|credit)s?\s*(?::|by\b|credit\b)[^.]*$"
    r"|\bgetty images\b|\bfile photo\b|©|\(c\)\s*\d{4}",
    re.IGNORECASE,
)
# "... on Tuesday. REUTERS/Lena Berg": an agency in capitals, a slash and the photographer, ending the line
_AGENCY_CREDIT = re.compile(r"\b[A-Z]{2,}(?: [A-Z]{2,})*/[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,3}\s*$")
_CAPTION_MAX_WORDS = 60
# every credit the patterns above match holds a slash, a © or one of these words
_CREDIT_HINTS = ("photo", "image", "picture", "credit", "caption", "illustration", "getty", "(c)")


def is_caption(line: str) -> bool:
    """Whether a line is a photo caption or a credit (it names the picture's credit); pure. Captions
    are not the story: a text dump keeps them where the HTML page's cleaning dropped them."""
    if "/" not in line and "©" not in line:
        lower = line.lower()
        if not any(hint in lower for hint in _CREDIT_HINTS):
            return False  # most lines: no regex run
    if len(line.split()) > _CAPTION_MAX_WORDS:
        return False
    return _CREDIT.search(line) is not None or _AGENCY_CREDIT.search(line) is not None


def body_paragraphs(text: str, params: DedupParams) -> list[str]:
    """Return the prose lines of a cleaned text (see `is_prose`), captions and credits left out
    (`is_caption`), in order; pure.

    Only these are fingerprinted for near duplicates, so the chrome a cleaner left (menus, link
    lists, labels, section names) can neither make two articles alike nor hide a copy. Table cells
    are judged one by one (`reader_lines`): an article laid out in a table is still prose, and a nav
    bar of ` | `-separated links is still a list of short cells.
    """
    return [
        line for line in reader_lines(text) if is_prose(line, params.prose_min_words) and not is_caption(line)
    ]


def line_key(words_of_line: bytes) -> int:
    """The signed 64-bit key of one line's normalised words (`word_bytes`), as `dedup_lines` stores it. Pure."""
    return int.from_bytes(xxhash.xxh64_digest(words_of_line, seed=_LINE_SEED), "big", signed=True)


@dataclass(frozen=True)
class BodyLines:
    """The prose lines of a cleaned text as normalised words, with their keys."""

    words: list[bytes]
    keys: list[int]
    shingles: list[npt.NDArray[np.uint64]]
    """Each line's shingle hashes (computed once: `fingerprint` and `paragraph_keys` both read them)."""

    def edge_keys(self, count: int) -> list[int]:
        """Keys of the first and last `count` lines: where chrome a cleaner leaves sits."""
        if len(self.keys) <= 2 * count:
            return sorted(set(self.keys))
        return sorted(set(self.keys[:count] + self.keys[-count:]))


def body_lines(text: str, params: DedupParams) -> BodyLines:
    """Return the prose lines of `text` (`body_paragraphs`) as normalised words and keys. Pure."""
    words = [b for b in (word_bytes(p) for p in body_paragraphs(text, params)) if b]
    return BodyLines(words, [line_key(w) for w in words], _paragraph_shingles(words, params.shingle_size))


def _paragraph_shingles(paragraphs: list[bytes], size: int) -> list[npt.NDArray[np.uint64]]:
    return [shingle_hashes(token_hashes(data), size) for data in paragraphs]


def _sample(hashes: npt.NDArray[np.uint64], cap: int) -> tuple[int, npt.NDArray[np.uint32]]:
    """The nested threshold sample of `hashes` (sorted, distinct) with at most `cap` values."""
    level = 0
    while int(np.count_nonzero(hashes < (1 << 32) >> level)) > cap:
        level += 1
    return level, hashes[hashes < (1 << 32) >> level].astype(np.uint32)


_PARAGRAPH_SEED = 0x5EED
_LINE_SEED = 0x11E5
_TEXT_BANDS = 1 << 16


def _paragraph_key(hashes: npt.NDArray[np.uint64], seed: int) -> int:
    """One min-hash of a paragraph's shingles as a signed 64-bit key (its own namespace)."""
    with np.errstate(over="ignore"):
        mixed = _fmix(hashes * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed))
    low = int(mixed.min())
    return int.from_bytes(
        xxhash.xxh64_digest(low.to_bytes(8, "big"), seed=_PARAGRAPH_SEED), "big", signed=True
    )


_MIN_KEYED_SHINGLES = 10


def _keyed_paragraphs(shingles: list[npt.NDArray[np.uint64]], count: int) -> list[int]:
    """Indexes of the paragraphs that get a candidate key: the lead half and the longest (`count` in
    all), then the last two (where a source's boilerplate paragraph sits, so that its document
    frequency is seen)."""
    usable = [i for i, h in enumerate(shingles) if h.size >= _MIN_KEYED_SHINGLES]
    lead = usable[: (count + 1) // 2]
    longest = sorted(usable, key=lambda i: (-shingles[i].size, i))
    chosen = list(lead)
    for i in longest:
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    chosen.extend(i for i in usable[-2:] if i not in chosen)
    return chosen


def paragraph_keys(lines: BodyLines, params: DedupParams) -> dict[int, int]:
    """Return each body line's paragraph key (the min-hash `fingerprint` indexes for it as a candidate
    key), by line key, for lines with enough shingles to have one. Pure."""
    keys = {}
    for hashes, line in zip(lines.shingles, lines.keys, strict=True):
        if hashes.size >= _MIN_KEYED_SHINGLES:
            keys[line] = _paragraph_key(hashes, params.seed)
    return keys


def fingerprint(
    cleaned: CleanedArticle,
    params: DedupParams,
    chrome: frozenset[int] = frozenset(),
    lines: BodyLines | None = None,
) -> Fingerprint:
    """Return the exact keys, body evidence, MinHash signature and candidate keys of a cleaned
    article. Pure.

    The body is the text's prose lines (`body_lines`, given or computed) minus those whose key is in
    `chrome` (lines learned as the source's chrome). Candidate keys: `bands` LSH bands over the
    body's MinHash, `text_bands` over the whole text's, and one key for each of up to
    `paragraph_keys` body paragraphs (the lead ones, then the longest), so a copy is found from its
    body however much chrome surrounds it.
    """
    data = word_bytes(cleaned.text)
    canonical = canonical_url(cleaned.url)
    lines = lines if lines is not None else body_lines(cleaned.text, params)
    paragraphs = [w for w, k in zip(lines.words, lines.keys, strict=True) if k not in chrome]
    body_words = sum(p.count(b" ") + 1 for p in paragraphs)
    per_paragraph = [h for h, k in zip(lines.shingles, lines.keys, strict=True) if k not in chrome]
    body = np.unique(np.concatenate(per_paragraph)) if per_paragraph else np.empty(0, dtype=np.uint64)
    # the core: the two longest paragraphs, where the article is (chrome lines are shorter)
    longest = sorted(range(len(per_paragraph)), key=lambda i: (-per_paragraph[i].size, i))[:2]
    core = np.unique(np.concatenate([per_paragraph[i] for i in longest])) if longest else body
    keyed = body_words >= params.min_body_words and body.size > 0
    signature = minhash(body, params.num_perm, params.seed)
    bands: list[int] = []
    if keyed:
        bands.extend(band_keys(signature, params.bands, params.rows))
        if params.text_bands:
            whole = minhash(
                shingle_hashes(token_hashes(data), params.shingle_size), params.num_perm, params.seed
            )
            bands.extend(band_keys(whole, params.text_bands, params.rows, namespace=_TEXT_BANDS))
        chosen = _keyed_paragraphs(per_paragraph, params.paragraph_keys)
        bands.extend(_paragraph_key(per_paragraph[index], params.seed) for index in chosen)
    level, sample = _sample(body, params.evidence_cap)
    return Fingerprint(
        canonical_url=canonical,
        url_key=None if canonical is None else _digest(canonical),
        text_key=hashlib.blake2b(data, digest_size=16).hexdigest(),
        signature=signature,
        shingles=int(body.size),
        bands=tuple(dict.fromkeys(bands)),
        evidence=Evidence(level, sample, core.astype(np.uint32), int(body.size), body_words),
        keyed=keyed,
    )


# --- verification ---------------------------------------------------------------------------------


def signature_to_bytes(signature: Signature) -> bytes:
    """Return the signature as little-endian uint32 bytes, the form stored in the index. Pure."""
    return signature.astype("<u4").tobytes()


def signature_from_bytes(data: bytes) -> Signature:
    """Return the signature stored by `signature_to_bytes`. Pure."""
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


_EVIDENCE_HEADER = struct.Struct("<2sBIII")
_EVIDENCE_MAGIC = b"E1"


def evidence_to_bytes(evidence: Evidence) -> bytes:
    """Return the evidence as stored in the index (a header, then little-endian uint32s). Pure."""
    header = _EVIDENCE_HEADER.pack(
        _EVIDENCE_MAGIC, evidence.level, evidence.body_shingles, evidence.body_words, evidence.body.size
    )
    return header + evidence.body.astype("<u4").tobytes() + evidence.core.astype("<u4").tobytes()


def evidence_from_bytes(data: bytes | None) -> Evidence | None:
    """Return the evidence stored by `evidence_to_bytes`, or None for none or an unknown format. Pure."""
    if not data or len(data) < _EVIDENCE_HEADER.size or data[:2] != _EVIDENCE_MAGIC:
        return None
    _magic, level, body_shingles, body_words, size = _EVIDENCE_HEADER.unpack_from(data)
    values = np.frombuffer(data, dtype="<u4", offset=_EVIDENCE_HEADER.size).astype(np.uint32)
    return Evidence(level, values[:size], values[size:], body_shingles, body_words)


def compare(sig_a: Signature, shingles_a: int, sig_b: Signature, shingles_b: int) -> tuple[float, float]:
    """Return (estimated Jaccard, estimated containment of the smaller set in the larger) of two
    signatures with their distinct-shingle counts. Pure. Used for reporting only: at low Jaccard
    the containment estimate is noise, so no verdict rests on it."""
    if sig_a.shape != sig_b.shape or shingles_a == 0 or shingles_b == 0:
        return 0.0, 0.0
    jaccard = float(np.count_nonzero(sig_a == sig_b)) / sig_a.size
    shared = jaccard * (shingles_a + shingles_b) / (1.0 + jaccard)
    containment = min(1.0, shared / min(shingles_a, shingles_b))
    return jaccard, containment


@dataclass(frozen=True)
class Overlap:
    """Exact overlap of two bodies' evidence samples, compared at the coarser of their levels."""

    shared: int
    size_a: int
    size_b: int
    level: int
    core_a: float
    core_b: float

    @property
    def jaccard(self) -> float:
        union = self.size_a + self.size_b - self.shared
        return self.shared / union if union else 0.0

    @property
    def containment(self) -> float:
        """Shared share of the smaller body."""
        return self.shared / min(self.size_a, self.size_b) if min(self.size_a, self.size_b) else 0.0

    @property
    def share_of_larger(self) -> float:
        return self.shared / max(self.size_a, self.size_b) if max(self.size_a, self.size_b) else 0.0

    @property
    def shared_shingles(self) -> int:
        """The shared shingles the sample stands for."""
        return self.shared << self.level

    @property
    def larger_core(self) -> float:
        """Share of the larger body's core found in the smaller one."""
        return self.core_a if self.size_a >= self.size_b else self.core_b

    @property
    def only_in_b(self) -> int:
        """The shingles of the second body the first lacks, as many as the sample stands for."""
        return (self.size_b - self.shared) << self.level


def _core_share(core: npt.NDArray[np.uint32], limit: int, other: npt.NDArray[np.uint32]) -> float:
    kept = core[core.astype(np.uint64) < limit]
    if kept.size < 3:
        return 0.0
    return float(np.isin(kept, other, assume_unique=False).mean())


def overlap(a: Evidence, b: Evidence) -> Overlap:
    """Return the exact overlap of two articles' body samples (see `Evidence`). Pure."""
    level = max(a.level, b.level)
    limit = (1 << 32) >> level
    body_a = a.body[a.body.astype(np.uint64) < limit]
    body_b = b.body[b.body.astype(np.uint64) < limit]
    shared = int(np.intersect1d(body_a, body_b, assume_unique=True).size)
    return Overlap(
        shared,
        int(body_a.size),
        int(body_b.size),
        level,
        _core_share(a.core, limit, body_b),
        _core_share(b.core, limit, body_a),
    )


def _smaller_words(fp: Fingerprint, candidate: Evidence, seen: Overlap) -> int:
    """Words of prose of the smaller of two bodies (by their samples)."""
    return fp.evidence.body_words if seen.size_a <= seen.size_b else candidate.body_words


def _is_subset(
    fp: Fingerprint,
    candidate: Evidence,
    seen: Overlap,
    params: DedupParams,
    *,
    lines: BodyLines | None,
    chrome: frozenset[int],
) -> bool:
    """Whether the smaller body is contained in the larger (`subset_containment`) and has enough words
    (`subset_min_words`), and is the story rather than the chrome around it. A page of a site's chrome
    is contained in every page of that site, but holds none of its core: the smaller must hold part of
    the larger's core (`same_source_core`); and when the new article is the larger one (its `lines`
    known), the lines it shares with the smaller must be one block, with at most `own_words` words of
    other lines between them (a story has its chrome around it, not inside)."""
    if (
        seen.containment < params.subset_containment
        or _smaller_words(fp, candidate, seen) < params.subset_min_words
    ):
        return False
    if seen.larger_core < params.same_source_core:
        return False
    return (
        lines is None
        or seen.size_a <= seen.size_b
        or _gap_words(lines, chrome, candidate, seen.level) <= params.own_words
    )


def _match(article_id: str, seen: Overlap, similarity: float, reason: str) -> Match:
    """A verified match with the overlap's exact measures."""
    return Match(article_id, round(similarity, 4), seen.jaccard, seen.containment, reason)


def _comparable(fp: Fingerprint, candidate: Candidate, params: DedupParams) -> Overlap | None:
    """The overlap of the two bodies, or None when either is below the floor or has no evidence."""
    if not fp.keyed or candidate.evidence is None or candidate.evidence.body_words < params.min_body_words:
        return None
    return overlap(fp.evidence, candidate.evidence)


def verify(
    fp: Fingerprint,
    candidate: Candidate,
    params: DedupParams,
    *,
    lines: BodyLines | None = None,
    chrome: frozenset[int] = frozenset(),
) -> Match | None:
    """Return the match if `candidate` is a near-duplicate of the fingerprinted article, else None. Pure.

    Decided on exact evidence only (`overlap`): the bodies' Jaccard reaches `threshold`; or the
    smaller body is contained in the larger (`_is_subset`: a print copy, an original that kept its
    comments, whichever arrived first); or the shared shingles are at least `containment_threshold`
    of the smaller body AND either `min_share_larger` of the larger one or `min_shared` shingles with
    agreeing cores (see `Evidence`). An article below the floor, or an indexed one without evidence,
    never matches.
    """
    seen = _comparable(fp, candidate, params)
    if seen is None or candidate.evidence is None:
        return None
    estimated, _ = compare(fp.signature, fp.shingles, candidate.signature, candidate.shingles)
    detail = (
        f"jaccard={seen.jaccard:.3f} containment={seen.containment:.3f} of_larger={seen.share_of_larger:.3f} "
        f"shared={seen.shared_shingles} core={max(seen.core_a, seen.core_b):.2f} minhash={estimated:.3f}"
    )
    if seen.jaccard >= params.threshold:
        return _match(candidate.article_id, seen, seen.jaccard, f"body_jaccard {detail}")
    if seen.containment < params.containment_threshold:
        return None
    if _is_subset(fp, candidate.evidence, seen, params, lines=lines, chrome=chrome):
        return _match(candidate.article_id, seen, seen.containment, f"body_subset {detail}")
    if seen.share_of_larger >= params.min_share_larger or (
        seen.share_of_larger >= params.min_share_larger / 2
        and seen.shared_shingles >= params.min_shared
        and min(seen.core_a, seen.core_b) >= params.core_agreement
    ):
        return _match(candidate.article_id, seen, seen.containment, f"body_containment {detail}")
    return None


def _presence(
    lines: BodyLines, chrome: frozenset[int], other: Evidence, level: int
) -> list[tuple[int, float | None]]:
    """(words, share of its shingles in `other`'s sample) of each body line not in `chrome`, in order,
    compared at `level` (at least `other`'s); the share is None for a line too short to tell."""
    limit = (1 << 32) >> max(level, other.level)
    theirs = other.body[other.body.astype(np.uint64) < limit]
    out: list[tuple[int, float | None]] = []
    for data, key, hashes in zip(lines.words, lines.keys, lines.shingles, strict=True):
        if key in chrome:
            continue
        kept = hashes[hashes < limit].astype(np.uint32)
        out.append((data.count(b" ") + 1, float(np.isin(kept, theirs).mean()) if kept.size >= 2 else None))
    return out


def own_line_words(lines: BodyLines, chrome: frozenset[int], other: Evidence, level: int) -> int:
    """Words of the body lines (those not in `chrome`) that `other` lacks as a whole: fewer than a
    fifth of their shingles in its sample, compared at `level` (at least `other`'s). An edited or
    re-wrapped line keeps most of its shingles; a paragraph of another story keeps none. Pure."""
    return sum(
        words for words, share in _presence(lines, chrome, other, level) if share is not None and share < 0.2
    )


def _gap_words(lines: BodyLines, chrome: frozenset[int], other: Evidence, level: int) -> int:
    """Words of the body lines `other` lacks (`own_line_words`) that lie between lines it holds (half
    of their shingles or more): what separates the shared lines. Pure."""
    presence = _presence(lines, chrome, other, level)
    held = [i for i, (_, share) in enumerate(presence) if share is not None and share >= 0.5]
    if not held:
        return 0
    between = presence[held[0] : held[-1] + 1]
    return sum(words for words, share in between if share is not None and share < 0.2)


def verify_same_source(
    fp: Fingerprint,
    host: Candidate,
    params: DedupParams,
    *,
    chrome: frozenset[int] = frozenset(),
    lines: BodyLines | None = None,
) -> Match | None:
    """Return the match if the fingerprinted article is a copy of `host`, an article of its own
    source whose lines it shares (so they were not taken as chrome), else None. Pure.

    A same-source copy (another URL, the print layout, a headline changed, a paragraph added) is the
    whole story: the bodies' Jaccard is at least `same_source_jaccard`, the shared shingles are at
    least `containment_threshold` of the smaller body and each body's core (its two longest
    paragraphs) is at least `same_source_core` in the other; or the smaller body is contained in the
    larger (`_is_subset`: a print copy with fewer lines). A page of the site's chrome with one line of
    its own is a part of another page, and holds none of its core. And the parts the bodies do not
    share must not be two stories: when the new article (its `lines` without `chrome`) has
    `own_words` words in whole lines the host lacks, and the host as many shingles the new
    one lacks, they are two stories sharing a standard paragraph (an editor's note, a bio).
    """
    seen = _comparable(fp, host, params)
    if seen is None or host.evidence is None:
        return None
    whole = (
        seen.jaccard >= params.same_source_jaccard
        and seen.containment >= params.containment_threshold
        and min(seen.core_a, seen.core_b) >= params.same_source_core
    )
    if not whole and not _is_subset(fp, host.evidence, seen, params, lines=lines, chrome=chrome):
        return None
    own = 0 if lines is None else own_line_words(lines, chrome, host.evidence, seen.level)
    if own >= params.own_words and seen.only_in_b >= params.own_words:
        return None
    return _match(
        host.article_id,
        seen,
        seen.containment,
        f"same_source{'' if whole else '_subset'} jaccard={seen.jaccard:.3f} containment={seen.containment:.3f} "
        f"of_larger={seen.share_of_larger:.3f} core={min(seen.core_a, seen.core_b):.2f} own_words={own}",
    )


def best_match(fp: Fingerprint, candidates: Iterable[Candidate], params: DedupParams) -> Match | None:
    """Return the most similar verified candidate (ties: lowest article id), or None. Pure."""
    matches = [m for c in candidates if (m := verify(fp, c, params)) is not None]
    if not matches:
        return None
    return min(matches, key=lambda m: (-m.containment, -m.jaccard, m.article_id))
