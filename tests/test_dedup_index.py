"""The shared dedup index against real PostgreSQL and SQLite, including a race between real processes.

Run as a script (``python tests/test_dedup_index.py URL BARRIER_DIR N HOLD ARTICLE_JSON``) it is the
racing worker: it connects, writes BARRIER_DIR/ready-N, waits for BARRIER_DIR/go, decides one article
inside a transaction that it keeps open HOLD seconds longer, commits, and prints the verdict as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from schemas.cleaned import CleanedArticle
from schemas.dedup import DedupVerdict
from workers.db.dedup_index import ensure_verdict, prune
from workers.db.engine import dispose_all, get_engine, transaction, upgrade
from workers.db.models import DedupBandRow, DedupKeyRow, DedupSignatureRow
from workers.stages.dedup import DedupParams

ROOT = Path(__file__).resolve().parents[1]
PARAMS = DedupParams()
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
BODY = (
    "The central bank kept its benchmark interest rate unchanged on Thursday, saying inflation was "
    "easing faster than expected but that the labour market remained tight.\n\n"
    "Governor Maria Lindqvist told reporters the board had discussed a cut but judged it premature, "
    "and that further decisions would depend on wage data due next month.\n\n"
    "Markets had priced in a small chance of a reduction. The currency rose half a percent against the "
    "dollar after the announcement, while government bond yields edged higher across the curve.\n\n"
    "Economists said the statement leaned slightly more hawkish than in March, pointing to the removal "
    "of a sentence about downside risks to growth from weaker exports and housing construction.\n\n"
    "The next rate decision is scheduled for June, when the bank will also publish new forecasts for "
    "growth, unemployment and consumer prices through the end of next year."
)
OTHER = (
    "A storm brought heavy snow to the northern mountains overnight, closing two passes and stranding "
    "hundreds of drivers who had ignored warnings to stay off the roads until the ploughs had passed.\n\n"
    "Rescue teams reached most of the vehicles by morning. Officials said nobody had been seriously hurt "
    "but urged residents to avoid travel for another day while crews cleared drifts and fallen trees."
)


def article(
    article_id: str, body: str = BODY, *, url: str | None = None, hours: float = 0.0
) -> CleanedArticle:
    """A cleaned article for these tests."""
    return CleanedArticle(
        article_id=article_id, version="test", text=body, url=url, published_at=T0 + timedelta(hours=hours)
    )


def edited(body: str, every: int) -> str:
    """`body` with every `every`-th word replaced: a syndicated copy with small edits."""
    words = body.split(" ")
    return " ".join("changed" if i % every == 3 else w for i, w in enumerate(words))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: SQLite file or a fresh PostgreSQL database."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    upgrade(url)
    return url


def decide(url: str, cleaned: CleanedArticle, params: DedupParams = PARAMS) -> DedupVerdict:
    """ensure_verdict in its own committed transaction."""
    with transaction(url) as session:
        return ensure_verdict(session, cleaned, params)


def test_unique_exact_near_and_revision(db_url: str) -> None:
    """The four verdict kinds, each linked to the first article's cluster with its reason."""
    first = decide(db_url, article("a" * 32, url="https://www.example.com/news/rates?utm_source=x"))
    assert (first.kind, first.cluster_id, first.duplicate_of) == ("unique", "a" * 32, None)
    exact = decide(
        db_url, article("b" * 32, BODY.upper().replace(".", " ."), url="https://mirror.example/r", hours=1)
    )
    assert (exact.kind, exact.duplicate_of, exact.cluster_id, exact.reason) == (
        "exact_duplicate",
        "a" * 32,
        "a" * 32,
        "text_key",
    )
    near = decide(
        db_url,
        article("c" * 32, edited(BODY, 25) + "\n\nAdvertisement", url="https://other.example/x", hours=2),
    )
    assert (near.kind, near.duplicate_of, near.cluster_id) == ("near_duplicate", "a" * 32, "a" * 32)
    assert near.similarity is not None
    assert near.similarity >= PARAMS.containment_threshold
    assert near.reason.startswith("body_")
    revision = decide(
        db_url,
        article(
            "d" * 32,
            BODY + "\n\nUpdate: the bank later corrected a figure.",
            url="http://example.com/news/rates/#top",
            hours=3,
        ),
    )
    assert (revision.kind, revision.duplicate_of, revision.cluster_id) == ("revision", "a" * 32, "a" * 32)
    assert revision.reason.startswith("canonical_url")
    other = decide(db_url, article("e" * 32, OTHER, url="https://example.com/news/storm", hours=4))
    assert (other.kind, other.cluster_id) == ("unique", "e" * 32)
    for verdict in (first, exact, near, revision, other):
        assert verdict.version.startswith("dedup-")
        assert verdict.params == PARAMS.as_record()


