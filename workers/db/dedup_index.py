"""The shared dedup index: exact keys, MinHash signatures and LSH bands in the `dedup_*` tables.

Durable (it lives in the SQL database, so a Redis restart loses nothing), shared by every worker,
and atomic: `ensure_verdict` looks up and inserts in the caller's transaction while holding locks
on exactly the keys it looks up, so two near-duplicates decided at the same instant by two
processes are serialised and yield one canonical.

* PostgreSQL: transaction-scoped advisory locks on the article id, its text key, its URL key and
  each of its LSH band keys, taken in one statement in sorted order (no deadlock between two
  deciders); articles that could find each other share at least one of these keys. Joining or
  re-pointing a cluster also locks the cluster's canonical id.
* SQLite: one writer at a time. A no-op UPDATE first makes pysqlite open the transaction and take
  the write lock before anything is read, so the lookup cannot work from a stale snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

import psycopg
import xxhash
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    BigInteger,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Compiled, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from schemas.cleaned import CleanedArticle
from schemas.dedup import DedupVerdict, VerdictKind
from workers.db.models import DedupBandRow, DedupKeyRow, DedupLineRow, DedupSignatureRow
from workers.stages.dedup import (
    VERSION,
    BodyLines,
    Candidate,
    DedupParams,
    Fingerprint,
    Match,
    body_lines,
    canonical_url,
    compare,
    evidence_from_bytes,
    evidence_to_bytes,
    fingerprint,
    overlap,
    paragraph_keys,
    signature_from_bytes,
    signature_to_bytes,
    verify,
    verify_same_source,
)
from workers.stages.dedup import raw_key as raw_body_key

# First half of the two-int advisory lock keys ("DDUP"), so our locks never meet anyone else's.
_LOCK_NAMESPACE = 0x44445550
_KEYS: Table = DedupKeyRow.__table__  # type: ignore[assignment]
_SIGNATURES: Table = DedupSignatureRow.__table__  # type: ignore[assignment]
_BANDS: Table = DedupBandRow.__table__  # type: ignore[assignment]
_LINES: Table = DedupLineRow.__table__  # type: ignore[assignment]
_CANONICAL = _SIGNATURES.alias("canonical")


def _lock_id(value: str | int) -> int:
    digest = xxhash.xxh32_intdigest(
        value.encode() if isinstance(value, str) else value.to_bytes(8, "big", signed=True)
    )
    return digest - (1 << 32) if digest >= 1 << 31 else digest


def _lock(session: Session, values: Sequence[str | int]) -> None:
    """Take the write lock covering `values` for the rest of the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        ids = sorted({_lock_id(v) for v in values})
        session.execute(
            text("SELECT count(pg_advisory_xact_lock(:ns, k)) FROM unnest(CAST(:ids AS int[])) AS k"),
            {"ns": _LOCK_NAMESPACE, "ids": ids},
        )
    else:
        # SQLite (single writer): any write takes the database write lock until commit.
        session.execute(update(_KEYS).where(text("0 = 1")).values(kind=_KEYS.c.kind))


_PG_LOCK = "SELECT count(pg_advisory_xact_lock(%(ns)s, k)) FROM unnest(%(ids)s::int[]) AS k"


@cache
def _compiled(statement: ClauseElement, dialect: Dialect) -> Compiled:
    return statement.compile(dialect=dialect)


