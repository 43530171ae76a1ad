"""Producers' readers: every supported format, with problems reported by file and line."""

import gzip
import io
import json

from workers.readers import read_inputs, read_jsonl, read_path


def test_reads_text_html_jsonl_gzip_and_directories(tmp_path):
    """A directory is read recursively in sorted order; .txt/.html/.jsonl/.gz each become raw articles."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("A text dump")
    (tmp_path / "sub" / "b.html").write_text("<p>html</p>")
    (tmp_path / "c.jsonl").write_text(json.dumps({"source": "x.example", "body": "json"}) + "\n\n")
    with gzip.open(tmp_path / "d.html.gz", "wt") as handle:
        handle.write("<p>gz</p>")
    (tmp_path / "notes.md").write_text("ignored")
    records = list(read_path(tmp_path, source="local"))
    assert [(r.origin.split("/")[-1], r.article.content_type if r.article else None) for r in records] == [
        ("a.txt:1", "text/plain"),
        ("c.jsonl:1", None),
        ("d.html.gz:1", "text/html"),
        ("b.html:1", "text/html"),
    ]
    assert records[1].article is not None
    assert records[1].article.source == "x.example"


def test_jsonl_problems_name_line_field_and_reason():
    """Bad JSON lines are reported as name:line with each failing field."""
    data = b'{"source": "s", "body": "ok"}\n{"source": "", "body": "x"}\nnot json\n'
    records = list(read_jsonl(io.BytesIO(data), name="feed"))
    assert [r.origin for r in records] == ["feed:1", "feed:2", "feed:3"]
    assert records[0].article is not None
    assert records[1].problems[0].field == "source"
    assert "at least 1 character" in records[1].problems[0].reason
    assert records[2].problems[0].field == "(record)"


def test_invalid_utf8_is_replaced_not_fatal(tmp_path):
    """A text dump with invalid UTF-8 bytes is still read, the bad bytes replaced."""
    path = tmp_path / "bad.txt"
    path.write_bytes(b"Caf\xe9 news\xff")
    [record] = read_path(path, source="s")
    assert record.article is not None
    assert "\ufffd" in record.article.body


def test_missing_and_unsupported_files_are_problems(tmp_path):
    """A missing path and an unknown extension are reported, not raised."""
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    missing, unsupported = read_inputs([str(tmp_path / "nope.txt"), str(tmp_path / "x.pdf")], source="s")
    assert missing.problems[0].reason == "no such file or directory"
    assert "unsupported file type" in unsupported.problems[0].reason


def test_empty_text_file_is_rejected_with_reason(tmp_path):
    """An empty page is rejected at the producer with the body field named."""
    path = tmp_path / "empty.txt"
    path.write_text("   ")
    [record] = read_path(path, source="s")
    assert record.article is None
    assert record.problems[0].field == "body"