def test_rerun_returns_same_verdict_and_never_matches_itself(db_url: str) -> None:
    """Deciding an article again returns the stored verdict; a lone article stays unique."""
    first = decide(db_url, article("a" * 32, url="https://example.com/a"))
    again = decide(db_url, article("a" * 32, url="https://example.com/a"))
    assert first == again
    assert again.kind == "unique"
    assert again.duplicate_of is None
    copy = decide(db_url, article("b" * 32, edited(BODY, 30), url="https://example.org/b", hours=1))
    assert decide(db_url, article("b" * 32, edited(BODY, 30), url="https://example.org/b", hours=1)) == copy
    with get_engine(db_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(DedupSignatureRow)).scalar_one() == 2
        assert (
            conn.execute(
                select(func.count()).select_from(DedupKeyRow).where(DedupKeyRow.article_id == "a" * 32)
            ).scalar_one()
            == 2
        )


def test_rerun_with_new_params_redecides_without_self_match(db_url: str) -> None:
    """New parameters re-decide the article against the others, never against its own entries."""
    decide(db_url, article("a" * 32))
    params = DedupParams(threshold=0.6)
    again = decide(db_url, article("a" * 32), params)
    assert (again.kind, again.duplicate_of, again.params["threshold"]) == ("unique", None, 0.6)
    with get_engine(db_url).connect() as conn:
        bands = conn.execute(
            select(func.count())
            .select_from(DedupBandRow)
            .join(DedupSignatureRow, DedupSignatureRow.seq == DedupBandRow.seq)
            .where(DedupSignatureRow.article_id == "a" * 32)
        ).scalar_one()
        orphans = conn.execute(
            select(func.count())
            .select_from(DedupBandRow)
            .where(~DedupBandRow.seq.in_(select(DedupSignatureRow.seq)))
        ).scalar_one()
    assert 0 < bands <= params.bands + params.text_bands + params.paragraph_keys
    assert orphans == 0


def test_earlier_published_copy_becomes_canonical(db_url: str) -> None:
    """A copy published before the cluster's canonical takes the cluster over and says whose."""
    decide(db_url, article("a" * 32, url="https://a.example/1", hours=5))
    decide(db_url, article("b" * 32, edited(BODY, 40), url="https://b.example/1", hours=6))
    early = decide(db_url, article("c" * 32, edited(BODY, 35), url="https://c.example/1", hours=1))
    assert (early.kind, early.cluster_id, early.supersedes) == ("near_duplicate", "c" * 32, "a" * 32)
    late = decide(db_url, article("d" * 32, edited(BODY, 45), url="https://d.example/1", hours=9))
    assert late.cluster_id == "c" * 32
    assert late.supersedes is None
    # re-running an old member reports the cluster's current canonical
    assert (
        decide(db_url, article("b" * 32, edited(BODY, 40), url="https://b.example/1", hours=6)).cluster_id
        == "c" * 32
    )
    with get_engine(db_url).connect() as conn:
        assert set(conn.execute(select(DedupSignatureRow.cluster_id)).scalars()) == {"c" * 32}


def test_index_survives_a_new_engine(db_url: str) -> None:
    """The index is durable: after every pooled connection is dropped, a new process view still matches."""
    decide(db_url, article("a" * 32))
    dispose_all()
    assert decide(db_url, article("b" * 32, edited(BODY, 30), hours=1)).duplicate_of == "a" * 32