def _locked_rows(
    session: Session, lock_values: Sequence[str | int], statement: Any, params: dict[str, Any]
) -> list[Any]:
    """Take the write locks covering `lock_values`, then run `statement` and return its rows.

    PostgreSQL: both go in one round trip (a psycopg pipeline). The query still runs after the
    locks are granted and takes its snapshot then, so it sees everything the previous holder committed.
    """
    if session.get_bind().dialect.name != "postgresql":
        _lock(session, lock_values)
        return list(session.execute(statement, params).all())
    compiled = _compiled(statement, session.get_bind().dialect)
    dbapi = cast("psycopg.Connection[Any]", session.connection().connection.dbapi_connection)
    ids = sorted({_lock_id(v) for v in lock_values})
    with dbapi.pipeline(), dbapi.cursor() as lock_cursor, dbapi.cursor(row_factory=namedtuple_row) as cursor:
        lock_cursor.execute(_PG_LOCK, {"ns": _LOCK_NAMESPACE, "ids": ids})
        cursor.execute(compiled.string, {**compiled.params, **params})
        rows: list[Any] = cursor.fetchall()
    return rows


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """SQLite: insert `rows`, skipping those whose primary key exists."""
    if rows:
        session.execute(sqlite.insert(table).on_conflict_do_nothing(), rows)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _lookup_statement(postgres: bool) -> Any:
    """Everything one decision reads, in one round trip: the article's own stored verdict, the owners
    of its text and URL keys (with their signatures) and its best LSH candidates."""
    sig = _SIGNATURES.c
    own = select(
        literal("self").label("what"),
        sig.seq,
        sig.article_id,
        sig.verdict,
        sig.cluster_id,
        sig.signature,
        sig.shingles,
        sig.evidence,
    ).where(sig.article_id == bindparam("article_id"))

    def _match_columns(what: str) -> tuple[Any, ...]:
        """The columns of a row that may match: how it was found, and its signature."""
        return (
            literal(what).label("what"),
            sig.seq,
            sig.article_id,
            literal(None, Text).label("verdict"),
            sig.cluster_id,
            sig.signature,
            sig.shingles,
            sig.evidence,
        )

    def owner(kind: str) -> Any:
        # 'raw' (byte-identical page), 'text' (normalised text) or 'url' (canonical URL)
        return (
            select(*_match_columns(kind))
            .join_from(_KEYS, _SIGNATURES, _KEYS.c.article_id == sig.article_id)
            .where(
                _KEYS.c.kind == kind,
                _KEYS.c.key == bindparam(f"{kind}_key"),
                _KEYS.c.article_id != bindparam("article_id"),
            )
        )

    own_seq = select(sig.seq).where(sig.article_id == bindparam("article_id")).scalar_subquery()
    shared = (
        select(_BANDS.c.seq, func.count().label("shared"))
        .where(
            # PostgreSQL: one array parameter, so the statement text is constant and stays prepared
            _BANDS.c.band == any_(bindparam("bands", type_=postgresql.ARRAY(BigInteger)))
            if postgres
            else _BANDS.c.band.in_(bindparam("bands", expanding=True)),
            _BANDS.c.seq != func.coalesce(own_seq, 0),
        )
        .group_by(_BANDS.c.seq)
        # ties go to the earlier indexed article; the band index alone decides, no signature is read
        .order_by(func.count().desc(), _BANDS.c.seq)
        .limit(bindparam("limit"))
        .subquery()
    )
    candidates = select(*_match_columns("band")).join_from(shared, _SIGNATURES, shared.c.seq == sig.seq)
    # the article of its own source whose lines it shares (see `ensure_verdict`), if any
    host = select(*_match_columns("host")).where(
        sig.article_id == bindparam("host_id"), sig.article_id != bindparam("article_id")
    )
    return union_all(own, owner("raw"), owner("text"), owner("url"), host, candidates)


_LOOKUP = {True: _lookup_statement(postgres=True), False: _lookup_statement(postgres=False)}
_CLUSTER = (
    select(_SIGNATURES.c.cluster_id, _CANONICAL.c.published_at, _CANONICAL.c.first_seen)
    .join_from(_SIGNATURES, _CANONICAL, _CANONICAL.c.article_id == _SIGNATURES.c.cluster_id, isouter=True)
    .where(_SIGNATURES.c.article_id == bindparam("article_id"))
)


@dataclass(frozen=True)
class _Found:
    """What the lookup returned."""

    stored: tuple[str, str, int] | None  # (verdict JSON, current cluster, seq) of the article itself
    owners: dict[str, Candidate]  # 'raw'/'text'/'url'/'host' -> the article owning that key
    clusters: dict[str, str]  # article id -> its cluster, for every article returned
    candidates: list[Candidate]


