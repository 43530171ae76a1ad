"""Source-adaptive boilerplate learned through the database that all workers share (real PostgreSQL)."""

import sqlalchemy as sa

from schemas import CleanedArticle, RawArticle, StageMessage
from tests.stages.test_clean import _CHROME_LINES, _COMMON_SENTENCE, _SYNDICATED, _synthetic_article
from workers.core.ids import article_id
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction, upgrade
from workers.runtime.pipeline import Context, clean_step

SOURCE = "bayside.example"


def _cleaned(url: str, msg: StageMessage) -> CleanedArticle:
    with transaction(url) as session:
        return repo.require_result(session, msg.article_id, "clean", CleanedArticle)


def test_chrome_is_learned_across_articles_counted_once_and_prose_kept(postgres_url):
    """Lines shared by ≥ N distinct articles of a source are removed once learned; re-counting adds nothing."""
    upgrade(postgres_url)
    ctx = Context(Settings(database_url=postgres_url, chrome_min_articles=5))
    messages = []
    for i in range(20):
        raw = RawArticle(source=SOURCE, body=_synthetic_article(i))
        msg = StageMessage(article_id=article_id(raw), trace_id="t")
        with transaction(postgres_url) as session:
            repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
        messages.append(msg)

    for i, msg in enumerate(messages):
        clean_step(ctx, msg)
        text = _cleaned(postgres_url, msg).text
        learned = i + 1 >= 5  # this article is the fifth to carry the lines
        for line in _CHROME_LINES:
            assert (line in text) is not learned, (i, line)
        assert _SYNDICATED in text
        assert text.count(_COMMON_SENTENCE) == 2

    engine = sa.create_engine(postgres_url)
    count_lines = sa.text("SELECT count(*) FROM source_lines")
    with engine.connect() as conn:
        rows_before = conn.execute(count_lines).scalar_one()
    # The first article, cleaned again: now its chrome is known; counting it again adds no row.
    clean_step(ctx, messages[0])
    clean_step(ctx, messages[0])
    with engine.connect() as conn:
        assert conn.execute(count_lines).scalar_one() == rows_before
    engine.dispose()
    again = _cleaned(postgres_url, messages[0])
    for line in _CHROME_LINES:
        assert line not in again.text
    assert {r.text for r in again.removed if r.reason == "source_boilerplate"} >= set(_CHROME_LINES)


def test_chrome_of_one_source_is_not_learned_for_another(postgres_url):
    """Counts are per source: another outlet's identical lines are not removed on the first one's evidence."""
    upgrade(postgres_url)
    ctx = Context(Settings(database_url=postgres_url, chrome_min_articles=5))
    for i in range(6):
        raw = RawArticle(source=SOURCE, body=_synthetic_article(i))
        msg = StageMessage(article_id=article_id(raw), trace_id="t")
        with transaction(postgres_url) as session:
            repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
        clean_step(ctx, msg)
    other = RawArticle(source="elsewhere.example", body=_synthetic_article(19))
    msg = StageMessage(article_id=article_id(other), trace_id="t")
    with transaction(postgres_url) as session:
        repo.ensure_raw(session, msg.article_id, other, msg.trace_id)
    clean_step(ctx, msg)
    assert _CHROME_LINES[0] in _cleaned(postgres_url, msg).text


def test_copies_of_one_page_are_one_article_for_chrome_learning(postgres_url):
    """A page sent six times under six URLs of its source (section paths, print) counts once: its lines
    never reach the `chrome_min_articles` bar, so the last copy keeps them; six different pages do."""
    upgrade(postgres_url)
    ctx = Context(Settings(database_url=postgres_url, chrome_min_articles=5))
    page = _synthetic_article(3)
    copies = [
        RawArticle(source=SOURCE, body=page, url=f"https://{SOURCE}/section-{n}/story") for n in range(6)
    ]
    for raw in copies:
        msg = StageMessage(article_id=article_id(raw), trace_id="t")
        with transaction(postgres_url) as session:
            repo.ensure_raw(session, msg.article_id, raw, msg.trace_id)
        clean_step(ctx, msg)
    last = _cleaned(postgres_url, StageMessage(article_id=article_id(copies[-1]), trace_id="t"))
    for line in _CHROME_LINES:
        assert line in last.text
    assert not [r for r in last.removed if r.reason == "source_boilerplate"]
