"""Storing an article with a huge number of entities (issue 13): chunked writes stay under every
database's bind-parameter limit, on SQLite and PostgreSQL, and rewriting yields the same rows."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from schemas import Entity, Mention, RawArticle, StoredArticle, TaggedArticle
from workers.core.ids import article_id
from workers.db import repo
from workers.db.engine import transaction, upgrade

N_ENTITIES = 20_000


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database: a SQLite file or a fresh PostgreSQL database."""
    found = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(found)
    return found


def _huge() -> tuple[RawArticle, StoredArticle, TaggedArticle]:
    names = [f"Name{i:05d}" for i in range(N_ENTITIES)]
    text = " ".join(names)
    raw = RawArticle(source="huge.example", body=text, content_type="text/plain")
    aid = article_id(raw)
    entities = tuple(
        Entity(
            name=name,
            label="PERSON",
            count=1,
            first_position=i * 10,
            salience=1.0 / (i + 1),
            mentions=(Mention(start=i * 10, end=i * 10 + 9, text=name),),
        )
        for i, name in enumerate(names)
    )
    tagged = TaggedArticle(article_id=aid, version="t", model="m", model_version="1", entities=entities)
    article = StoredArticle(
        id=aid,
        url=None,
        source=raw.source,
        title=None,
        published_at=None,
        language="en",
        text=text,
        dateline=None,
        credits=(),
        authors=(),
        duplicate_of=None,
        dedup="unique",
        cluster_id=aid,
        entities=(),
        versions={"store": "t"},
    )
    return raw, article, tagged


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return found


def test_article_with_20000_entities_is_stored_whole_and_rewritten_identically(url: str) -> None:
    """20,000 entities and mentions (180,000 values, past PostgreSQL's 65,535 binds) are all written,
    and writing the article again leaves exactly the same entity and mention rows."""
    raw, article, tagged = _huge()
    with transaction(url) as session:
        repo.ensure_raw(session, article.id, raw, "t")
    for _ in range(2):
        with transaction(url) as session:
            repo.upsert_article(
                session, article, tagged, canonical_url=None, similarity=None, reason="no_match"
            )
        assert _count(url, "entities") == N_ENTITIES
        assert _count(url, "mentions") == N_ENTITIES
    with transaction(url) as session:
        stored = repo.fetch_article(session, article.id)
    assert stored is not None
    assert [e.name for e in stored.entities] == [e.name for e in tagged.entities]
    assert stored.entities[-1].mentions[0].start == (N_ENTITIES - 1) * 10