def _lookup(
    session: Session,
    lock_values: Sequence[str | int],
    fp: Fingerprint,
    article_id: str,
    limit: int,
    *,
    text_keyed: bool,
    raw: str | None,
    host: str | None,
) -> _Found:
    rows = _locked_rows(
        session,
        lock_values,
        _LOOKUP[session.get_bind().dialect.name == "postgresql"],
        {
            "article_id": article_id,
            "raw_key": raw or "",
            "text_key": fp.text_key if text_keyed else "",
            "url_key": fp.url_key or "",
            "host_id": host or "",
            "bands": list(fp.bands) or [0],
            "limit": limit if fp.bands else 0,
        },
    )
    stored = None
    owners: dict[str, Candidate] = {}
    clusters: dict[str, str] = {}
    candidates = []
    for row in rows:
        clusters[row.article_id] = row.cluster_id
        if row.what == "self":
            stored = (row.verdict, row.cluster_id, row.seq)
            continue
        candidate = Candidate(
            row.article_id,
            signature_from_bytes(row.signature),
            row.shingles,
            evidence_from_bytes(row.evidence),
        )
        if row.what == "band":
            candidates.append(candidate)
        else:
            owners[row.what] = candidate
    return _Found(stored, owners, clusters, candidates)


def _earlier(published_at: datetime | None, canonical_published: datetime | None) -> bool:
    """Whether a new article published at `published_at` precedes the cluster's canonical."""
    if published_at is None:
        return False  # ties and unknown dates fall back to first seen, where the indexed one wins
    return canonical_published is None or published_at < canonical_published


def _join_cluster(
    session: Session, target: str, cluster: str, article_id: str, published_at: datetime | None
) -> tuple[str, str | None]:
    """Lock the target's cluster and return (cluster id for the new article, former canonical it
    supersedes or None); re-points the cluster when the new article was published first."""
    row = None
    for _ in range(4):  # a concurrent decider may have re-pointed the cluster before we locked it
        rows = _locked_rows(session, [f"cluster:{cluster}"], _CLUSTER, {"article_id": target})
        row = rows[0] if rows else None
        if row is None or row.cluster_id == cluster:
            break
        cluster = row.cluster_id
    if row is None or not _earlier(published_at, _utc(row.published_at)):
        return cluster, None
    session.execute(
        update(_SIGNATURES).where(_SIGNATURES.c.cluster_id == cluster).values(cluster_id=article_id)
    )
    return article_id, cluster


def raw_key_of(payload: str | None) -> str | None:
    """The raw key (`workers.stages.dedup.raw_key`) of a stored raw article's JSON payload, or None
    when there is none or it holds no body. Pure."""
    if not payload:
        return None
    body = json.loads(payload).get("body")
    return raw_body_key(body) if isinstance(body, str) and body else None


def source_of(cleaned: CleanedArticle, source: str | None) -> str | None:
    """The source an article's chrome is learned under: the producer's `source`, else the host of its
    canonical URL, else its site name (lowercased), else None (nothing is learned nor applied)."""
    if source and source.strip():
        return source.strip().lower()[:200]
    canonical = canonical_url(cleaned.url)
    if canonical is not None:
        return canonical.split("/")[2]
    site = (cleaned.site_name or "").strip().lower()[:200]
    return site or None


@dataclass(frozen=True)
class _Holder:
    """An article of the index that recorded one of the line keys, with its current cluster."""

    key: int
    source: str
    article_id: str
    cluster_id: str


