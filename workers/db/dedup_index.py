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
    Candidate,
    DedupParams,
    Fingerprint,
    body_lines,
    canonical_url,
    compare,
    evidence_from_bytes,
    evidence_to_bytes,
    fingerprint,
    signature_from_bytes,
    signature_to_bytes,
    verify,
)

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
    return union_all(own, owner("text"), owner("url"), candidates)


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
    owners: dict[str, Candidate]  # 'text'/'url' -> the article owning that key
    clusters: dict[str, str]  # article id -> its cluster, for every article returned
    candidates: list[Candidate]


def _lookup(
    session: Session, lock_values: Sequence[str | int], fp: Fingerprint, article_id: str, limit: int
) -> _Found:
    rows = _locked_rows(
        session,
        lock_values,
        _LOOKUP[session.get_bind().dialect.name == "postgresql"],
        {
            "article_id": article_id,
            "text_key": fp.text_key if fp.keyed else "",
            "url_key": fp.url_key or "",
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


def learned_chrome(session: Session, source: str, keys: Sequence[int], article_id: str) -> frozenset[int]:
    """Those of the line `keys` that are chrome: recorded for another article of `source`, or for
    two articles of any one other source (that source's chrome, copied along with a page)."""
    wanted = sorted(set(keys))
    if not wanted:
        return frozenset()
    rows = session.execute(
        select(_LINES.c.key, _LINES.c.source, func.count().label("articles"))
        .where(_LINES.c.key.in_(wanted), _LINES.c.article_id != article_id)
        .group_by(_LINES.c.key, _LINES.c.source)
    ).all()
    return frozenset(row.key for row in rows if row.source == source or row.articles >= 2)


def ensure_verdict(
    session: Session, cleaned: CleanedArticle, params: DedupParams, *, source: str | None = None
) -> DedupVerdict:
    """Return the dedup verdict of `cleaned`, indexing it in the caller's transaction; idempotent.

    Atomic across worker processes (see the module docstring). Calling it again for the same article
    with the same text and parameters returns the stored verdict (with the cluster's current
    canonical); an article is never matched to itself. `source` is the raw article's source (see
    `source_of` for the fallback); the prose lines at the ends of its body are recorded under it, and
    lines learned as chrome (`learned_chrome`) are left out of the body. Does not commit.
    """
    article_id = cleaned.article_id
    lines = body_lines(cleaned.text, params)
    home = source_of(cleaned, source)
    # Without a source, articles of unrelated outlets would count as one source's: learn nothing.
    chrome = frozenset() if home is None else learned_chrome(session, home, lines.keys, article_id)
    fp = fingerprint(cleaned, params, chrome, lines)
    if home is not None:
        _record_lines(session, home, article_id, lines.edge_keys(params.edge_lines))
    record = params.as_record()
    # Below the floor the text key is neither claimed nor looked up (a short text, or one that is
    # all chrome, is not evidence that two pages are one article) and there are no bands.
    keys: list[str | int] = [
        f"article:{article_id}",
        *([f"text:{fp.text_key}"] if fp.keyed else []),
        *fp.bands,
    ]
    if fp.url_key is not None:
        keys.append(f"url:{fp.url_key}")
    found = _lookup(session, keys, fp, article_id, params.max_candidates)

    if found.stored is not None:
        stored_json, cluster_id, seq = found.stored
        verdict = DedupVerdict.model_validate_json(stored_json)
        if verdict.version == VERSION and verdict.params == record and verdict.text_key == fp.text_key:
            return verdict.model_copy(update={"cluster_id": cluster_id, "supersedes": None})
        # Re-decided with new text or parameters: forget the old bands, keep the keys it owns.
        session.execute(delete(_BANDS).where(_BANDS.c.seq == seq))

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
    text_owner, url_owner = found.owners.get("text"), found.owners.get("url")
    if text_owner is not None:
        kind, duplicate_of, similarity = "exact_duplicate", text_owner.article_id, 1.0
        same_url = url_owner is not None and url_owner.article_id == text_owner.article_id
        reason = "text_key+canonical_url" if same_url else "text_key"
    elif url_owner is not None:
        jaccard, containment = compare(fp.signature, fp.shingles, url_owner.signature, url_owner.shingles)
        kind, duplicate_of, similarity = "revision", url_owner.article_id, round(jaccard, 4)
        reason = f"canonical_url changed_text jaccard={jaccard:.3f} containment={containment:.3f}"
    else:
        verified = [m for c in found.candidates if (m := verify(fp, c, params)) is not None]
        if verified:
            best = min(verified, key=lambda m: (-m.containment, -m.jaccard, m.article_id))
            kind, duplicate_of, similarity = "near_duplicate", best.article_id, best.similarity
            reason = best.reason

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
    )  # fmt: skip
    return verdict


def _record_lines(session: Session, source: str, article_id: str, keys: list[int]) -> None:
    """Record the article's edge lines under its source; recording them twice changes nothing."""
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
) -> None:
    """Index the decided article; `seq` is its existing row's, None for a new article."""
    keys = ([("text", fp.text_key)] if fp.keyed else []) + (
        [("url", fp.url_key)] if fp.url_key is not None else []
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
