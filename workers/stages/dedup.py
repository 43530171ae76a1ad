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
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import xxhash

from schemas.cleaned import CleanedArticle

VERSION = "dedup-1.0"

Signature = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class DedupParams:
    """Tunable parameters of the dedup stage; all of them are recorded on every verdict."""

    threshold: float = 0.5
    """Estimated Jaccard of the shingle sets from which two articles are near-duplicates."""
    containment_threshold: float = 0.5
    """Estimated share of the smaller article's shingles found in the other, from which they are
    near-duplicates (a trimmed or extended copy); only for articles of `min_shingles` or more."""
    num_perm: int = 128
    bands: int = 32
    rows: int = 2
    shingle_size: int = 5
    min_shingles: int = 40
    max_candidates: int = 32
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0 or not 0.0 < self.containment_threshold <= 1.0:
            raise ValueError("thresholds must be in (0, 1]")
        if self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm:
            raise ValueError("need 1 <= bands * rows <= num_perm")
        if self.shingle_size < 1 or self.max_candidates < 1:
            raise ValueError("shingle_size and max_candidates must be positive")

    def as_record(self) -> dict[str, float | int | str]:
        """The parameters as the flat dict stored in `DedupVerdict.params`; pure."""
        return dict(asdict(self))


@dataclass(frozen=True)
class Fingerprint:
    """Everything the index stores or looks up for one article."""

    canonical_url: str | None
    url_key: str | None
    text_key: str
    signature: Signature
    shingles: int
    bands: tuple[int, ...]


@dataclass(frozen=True)
class Candidate:
    """An indexed article that shares at least one LSH band with the one being decided."""

    article_id: str
    signature: Signature
    shingles: int


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


def band_keys(signature: Signature, bands: int, rows: int) -> tuple[int, ...]:
    """Return one signed 64-bit LSH key per band of `signature` (band index mixed in). Pure."""
    keys = []
    for band in range(bands):
        chunk = signature[band * rows : (band + 1) * rows].tobytes()
        keys.append(int.from_bytes(xxhash.xxh64_digest(chunk, seed=band), "big", signed=True))
    return tuple(keys)


def fingerprint(cleaned: CleanedArticle, params: DedupParams) -> Fingerprint:
    """Return the exact keys, MinHash signature and LSH band keys of a cleaned article. Pure."""
    data = word_bytes(cleaned.text)
    hashes = shingle_hashes(token_hashes(data), params.shingle_size)
    signature = minhash(hashes, params.num_perm, params.seed)
    canonical = canonical_url(cleaned.url)
    return Fingerprint(
        canonical_url=canonical,
        url_key=None if canonical is None else _digest(canonical),
        text_key=hashlib.blake2b(data, digest_size=16).hexdigest(),
        signature=signature,
        shingles=int(hashes.size),
        bands=band_keys(signature, params.bands, params.rows) if hashes.size else (),
    )


# --- verification ---------------------------------------------------------------------------------


def signature_to_bytes(signature: Signature) -> bytes:
    """Return the signature as little-endian uint32 bytes, the form stored in the index. Pure."""
    return signature.astype("<u4").tobytes()


def signature_from_bytes(data: bytes) -> Signature:
    """Return the signature stored by `signature_to_bytes`. Pure."""
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def compare(sig_a: Signature, shingles_a: int, sig_b: Signature, shingles_b: int) -> tuple[float, float]:
    """Return (estimated Jaccard, estimated containment of the smaller set in the larger) of two
    signatures with their distinct-shingle counts. Pure."""
    if sig_a.shape != sig_b.shape or shingles_a == 0 or shingles_b == 0:
        return 0.0, 0.0
    jaccard = float(np.count_nonzero(sig_a == sig_b)) / sig_a.size
    shared = jaccard * (shingles_a + shingles_b) / (1.0 + jaccard)
    containment = min(1.0, shared / min(shingles_a, shingles_b))
    return jaccard, containment


def verify(fp: Fingerprint, candidate: Candidate, params: DedupParams) -> Match | None:
    """Return the match if `candidate` is a near-duplicate of the fingerprinted article, else None. Pure."""
    jaccard, containment = compare(fp.signature, fp.shingles, candidate.signature, candidate.shingles)
    if jaccard >= params.threshold:
        return Match(candidate.article_id, round(jaccard, 4), jaccard, containment, "minhash_jaccard")
    if (
        min(fp.shingles, candidate.shingles) >= params.min_shingles
        and containment >= params.containment_threshold
    ):
        return Match(candidate.article_id, round(containment, 4), jaccard, containment, "minhash_containment")
    return None


def best_match(fp: Fingerprint, candidates: Iterable[Candidate], params: DedupParams) -> Match | None:
    """Return the most similar verified candidate (ties: lowest article id), or None. Pure."""
    matches = [m for c in candidates if (m := verify(fp, c, params)) is not None]
    if not matches:
        return None
    return min(matches, key=lambda m: (-m.similarity, m.article_id))