def _line_holders(session: Session, keys: Sequence[int], article_id: str) -> list[_Holder]:
    """The other indexed articles that recorded any of the line `keys` (at most `line_holders` per
    key and source, see `_record_lines`), with their current clusters; one query."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    rows = session.execute(
        select(_LINES.c.key, _LINES.c.source, _LINES.c.article_id, _SIGNATURES.c.cluster_id)
        .join_from(_LINES, _SIGNATURES, _SIGNATURES.c.article_id == _LINES.c.article_id)
        .where(_LINES.c.key.in_(wanted), _LINES.c.article_id != article_id)
    ).all()
    return [_Holder(row.key, row.source, row.article_id, row.cluster_id) for row in rows]


def learned_chrome(holders: Sequence[_Holder], source: str, *, besides: str | None = None) -> frozenset[int]:
    """The line keys that are chrome: recorded for another article of `source`, or for articles of
    two different stories (clusters) of any one other source (that source's chrome, copied along
    with a page). Counted by story, not by article: copies of one story (a page and its print
    version, a live blog and its revisions) are one story, and their lines are that story's. Articles
    of the cluster `besides` do not count: a line seen only in copies of one story is not chrome to
    another copy of it. Pure."""
    others: dict[tuple[int, str], set[str]] = {}
    chrome = set()
    for h in holders:
        if h.cluster_id == besides:
            continue
        if h.source == source:
            chrome.add(h.key)
        else:
            others.setdefault((h.key, h.source), set()).add(h.cluster_id)
    chrome.update(key for (key, _), ids in others.items() if len(ids) >= 2)
    return frozenset(chrome)


def common_lines(session: Session, lines: BodyLines, params: DedupParams) -> frozenset[int]:
    """The body lines that are boilerplate by document frequency: their paragraph key
    (`paragraph_keys`) is indexed for at least `common_clusters` distinct clusters. One query; on
    PostgreSQL it reads at most 8 x `common_clusters` index rows per key."""
    by_line = paragraph_keys(lines, params)
    wanted = sorted(set(by_line.values()))
    if not wanted:
        return frozenset()
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            text(
                """SELECT k.band FROM unnest(CAST(:keys AS bigint[])) AS k(band)
                   CROSS JOIN LATERAL (SELECT b.seq FROM dedup_bands AS b WHERE b.band = k.band LIMIT :cap) AS h
                   JOIN dedup_signatures AS s ON s.seq = h.seq
                   GROUP BY k.band HAVING count(DISTINCT s.cluster_id) >= :clusters"""
            ),
            {"keys": wanted, "cap": 8 * params.common_clusters, "clusters": params.common_clusters},
        ).all()
    else:
        rows = session.execute(
            select(_BANDS.c.band)
            .join_from(_BANDS, _SIGNATURES, _SIGNATURES.c.seq == _BANDS.c.seq)
            .where(_BANDS.c.band.in_(wanted))
            .group_by(_BANDS.c.band)
            .having(func.count(func.distinct(_SIGNATURES.c.cluster_id)) >= params.common_clusters)
        ).all()
    common = {row.band for row in rows}
    return frozenset(line for line, key in by_line.items() if key in common)


def _host(
    holders: Sequence[_Holder], source: str, lines: BodyLines, params: DedupParams
) -> tuple[str, str] | None:
    """(cluster, member article) of the one cluster of `source` that alone holds lines making up at
    least `same_source_share` of the body's prose words (its chrome left out), if any: the article may be a copy of that
    story on its own site, whose lines the index would otherwise take for the site's chrome. Lines
    held by two clusters of the source or more are its chrome, not evidence of a copy. Pure."""
    weight = {k: w.count(b" ") + 1 for w, k in zip(lines.words, lines.keys, strict=True)}
    clusters: dict[int, set[str]] = {}
    for h in holders:
        if h.source == source:
            clusters.setdefault(h.key, set()).add(h.cluster_id)
    # the share is of the body without the source's chrome (lines two of its stories share)
    total = sum(weight[k] for k in set(lines.keys) if len(clusters.get(k, ())) < 2)
    owned: dict[str, int] = {}
    for key, held_by in clusters.items():
        if len(held_by) == 1:
            (cluster,) = held_by
            owned[cluster] = owned.get(cluster, 0) + weight.get(key, 0)
    if not owned or not total:
        return None
    cluster = min(owned, key=lambda c: (-owned[c], c))
    if owned[cluster] < params.same_source_share * total:
        return None
    members: dict[str, int] = {}
    for h in holders:
        if h.source == source and h.cluster_id == cluster:
            members[h.article_id] = members.get(h.article_id, 0) + weight.get(h.key, 0)
    return cluster, min(members, key=lambda a: (-members[a], a))


def ensure_verdict(
    session: Session,
    cleaned: CleanedArticle,
    params: DedupParams,
    *,
    source: str | None = None,
    raw_key: str | None = None,
) -> DedupVerdict:
    """Return the dedup verdict of `cleaned`, indexing it in the caller's transaction; idempotent.

    Atomic across worker processes (see the module docstring). Calling it again for the same article
    with the same text and parameters returns the stored verdict (with the cluster's current
    canonical); an article is never matched to itself. `source` is the raw article's source (see
    `source_of` for the fallback); the prose lines at the ends of its body are recorded under it, and
    lines learned as chrome (`learned_chrome`) are left out of the body, except those it shares with
    the one story of its own source that holds most of its lines (`_host`): checked as a same-source
    copy of that story (`verify_same_source`). `raw_key` (`workers.stages.dedup.raw_key` of the raw
    body, before cleaning) makes a byte-identical page an exact duplicate whatever its cleaned text.
    Does not commit.
    """
    article_id = cleaned.article_id
    lines = body_lines(cleaned.text, params)
    home = source_of(cleaned, source)
    # Without a source, articles of unrelated outlets would count as one source's: learn nothing.
    holders = [] if home is None else _line_holders(session, lines.keys, article_id)
    boilerplate = common_lines(session, lines, params)
    chrome = learned_chrome(holders, home or "") | boilerplate
    fp = fingerprint(cleaned, params, chrome, lines)
    host = None if home is None else _host(holders, home, lines, params)
    # A copy from its own source: the lines it shares with that story are not chrome to it.
    own = None
    own_chrome: frozenset[int] = frozenset()
    if host is not None:
        own_chrome = learned_chrome(holders, home or "", besides=host[0]) | boilerplate
        own = fingerprint(cleaned, params, own_chrome, lines)
    if home is not None:
        _record_lines(
            session, home, article_id, lines.edge_keys(params.edge_lines), holders=holders, params=params
        )
    record = params.as_record()
    # Below the floor the text key is neither claimed nor looked up (a short text, or one that is
    # all chrome, is not evidence that two pages are one article) and there are no bands. The raw key
    # (a byte-identical page) needs no floor.
    text_keyed = fp.keyed or (own is not None and own.keyed)
    keys: list[str | int] = [
        f"article:{article_id}",
        *([f"raw:{raw_key}"] if raw_key else []),
        *([f"text:{fp.text_key}"] if text_keyed else []),
        *fp.bands,
    ]
    if fp.url_key is not None:
        keys.append(f"url:{fp.url_key}")
    found = _lookup(
        session,
        keys,
        fp,
        article_id,
        params.max_candidates,
        text_keyed=text_keyed,
        raw=raw_key,
        host=None if host is None else host[1],
    )

    if found.stored is not None:
        stored_json, cluster_id, seq = found.stored
        verdict = DedupVerdict.model_validate_json(stored_json)
        if verdict.version == VERSION and verdict.params == record and verdict.text_key == fp.text_key:
            return verdict.model_copy(update={"cluster_id": cluster_id, "supersedes": None})
        # Re-decided with new text or parameters: forget the old bands, keep the keys it owns.
        session.execute(delete(_BANDS).where(_BANDS.c.seq == seq))

    url_owner = found.owners.get("url")
    revised = None
    if url_owner is not None and home is not None:
        # a revision: the lines it shares with the earlier version are that story's, not chrome
        kept = learned_chrome(holders, home, besides=found.clusters[url_owner.article_id]) | boilerplate
        revised = fingerprint(cleaned, params, kept, lines)
    kind, duplicate_of, similarity, reason = _decide(
        found, fp, own, params, lines=lines, chrome=chrome, own_chrome=own_chrome, revised=revised
    )
    # A copy of its own source's story, or a revision, is indexed with its own body (the lines it
    # shares with that story), so that the next copy finds it; anything else with the source's
    # chrome left out.
    if own is not None and host is not None and duplicate_of is not None and own.keyed:
        fp = own if found.clusters.get(duplicate_of) == host[0] else fp
    if kind == "revision" and revised is not None and revised.keyed:
        fp = revised

    published_at = _utc(cleaned.published_at)
    supersedes = None
    cluster_id = article_id
    if duplicate_of is not None:
        cluster_id, supersedes = _join_cluster(
            session, duplicate_of, found.clusters[duplicate_of], article_id, published_at
        )

    verdict = DedupVerdict(
        article_id=article_id,
        version=VERSION,
        kind=kind,
        duplicate_of=duplicate_of,
        cluster_id=cluster_id,
        similarity=similarity,
        reason=reason,
        canonical_url=fp.canonical_url,
        text_key=fp.text_key,
        params=record,
        supersedes=supersedes,
    )
    _write(
        session, article_id, fp, verdict, published_at,
        exact=kind == "exact_duplicate", seq=found.stored[2] if found.stored is not None else None,
        raw=raw_key,
    )  # fmt: skip
    return verdict


def _decide(
    found: _Found,
    fp: Fingerprint,
    own: Fingerprint | None,
    params: DedupParams,
    *,
    lines: BodyLines,
    chrome: frozenset[int],
    own_chrome: frozenset[int],
    revised: Fingerprint | None,
) -> tuple[VerdictKind, str | None, float | None, str]:
    """(kind, duplicate of, similarity, reason) from what the lookup found: a byte-identical page, then
    the same normalised text, the same canonical URL (`revised`: the fingerprint with the earlier
    version's lines kept, for the measured similarity), a same-source copy (`own`: the fingerprint
    with its host story's lines kept, without `own_chrome`), then a verified near duplicate (`fp`: the
    body `lines` without `chrome`). Pure."""
    kind: VerdictKind = "unique"
    duplicate_of: str | None = None
    similarity: float | None = None
    reason = (
        "no_match"
        if fp.keyed
        else (
            f"below_floor body_words={fp.evidence.body_words} < {params.min_body_words}: not keyed for duplicates"
        )
    )
    raw_owner = found.owners.get("raw")
    text_owner, url_owner = found.owners.get("text"), found.owners.get("url")
    host_row = found.owners.get("host")
    same_source: Match | None = None
    if own is not None and host_row is not None and raw_owner is None and text_owner is None:
        same_source = verify_same_source(own, host_row, params, lines=lines, chrome=own_chrome)
    if raw_owner is not None:
        kind, duplicate_of, similarity, reason = "exact_duplicate", raw_owner.article_id, 1.0, "raw_key"
    elif text_owner is not None:
        kind, duplicate_of, similarity = "exact_duplicate", text_owner.article_id, 1.0
        same_url = url_owner is not None and url_owner.article_id == text_owner.article_id
        reason = "text_key+canonical_url" if same_url else "text_key"
    elif url_owner is not None:
        jaccard, containment = _revision_similarity(revised or fp, url_owner)
        kind, duplicate_of, similarity = "revision", url_owner.article_id, round(jaccard, 4)
        reason = f"canonical_url changed_text jaccard={jaccard:.3f} containment={containment:.3f}"
    elif same_source is not None:
        kind, duplicate_of, similarity = "near_duplicate", same_source.article_id, same_source.similarity
        reason = same_source.reason
    else:
        verified = [
            m
            for c in found.candidates
            if (m := verify(fp, c, params, lines=lines, chrome=chrome)) is not None
        ]
        if verified:
            best = min(verified, key=lambda m: (-m.containment, -m.jaccard, m.article_id))
            kind, duplicate_of, similarity = "near_duplicate", best.article_id, best.similarity
            reason = best.reason
    return kind, duplicate_of, similarity, reason


def _revision_similarity(fp: Fingerprint, earlier: Candidate) -> tuple[float, float]:
    """(Jaccard, containment of the smaller) of a revision and its earlier version: exact, from both
    bodies' evidence when both have one, else estimated from their signatures. Pure."""
    if fp.keyed and earlier.evidence is not None and earlier.evidence.body.size and fp.evidence.body.size:
        seen = overlap(fp.evidence, earlier.evidence)
        return seen.jaccard, seen.containment
    return compare(fp.signature, fp.shingles, earlier.signature, earlier.shingles)


