"""Clusters as stored: every duplicate points at the cluster's canonical, the earliest published."""

from datetime import UTC, datetime

import pytest

from schemas import RawArticle
from tests.samples import EXAMPLES
from workers.core.ids import article_id
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction, upgrade
from workers.runtime import embedded
from workers.runtime.pipeline import Context

BODY = (EXAMPLES / "harbourtimes-wind-farm.txt").read_text()


def _raw(source: str, day: int, body: str = BODY) -> RawArticle:
    return RawArticle(
        source=source,
        body=body,
        content_type="text/plain",
        url=f"https://{source}/wind-farm",
        published_at=datetime(2026, 3, day, 9, tzinfo=UTC),
    )


@pytest.mark.parametrize("database", ["sqlite_url", "postgres_url"])
def test_an_earlier_published_copy_takes_over_the_cluster(database, request):
    """A copy published before the cluster's canonical becomes the canonical of every stored member."""
    url = request.getfixturevalue(database)
    upgrade(url)
    ctx = Context(Settings(database_url=url))
    later = _raw("first-seen.example", day=12)
    middle = _raw("second.example", day=11, body=BODY.replace("Tuesday", "Monday"))
    earliest = _raw("wire.example", day=10, body=BODY.replace("Tuesday", "Sunday"))
    report = embedded.run([later, middle, earliest], ctx)
    assert report.failures == []
    ids = [article_id(r) for r in (later, middle, earliest)]
    with transaction(url) as session:
        stored = [repo.fetch_article(session, i) for i in ids]
    assert all(a is not None for a in stored)
    assert [a.dedup for a in stored] == ["unique", "near_duplicate", "near_duplicate"]  # type: ignore[union-attr]
    assert {a.cluster_id for a in stored} == {ids[2]}  # type: ignore[union-attr]
    # Re-running the whole pipeline for every member changes nothing.
    embedded.run([later, middle, earliest], ctx)
    with transaction(url) as session:
        again = [repo.fetch_article(session, i) for i in ids]
    assert again == stored
