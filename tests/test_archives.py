"""Positioned reading for resumable backfills: offsets continue exactly after the last item."""

import gzip
import json

from workers.ingest import archives


def test_jsonl_gz_offsets_resume_after_the_last_item(tmp_path):
    """Reading a .jsonl.gz from an item's next_offset yields exactly the items after it."""
    lines = [json.dumps({"source": "a.example", "body": f"Article number {n}. " * 20}) for n in range(5)]
    dump = tmp_path / "dump.jsonl.gz"
    with gzip.open(dump, "wt") as handle:
        handle.write("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")
    items = list(archives.items(dump, source="x"))
    assert [i.article.body.split(".")[0] for i in items] == [f"Article number {n}" for n in range(5)]
    assert [i.origin for i in items] == [f"{dump}:{n}" for n in (1, 2, 4, 5, 6)]
    rest = list(archives.items(dump, source="x", start=items[1].next_offset))
    assert [i.article.body for i in rest] == [i.article.body for i in items[2:]]
    assert rest[0].origin.startswith(f"{dump}@")


def test_directories_include_warc_files_and_leave_out_unreadable_ones(tmp_path):
    """A directory walk yields WARC and JSON lines files (sorted) and not files of unknown types."""
    for name in ("b.warc.gz", "a.jsonl", "notes.md", "c.html"):
        (tmp_path / name).write_text("x")
    assert [p.name for p in archives.files([str(tmp_path)])] == ["a.jsonl", "b.warc.gz", "c.html"]
    assert archives.source_of("https://WWW.Example.com:8080/x") == "example.com"


# --- truncated archives (issue 19.6) ----------------------------------------------------------------------

import io  # noqa: E402 -- the section's own imports
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

PAGES = 6


def _warc(path: Path, *, gz: bool = True, pages: int = PAGES) -> list[int]:
    """A real multi-record WARC (warcio) of `pages` HTML responses; returns each record's end offset."""
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    ends = []
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=gz)
        for n in range(pages):
            body = (
                f"<html><head><title>Story {n}</title></head><body><article>"
                + "".join(
                    f"<p>Paragraph {k} of story {n} has words enough to count as prose.</p>"
                    for k in range(40)
                )
                + "</article></body></html>"
            ).encode()
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            record = writer.create_warc_record(
                f"https://news.example/{n}",
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=http,
            )
            writer.write_record(record)
            ends.append(handle.tell())
    return ends


@pytest.mark.parametrize("gz", [True, False], ids=["warc.gz", "warc"])
@pytest.mark.parametrize("percent", [10, 50, 60, 75, 80, 90, 97, 99.9])
def test_a_cut_warc_rejects_the_cut_record_and_keeps_the_whole_ones(tmp_path, percent, gz):
    """A WARC cut at any point: each whole record before the cut is an article with its full body; the cut
    record is one rejection naming file, offset and reason (never stored truncated, never silent); no raise."""
    full = tmp_path / ("full.warc.gz" if gz else "full.warc")
    ends = _warc(full, gz=gz)
    data = full.read_bytes()
    cut_at = int(len(data) * percent / 100)
    cut = tmp_path / ("cut.warc.gz" if gz else "cut.warc")
    cut.write_bytes(data[:cut_at])
    whole = [e for e in ends if e <= cut_at]
    found = list(archives.items(cut, source="x"))
    articles = [i for i in found if i.article is not None]
    assert len(articles) == len(whole)
    assert all(i.article.body.endswith("</html>") for i in articles)
    rejected = [i for i in found if i.problems]
    if cut_at in ends:  # a cut between two records loses nothing
        assert rejected == []
        return
    [bad] = rejected
    start = whole[-1] if whole else 0
    assert bad.origin == f"{cut}@{start}"
    assert bad.problems[0].field == "(archive)"
    assert "truncated" in bad.problems[0].reason or "not a complete record" in bad.problems[0].reason
    assert bad.next_offset == cut_at  # resuming from it reads nothing more
    assert list(archives.items(cut, source="x", start=bad.next_offset)) == []