def _record_lines(
    session: Session,
    source: str,
    article_id: str,
    keys: list[int],
    *,
    holders: Sequence[_Holder],
    params: DedupParams,
) -> None:
    """Record the article's edge lines under its source, but not a line the source already has
    `line_holders` articles for (chrome for good: more rows would tell nothing new, so a line's rows
    stay bounded); recording them twice changes nothing."""
    held: dict[int, int] = {}
    for h in holders:
        if h.source == source:
            held[h.key] = held.get(h.key, 0) + 1
    keys = [k for k in keys if held.get(k, 0) < params.line_holders]
    if not keys:
        return
    rows = [{"key": k, "source": source, "article_id": article_id} for k in keys]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(_LINES).on_conflict_do_nothing(), rows)


# PostgreSQL: every write of one decision in one statement (one round trip). The signature row is
# an upsert because a re-decision (new text or parameters) rewrites it.
_PG_WRITE = text(
    """
    WITH new_keys AS (
        INSERT INTO dedup_keys (kind, key, article_id)
        SELECT kind, key, :article_id FROM unnest(CAST(:kinds AS text[]), CAST(:keys AS text[])) AS k(kind, key)
        ON CONFLICT DO NOTHING
    ), row AS (
        INSERT INTO dedup_signatures (article_id, signature, shingles, published_at, cluster_id, verdict, evidence)
        VALUES (:article_id, :signature, :shingles, :published_at, :cluster_id, :verdict, :evidence)
        ON CONFLICT (article_id) DO UPDATE SET signature = excluded.signature, shingles = excluded.shingles,
            published_at = excluded.published_at, cluster_id = excluded.cluster_id, verdict = excluded.verdict,
            evidence = excluded.evidence
        RETURNING seq
    )
    INSERT INTO dedup_bands (band, seq)
    SELECT DISTINCT band, row.seq FROM row, unnest(CAST(:bands AS bigint[])) AS band
    ON CONFLICT DO NOTHING
    """
)


