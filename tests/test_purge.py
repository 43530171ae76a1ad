"""`newsflow purge`: old articles go with every row that belongs to them, in resumable chunks."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from tests.samples import EXAMPLES
from workers.core.settings import Settings
from workers.db import purge as purging
from workers.db.engine import transaction, upgrade
from workers.db.models import DeadLetterNoteRow, DeadLetterRow, RawArticleRow
from workers.ingest.archives import read_inputs
from workers.runtime import embedded
from workers.runtime.pipeline import Context

OLD = datetime(2020, 1, 1, tzinfo=UTC)


def _rows_of(url: str, ids: set[str]) -> dict[str, int]:
    """Rows per purge table that still name one of `ids` (dedup bands through their signature)."""
    found = {}
    with transaction(url) as session:
        for table in purging.TABLES:
            if table == "dead_letter_notes":
                query = "SELECT count(*) FROM dead_letter_notes n JOIN dead_letters d ON d.id = n.dead_letter_id WHERE d.article_id IN :ids"
            elif table == "dedup_bands":
                query = "SELECT count(*) FROM dedup_bands b JOIN dedup_signatures s ON s.seq = b.seq WHERE s.article_id IN :ids"
            else:
                column = "id" if table in {"articles", "raw_articles"} else "article_id"
                query = f"SELECT count(*) FROM {table} WHERE {column} IN :ids"
            stmt = text(query).bindparams(__import__("sqlalchemy").bindparam("ids", expanding=True))
            found[table] = session.execute(stmt, {"ids": sorted(ids)}).scalar_one()
    return found


def test_purge_deletes_old_articles_everywhere_in_resumable_chunks(postgres_url):
    """Articles received before the date lose every row (dedup index included) across chunks, an interrupted
    purge continues when run again, an open dead letter keeps its article, and a dry run deletes nothing."""
    url = postgres_url
    upgrade(url)
    records = [r.article for r in read_inputs([str(EXAMPLES)], source="local") if r.article is not None]
    report = embedded.run(records, Context(Settings(database_url=url)))
    assert report.failures == []
    with transaction(url) as session:
        ids = sorted(session.scalars(select(RawArticleRow.id)))
        assert len(ids) == 4
        kept_open, closed, recent = ids[0], ids[1], ids[3]
        session.execute(update(RawArticleRow).where(RawArticleRow.id != recent).values(received_at=OLD))
        for article, retried in ((kept_open, None), (closed, datetime.now(UTC))):
            letter = DeadLetterRow(
                article_id=article, stage="tag", error_class="X", reason="unexpected", message="m",
                attempts=1, payload="{}", retried_at=retried,
            )  # fmt: skip
            session.add(letter)
            session.flush()
            session.add(DeadLetterNoteRow(dead_letter_id=letter.id, action="retried", note="n"))
    purged = set(ids) - {kept_open, recent}
    before = _rows_of(url, purged)
    assert before["raw_articles"] == 2
    assert before["dedup_signatures"] == 2
    assert before["dedup_bands"] > 0
    assert before["dead_letters"] == 1

    dry = purging.purge(lambda: transaction(url), before=OLD + timedelta(days=1), chunk=1, dry_run=True)
    assert (dry.articles, dry.kept_open_dead_letter) == (2, 1)
    assert dry.rows == before
    assert _rows_of(url, purged) == before

    def interrupt(_report: purging.PurgeReport) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        purging.purge(lambda: transaction(url), before=OLD + timedelta(days=1), chunk=1, on_chunk=interrupt)
    assert _rows_of(url, purged)["raw_articles"] == 1  # the first chunk is committed
    resumed = purging.purge(lambda: transaction(url), before=OLD + timedelta(days=1), chunk=1)
    assert resumed.articles == 1
    assert set(_rows_of(url, purged).values()) == {0}
    with transaction(url) as session:
        left = set(session.scalars(select(RawArticleRow.id)))
        open_letters = session.scalars(select(DeadLetterRow.article_id)).all()
    assert left == {kept_open, recent}
    assert open_letters == [kept_open]
    assert _rows_of(url, {kept_open})["dedup_signatures"] == 1
    again = purging.purge(lambda: transaction(url), before=OLD + timedelta(days=1))
    assert again.articles == 0


def test_purge_command_dry_run_and_source_filter(sqlite_url):
    """The command counts with --dry-run, purges one --source only, and refuses a date it cannot read."""
    import json

    from typer.testing import CliRunner

    from workers.cli import app

    upgrade(sqlite_url)
    sources = {f"{n:032x}": ("a.example" if n % 2 else "b.example") for n in range(1, 6)}
    with transaction(sqlite_url) as session:
        for article_id, source in sources.items():
            session.add(
                RawArticleRow(id=article_id, source=source, payload="{}", trace_id="t", received_at=OLD)
            )
    runner = CliRunner()
    args = ["purge", "--before", "2021-01-01", "--source", "a.example", "--db", sqlite_url]
    dry = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    summary = json.loads(dry.stdout.splitlines()[0])
    assert (summary["articles"], summary["rows"]["raw_articles"]) == (3, 3)
    assert runner.invoke(app, [*args, "--before", "2019-12-31"]).exit_code == 0  # older than any: nothing
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "purged 3 article(s)" in done.stderr
    with transaction(sqlite_url) as session:
        left = set(session.scalars(select(RawArticleRow.source)))
    assert left == {"b.example"}
    bad = runner.invoke(app, ["purge", "--before", "someday", "--db", sqlite_url])
    assert bad.exit_code == 2