def _race(url: str, articles: list[CleanedArticle], hold: float, tmp_path: Path) -> list[DedupVerdict]:
    """Start one process per article, release them together once all are ready, return the verdicts."""
    tmp_path.mkdir(parents=True)
    children = [
        subprocess.Popen(
            [sys.executable, __file__, url, str(tmp_path), str(n), str(hold), a.model_dump_json()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n, a in enumerate(articles)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(children) and time.monotonic() < deadline:
        assert all(c.poll() is None for c in children), "a racing process died before the start"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    verdicts = []
    entered, committed = [], []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err[-2000:]
        report = json.loads(out.strip().splitlines()[-1])
        verdicts.append(DedupVerdict.model_validate_json(report["verdict"]))
        entered.append(report["entered"])
        committed.append(report["committed"])
    # a real race: every process had called ensure_verdict before the first one committed
    assert max(entered) < min(committed), (entered, committed)
    return verdicts


def test_concurrent_near_duplicates_in_real_processes_yield_one_canonical(
    db_url: str, tmp_path: Path
) -> None:
    """Four processes decide four copies of one story at the same instant, each holding its
    transaction open for a while: exactly one is unique and all share its cluster."""
    copies = [
        article(f"{i}" * 32, edited(BODY, 20 + 5 * i), url=f"https://site{i}.example/story", hours=1)
        for i in range(4)
    ]
    verdicts = _race(db_url, copies, hold=0.5, tmp_path=tmp_path / "race")
    kinds = sorted(v.kind for v in verdicts)
    assert kinds == ["near_duplicate"] * 3 + ["unique"], [v.reason for v in verdicts]
    canonical = next(v.article_id for v in verdicts if v.kind == "unique")
    assert {v.cluster_id for v in verdicts} == {canonical}
    with get_engine(db_url).connect() as conn:
        assert set(conn.execute(select(DedupSignatureRow.cluster_id)).scalars()) == {canonical}
        # the key table has one owner per key: the losing processes did not overwrite it
        owners = conn.execute(text("SELECT count(*) FROM dedup_keys WHERE kind = 'text'")).scalar_one()
        assert owners == 4


def test_concurrent_same_article_is_decided_once(db_url: str, tmp_path: Path) -> None:
    """The same article redelivered to two processes at once gets one verdict, not a self-match."""
    verdicts = _race(db_url, [article("a" * 32), article("a" * 32)], hold=0.3, tmp_path=tmp_path / "race")
    assert verdicts[0] == verdicts[1]
    assert verdicts[0].kind == "unique"


def _child(url: str, barrier: Path, n: int, hold: float, payload: str) -> None:
    cleaned = CleanedArticle.model_validate_json(payload)
    with transaction(url) as session:  # connect and warm up before the start signal
        session.execute(text("SELECT 1"))
    (barrier / f"ready-{n}").touch()
    while not (barrier / "go").exists():
        time.sleep(0.002)
    entered = time.time()
    with transaction(url) as session:
        verdict = ensure_verdict(session, cleaned, PARAMS)
        time.sleep(hold)  # keep the transaction open: without the locks every copy would be unique
    committed = time.time()
    print(json.dumps({"entered": entered, "committed": committed, "verdict": verdict.model_dump_json()}))


if __name__ == "__main__":
    _child(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])


def _story(n: int) -> str:
    """A distinct story per `n` (its own words), several paragraphs of prose."""
    words = [f"w{n}x{i}" for i in range(400)]
    paragraphs = [" ".join(words[i : i + 50]) + "." for i in range(0, 400, 50)]
    return "\n\n".join(paragraphs)


DISCLAIMER = (
    "This article is provided for general information only and does not constitute legal, financial or "
    "medical advice; readers should consult a qualified professional about their own circumstances "
    "before acting on anything they have read here, and the publisher accepts no liability whatsoever."
)


def test_a_paragraph_in_many_clusters_is_no_evidence_and_stops_growing(db_url: str) -> None:
    """Boilerplate by document frequency: once a paragraph's key is held by `common_clusters` distinct
    clusters it is left out of later bodies (no evidence, no new rows), while short stories that share it
    stay apart however many."""
    params = DedupParams(common_clusters=3)
    # each story is just long enough on its own; the disclaimer would otherwise be a third of it
    stories = [f"{_story(n)[:700]}\n\n{DISCLAIMER}" for n in range(8)]
    verdicts = [
        decide(db_url, article(f"{n:032x}", body, url=f"https://s{n}.example/a"), params)
        for n, body in enumerate(stories)
    ]
    assert [v.kind for v in verdicts] == ["unique"] * 8
    engine = get_engine(db_url)
    from workers.stages.dedup import body_lines, paragraph_keys

    key = paragraph_keys(body_lines(DISCLAIMER, params), params)
    (disclaimer_key,) = key.values()
    with engine.connect() as conn:
        holders = conn.execute(
            select(func.count()).select_from(DedupBandRow).where(DedupBandRow.band == disclaimer_key)
        ).scalar_one()
    assert holders == 3  # indexed until it was common, then left out


def test_a_copy_of_a_story_with_the_common_paragraph_is_still_found(db_url: str) -> None:
    """Leaving a common paragraph out keeps the article's own evidence: a copy still matches."""
    params = DedupParams(common_clusters=3)
    for n in range(4):
        decide(
            db_url,
            article(f"{n:032x}", f"{_story(n)}\n\n{DISCLAIMER}", url=f"https://s{n}.example/a"),
            params,
        )
    copy = decide(
        db_url,
        article("f" * 32, f"{edited(_story(2), 17)}\n\n{DISCLAIMER}", url="https://x.example/b"),
        params,
    )
    assert (copy.kind, copy.duplicate_of) == ("near_duplicate", f"{2:032x}")


def test_prune_forgets_lines_that_never_recurred_and_old_bands(db_url: str) -> None:
    """Lines of old articles seen nowhere else go; a line two articles share stays; bands only on request."""
    shared = (
        "Subscribe to the morning briefing for the stories that matter most to the harbour district today."
    )
    for n in range(2):
        with transaction(db_url) as session:
            ensure_verdict(
                session,
                article(f"{n:032x}", f"{_story(n)}\n\n{shared}", url=f"https://s.example/{n}"),
                PARAMS,
            )
    engine = get_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE dedup_signatures SET first_seen = :t"), {"t": T0})
        lines_before = conn.execute(text("SELECT count(*) FROM dedup_lines")).scalar_one()
    with transaction(db_url) as session:
        deleted = prune(session, lines_before=T0 + timedelta(days=1))
    assert deleted["dedup_lines"] == lines_before - 2
    assert deleted["dedup_bands"] == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT article_id) FROM dedup_lines")).scalar_one() == 2
    with transaction(db_url) as session:
        again = prune(session, lines_before=T0 + timedelta(days=1), bands_before=T0 + timedelta(days=1))
    assert again["dedup_lines"] == 0
    assert again["dedup_bands"] > 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dedup_bands")).scalar_one() == 0


def test_prune_command_dry_run_then_prunes(sqlite_url: str) -> None:
    """`newsflow dedup prune --dry-run` counts what would go and deletes nothing; without it the rows go;
    a bad age is one line and exit 2."""
    from typer.testing import CliRunner

    from workers.cli import app

    upgrade(sqlite_url)
    with transaction(sqlite_url) as session:
        ensure_verdict(session, article("a" * 32, _story(1), url="https://s.example/1"), PARAMS)
    engine = get_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE dedup_signatures SET first_seen = :t"), {"t": T0})
        rows = conn.execute(text("SELECT count(*) FROM dedup_lines")).scalar_one()
    runner = CliRunner()
    args = ["dedup", "prune", "--db", sqlite_url, "--lines-older-than", "1", "--json"]
    dry = runner.invoke(app, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) == {"dry_run": True, "deleted": {"dedup_lines": rows, "dedup_bands": 0}}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dedup_lines")).scalar_one() == rows > 0
    done = runner.invoke(app, args)
    assert json.loads(done.stdout)["deleted"]["dedup_lines"] == rows
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dedup_lines")).scalar_one() == 0
    bad = runner.invoke(app, ["dedup", "prune", "--db", sqlite_url, "--lines-older-than", "-3"])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == "--lines-older-than must be a positive number of days, got -3"