def _write(
    session: Session,
    article_id: str,
    fp: Fingerprint,
    verdict: DedupVerdict,
    published_at: datetime | None,
    *,
    exact: bool,
    seq: int | None,
    raw: str | None,
) -> None:
    """Index the decided article; `seq` is its existing row's, None for a new article."""
    keys = (
        ([("raw", raw)] if raw else [])
        + ([("text", fp.text_key)] if fp.keyed else [])
        + ([("url", fp.url_key)] if fp.url_key is not None else [])
    )
    # an exact duplicate's bands are its owner's: indexing them again would find nothing new
    bands = [] if exact else sorted(set(fp.bands))
    values = {
        "article_id": article_id,
        "signature": signature_to_bytes(fp.signature),
        "shingles": fp.shingles,
        "published_at": published_at,
        "cluster_id": verdict.cluster_id,
        "verdict": verdict.model_dump_json(exclude={"supersedes"}),
        "evidence": evidence_to_bytes(fp.evidence) if fp.keyed else None,
    }
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            _PG_WRITE, {**values, "kinds": [k for k, _ in keys], "keys": [v for _, v in keys], "bands": bands}
        )
        return
    _insert_ignore(session, _KEYS, [{"kind": k, "key": v, "article_id": article_id} for k, v in keys])
    if seq is not None:
        session.execute(update(_SIGNATURES).where(_SIGNATURES.c.seq == seq).values(**values))
    else:
        seq = session.execute(_SIGNATURES.insert().returning(_SIGNATURES.c.seq), values).scalar_one()
    if bands:
        session.execute(
            sqlite.insert(_BANDS).on_conflict_do_nothing(), [{"band": b, "seq": seq} for b in bands]
        )


