"""`newsflow report` flags a source whose output changes from one day to the next (real SQLite tables)."""

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from workers.cli import app
from workers.db.engine import transaction, upgrade
from workers.db.models import ArticleRow, RawArticleRow

runner = CliRunner()


def _article(session, n: int, source: str, day: datetime, *, title: str | None, words: int) -> None:
    article_id = f"{n:032x}"
    session.add(
        RawArticleRow(
            id=article_id, source=source, url=None, content_type="text/html", payload="{}", trace_id="t",
            received_at=day,
        )
    )  # fmt: skip
    session.flush()  # the raw article first: articles reference it
    session.add(
        ArticleRow(
            id=article_id, source=source, url=None, canonical_url=None, title=title, text="word " * words,
            word_count=words, published_at=day, language="en", dateline=None, credits=[], authors=[],
            status="unique", duplicate_of=None, cluster_id=article_id, versions={}, stored_at=day,
        )
    )  # fmt: skip


def test_a_layout_change_at_one_site_is_flagged_the_day_it_happens(sqlite_url, tmp_path):
    """Titles vanish and bodies shrink at one site on day two: that site's day two is flagged for
    missing titles, short bodies and median words; the steady site is not flagged; HTML has a chart."""
    upgrade(sqlite_url)
    day1 = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=1)
    day2 = day1 + timedelta(days=1) - timedelta(hours=1)
    with transaction(sqlite_url) as session:
        n = 0
        for day in (day1, day2):
            for _ in range(8):
                n += 1
                _article(session, n, "steady.example", day, title="A title", words=400)
        for _ in range(8):
            n += 1
            _article(session, n, "changed.example", day1, title="A title", words=400)
        for _ in range(8):
            n += 1
            _article(session, n, "changed.example", day2, title=None, words=30)
    page = tmp_path / "report.html"
    window = ["--since", day1.date().isoformat(), "--until", (day2 + timedelta(days=1)).date().isoformat()]
    result = runner.invoke(app, ["report", "--db", sqlite_url, *window, "--json", "--html", str(page)])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    flagged = {(f["source"], f["metric"]) for f in data["flagged"]}
    assert flagged == {
        ("changed.example", "missing_title_rate"),
        ("changed.example", "short_rate"),
        ("changed.example", "median_words"),
    }
    latest = data["sources"]["changed.example"][-1]
    assert latest["missing_title_rate"] == 1.0
    assert latest["change"]["missing_title_rate"] == 1.0
    assert latest["median_words"] == 30
    text = page.read_text()
    assert text.count("<svg") == 3
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
