"""Batch steps (workers.runtime.pipeline.*_batch) on SQLite and PostgreSQL: one bad article fails alone, a batch
run twice changes no byte, and the single-article steps are the batch of one."""

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from schemas import CleanedArticle, RawArticle, StageMessage, TaggedArticle
from tests.samples import EXAMPLES
from workers.core.errors import MissingInput, PermanentError
from workers.core.ids import article_id
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction, upgrade
from workers.ingest.archives import read_path
from workers.runtime.pipeline import STAGES, Context, clean_batch, dedup_batch, store_batch, tag_batch

HISTORY_TABLES = {"alembic_version", "stage_journal"}
"""Tables that are history, not state: the stage journal gains a row per attempt, by design."""


def _articles() -> list[RawArticle]:
    """The examples: two HTML/text pages and the feed's articles (a syndicated copy among them)."""
    found = []
    for path in sorted(EXAMPLES.iterdir()):
        if path.suffix in (".html", ".txt", ".jsonl"):
            found += [r.article for r in read_path(path, source="examples") if r.article is not None]
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database: a SQLite file or a fresh PostgreSQL database."""
    found = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    upgrade(found)
    return found


def _persist(url: str, raws: list[RawArticle]) -> list[StageMessage]:
    msgs = [StageMessage(article_id=article_id(raw), trace_id="t") for raw in raws]
    with transaction(url) as session:
        for msg, raw in zip(msgs, raws, strict=True):
            repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
    return msgs


def _rows(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = [t for t in sa.inspect(conn).get_table_names() if t not in HISTORY_TABLES]
        rows = {t: sorted(map(repr, conn.execute(sa.text(f"SELECT * FROM {t}")))) for t in tables}
    engine.dispose()
    return rows


def _run_all(ctx: Context, msgs: list[StageMessage]) -> list[list[Any]]:
    return [stage.batch(ctx, msgs) for stage in STAGES]


def test_batch_run_twice_changes_no_byte(url: str) -> None:
    """Every stage over a batch, then again: the same outcomes, byte-identical rows in every table."""
    ctx = Context(Settings(database_url=url))
    msgs = _persist(url, _articles())
    assert len(msgs) >= 4
    first = _run_all(ctx, msgs)
    assert all(not isinstance(r, Exception) for results in first for r in results), first
    before = _rows(url)
    assert len(before["articles"]) == len({m.article_id for m in msgs})
    assert before["entities"]
    assert before["mentions"]
    assert before["source_lines"]
    second = _run_all(ctx, msgs)
    assert second == first
    assert _rows(url) == before


def test_batch_equals_articles_one_by_one(url: str, tmp_path: Any) -> None:
    """A batch stores what the single-article steps store (the steps are the batch of one)."""
    raws = _articles()
    ctx = Context(Settings(database_url=url))
    msgs = _persist(url, raws)
    _run_all(ctx, msgs)
    batched = repo_articles(url, msgs)
    other = f"sqlite:///{tmp_path / 'one.db'}"
    upgrade(other)
    one_ctx = Context(Settings(database_url=other))
    for msg in _persist(other, raws):
        for stage in STAGES:
            stage.step(one_ctx, msg)
    assert repo_articles(other, msgs) == batched


def repo_articles(url: str, msgs: list[StageMessage]) -> list[str]:
    """The stored articles as `show --json` prints them, in message order."""
    with transaction(url) as session:
        found = [repo.fetch_article(session, m.article_id) for m in msgs]
    return [a.model_dump_json() if a is not None else "missing" for a in found]


def test_one_bad_article_fails_alone_in_every_stage(url: str) -> None:
    """A missing raw article and a page that is not HTML fail with their own errors; the batch's other
    articles go through every stage and are stored."""
    ctx = Context(Settings(database_url=url))
    good = _persist(url, _articles()[:3])
    not_html = _persist(url, [RawArticle(source="x", body="\x00\x01\x02" * 50, content_type="text/html")])[0]
    missing = StageMessage(article_id="0" * 32, trace_id="t")
    batch = [good[0], not_html, good[1], missing, good[2]]

    cleaned = clean_batch(ctx, batch)
    assert isinstance(cleaned[1], PermanentError)
    assert isinstance(cleaned[3], MissingInput)
    assert [isinstance(cleaned[i], Exception) for i in (0, 2, 4)] == [False] * 3
    for stage_batch in (dedup_batch, tag_batch, store_batch):
        results = stage_batch(ctx, batch)
        assert isinstance(results[1], MissingInput), results
        assert isinstance(results[3], MissingInput), results
        assert [isinstance(results[i], Exception) for i in (0, 2, 4)] == [False] * 3, results
    with transaction(url) as session:
        assert all(repo.fetch_article(session, m.article_id) is not None for m in good)
        assert repo.fetch_article(session, not_html.article_id) is None


def test_a_stage_error_in_one_article_leaves_the_others(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception from the stage function for one article is returned for it alone; the
    batch's other results are recorded, and the tag batch falls back to one article at a time."""
    from workers.stages import clean as clean_stage
    from workers.stages import tag as tag_stage

    ctx = Context(Settings(database_url=url))
    msgs = _persist(url, _articles()[:3])
    victim = msgs[1].article_id
    real_clean = clean_stage.clean

    def flaky_clean(raw: RawArticle, aid: str, **kw: Any) -> CleanedArticle:
        if aid == victim:
            raise ValueError("boom")
        return real_clean(raw, aid, **kw)

    monkeypatch.setattr(clean_stage, "clean", flaky_clean)
    results = clean_batch(ctx, msgs)
    assert isinstance(results[1], ValueError)
    assert not isinstance(results[0], Exception)
    monkeypatch.setattr(clean_stage, "clean", real_clean)
    assert not any(isinstance(r, Exception) for r in clean_batch(ctx, msgs))
    assert not any(isinstance(r, Exception) for r in dedup_batch(ctx, msgs))

    real_routed = tag_stage.tag_routed

    def flaky_routed(cleaned: Any, taggers: Any, *args: Any, **kw: Any) -> Any:
        # The batch call fails as a whole; then each article is tagged alone, and only the victim fails.
        if len(cleaned) > 1:
            raise RuntimeError("batch model call failed")
        if cleaned[0].article_id == victim:
            raise ValueError("bad article")
        return real_routed(cleaned, taggers, *args, **kw)

    monkeypatch.setattr(tag_stage, "tag_routed", flaky_routed)
    results = tag_batch(ctx, msgs)
    assert isinstance(results[1], ValueError)
    assert [isinstance(results[i], Exception) for i in (0, 2)] == [False, False]
    with transaction(url) as session:
        assert repo.load_result(session, msgs[0].article_id, "tag", TaggedArticle) is not None
        assert repo.load_result(session, victim, "tag", TaggedArticle) is None


def test_run_batch_turns_a_database_outage_into_one_transient_error(tmp_path: Any) -> None:
    """A batch whose database cannot be opened fails as a whole with TransientError (retried), not per article."""
    from workers.core.errors import TransientError
    from workers.runtime.pipeline import run_batch

    ctx = Context(Settings(database_url=f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}"))
    msgs = [StageMessage(article_id=f"{i:032x}", trace_id="t") for i in range(3)]
    with pytest.raises(TransientError):
        run_batch("clean", ctx, msgs)