def prune(
    session: Session, *, lines_before: datetime, bands_before: datetime | None = None
) -> dict[str, int]:
    """Forget what the index no longer needs; returns the rows deleted per table. Idempotent.

    * `dedup_lines`: rows of articles first seen before `lines_before` whose line no other article of
      the source holds (a line that has not recurred by then is nobody's chrome). Recurring lines keep
      their rows, bounded by `line_holders` per source.
    * `dedup_bands` (only with `bands_before`): the candidate keys of articles first seen before it, so
      an older story is no longer found as a near duplicate (its exact text, raw and URL keys, its
      signature and its cluster stay, and a re-decision re-indexes it).
    """
    other = _LINES.alias("other")
    old = select(_SIGNATURES.c.article_id).where(_SIGNATURES.c.first_seen < lines_before)
    recurring = (
        select(other.c.key)
        .where(
            other.c.key == _LINES.c.key,
            other.c.source == _LINES.c.source,
            other.c.article_id != _LINES.c.article_id,
        )
        .exists()
    )
    deleted = {"dedup_lines": 0, "dedup_bands": 0}
    result = session.execute(delete(_LINES).where(_LINES.c.article_id.in_(old), ~recurring))
    deleted["dedup_lines"] = int(getattr(result, "rowcount", 0) or 0)
    if bands_before is not None:
        stale = select(_SIGNATURES.c.seq).where(_SIGNATURES.c.first_seen < bands_before)
        result = session.execute(delete(_BANDS).where(_BANDS.c.seq.in_(stale)))
        deleted["dedup_bands"] = int(getattr(result, "rowcount", 0) or 0)
    return deleted
