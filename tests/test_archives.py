"""Positioned reading for resumable backfills: offsets continue exactly after the last item."""

import gzip
import json

from workers import archives


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
