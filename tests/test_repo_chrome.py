"""Learned chrome stays bounded (source_lines), on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from schemas import RawArticle
from workers.db import repo
from workers.db.engine import transaction, upgrade

SOURCE = "bounded.example"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A migrated database: a SQLite file or a fresh PostgreSQL database."""
    found: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(found)
    return found


def _raws(url: str, n: int) -> list[str]:
    ids = [f"{i:032x}" for i in range(n)]
    with transaction(url) as session:
        for aid in ids:
            repo.ensure_raw(session, aid, RawArticle(source=SOURCE, body=f"body {aid}"), "t")
    return ids


def _lines(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT line_key, article_id FROM source_lines ORDER BY 1, 2")).all()
    engine.dispose()
    return [(k, a) for k, a in rows]


def test_a_learned_key_stops_being_counted(url: str) -> None:
    """After `min_articles` sightings a key is chrome for every later article, and no more rows are kept
    for it; articles before that do not see it as chrome; re-counting an article adds nothing."""
    ids = _raws(url, 12)
    learned = []
    for aid in ids:
        with transaction(url) as session:
            learned.append(repo.learn_chrome(session, [(SOURCE, aid, frozenset({"nav", aid[-8:]}))], 5))
    assert [("nav" in c[0]) for c in learned] == [False] * 4 + [True] * 8
    assert sum(1 for k, _ in _lines(url) if k == "nav") == 5
    before = _lines(url)
    with transaction(url) as session:
        again = repo.learn_chrome(session, [(SOURCE, ids[0], frozenset({"nav", ids[0][-8:]}))], 5)
    assert again == [frozenset({"nav"})]
    assert _lines(url) == before


def test_a_batch_counts_like_articles_one_after_another(url: str) -> None:
    """Within one batch, each article sees the sightings of the batch's earlier articles."""
    ids = _raws(url, 4)
    with transaction(url) as session:
        learned = repo.learn_chrome(session, [(SOURCE, aid, frozenset({"menu"})) for aid in ids], 3)
    assert learned == [frozenset(), frozenset(), frozenset({"menu"}), frozenset({"menu"})]


def test_prune_forgets_old_single_sightings_only(url: str) -> None:
    """Lines seen once before the cutoff are deleted; recurring lines and recent sightings are kept."""
    ids = _raws(url, 3)
    with transaction(url) as session:
        repo.learn_chrome(session, [(SOURCE, ids[0], frozenset({"once-old", "twice"}))], 5)
        repo.learn_chrome(session, [(SOURCE, ids[1], frozenset({"twice"}))], 5)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE source_lines SET seen_at = :t"), {"t": datetime.now(UTC) - timedelta(days=30)}
        )
    engine.dispose()
    with transaction(url) as session:
        repo.learn_chrome(session, [(SOURCE, ids[2], frozenset({"once-new"}))], 5)
    with transaction(url) as session:
        deleted = repo.prune_source_lines(session, [SOURCE], datetime.now(UTC) - timedelta(days=7))
    assert deleted == 1
    assert _lines(url) == [("once-new", ids[2]), ("twice", ids[0]), ("twice", ids[1])]