def test_the_files_after_a_cut_warc_are_read(tmp_path):
    """A cut archive does not stop the next file: both are read in order, the cut record rejected."""
    full = tmp_path / "a.warc.gz"
    _warc(full)
    (tmp_path / "a.warc.gz").write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.75)])
    (tmp_path / "b.jsonl").write_text(json.dumps({"source": "b.example", "body": "after the cut"}) + "\n")
    from workers.ingest.archives import read_inputs

    records = list(read_inputs([str(tmp_path)], source="x"))
    assert [r.article.body for r in records if r.article is not None][-1] == "after the cut"
    assert sum(1 for r in records if r.problems) == 1


def test_a_resumed_backfill_moves_past_a_cut_record(tmp_path, redis_url, postgres_url):
    """A backfill over a cut WARC and a healthy file persists the whole records and the next file, rejects the
    cut record once; its checkpoint is past the cut, so a resumed run (checkpoint before the cut, as after a
    crash) moves past it and a second run says the file is already done."""
    from sqlalchemy import update

    from workers.core.settings import Settings
    from workers.db.engine import transaction, upgrade
    from workers.db.models import BackfillCheckpointRow
    from workers.ingest import backfill
    from workers.runtime.celery_app import create_app

    upgrade(postgres_url)
    settings = Settings(broker_url=redis_url, database_url=postgres_url)
    app = create_app()
    app.conf.broker_url = redis_url
    full = tmp_path / "full.warc.gz"
    ends = _warc(full)
    cut = tmp_path / "in" / "a.warc.gz"
    cut.parent.mkdir()
    cut.write_bytes(full.read_bytes()[: (ends[3] + ends[4]) // 2])  # cut in the middle of record 5
    (tmp_path / "in" / "b.jsonl").write_text(json.dumps({"source": "b.example", "body": "next file"}) + "\n")
    rejected: list[str] = []

    def run() -> backfill.FeedReport:
        feeder = backfill.Feeder(settings, app)
        return backfill.backfill(
            [str(cut.parent)],
            feeder,
            source="x",
            checkpoint_every=1,
            on_rejected=lambda i: rejected.append(i.origin),
        )

    first = run()
    assert (first.new, first.rejected, first.files) == (5, 1, 2)
    assert rejected == [f"{cut}@{ends[3]}"]
    with transaction(postgres_url) as session:  # as if it had crashed just before the cut record
        session.execute(
            update(BackfillCheckpointRow)
            .where(BackfillCheckpointRow.path == str(cut.resolve()))
            .values(offset=ends[3], done=False)
        )
    second = run()
    assert (second.resumed, second.new, second.rejected, second.files_already_done) == (1, 0, 1, 1)
    assert second.earlier_read >= 4
    third = run()
    assert (third.files_already_done, third.read, third.new) == (2, 0, 0)


def test_run_reads_warc_archives_like_backfill(tmp_path, sqlite_url):
    """`newsflow run FILE.warc.gz` stores the archive's pages (it said "unsupported file type"), and the
    cut record of a truncated one is one rejected line, with exit code 1 and no traceback."""
    from typer.testing import CliRunner

    from workers.cli import app
    from workers.core.settings import get_settings

    full = tmp_path / "crawl.warc.gz"
    ends = _warc(full, pages=3)
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(full.read_bytes()[: (ends[0] + ends[1]) // 2])
    get_settings.cache_clear()
    whole = CliRunner().invoke(app, ["run", str(full), "--db", sqlite_url, "--json"])
    cut_run = CliRunner().invoke(app, ["run", str(cut), "--db", sqlite_url, "--json"])
    get_settings.cache_clear()
    assert whole.exit_code == 0, whole.stderr
    assert len([line for line in whole.stdout.splitlines() if line.startswith("{")]) == 3
    assert cut_run.exit_code == 1
    assert f"rejected {cut}@{ends[0]}: (archive): record truncated" in cut_run.stderr.replace("\n", "")
    assert "Traceback" not in cut_run.stderr
