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
    """A UTF-8 text dump with one invalid byte is still read, the bad byte replaced, the rest kept."""
    path = tmp_path / "bad.txt"
    path.write_bytes("Café news, naïve ".encode() + b"\xff")
    [record] = read_path(path, source="s")
    assert record.article is not None
    assert record.article.body == "Café news, naïve \ufffd"


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


def _gzip_bomb(path, prefix: bytes, megabytes: int, suffix: bytes) -> None:
    """A gzip file decompressing to prefix + megabytes MB of 'A' + suffix (members joined)."""
    member = gzip.compress(b"A" * 1024 * 1024)
    with path.open("wb") as handle:
        handle.write(gzip.compress(prefix))
        handle.write(member * megabytes)
        handle.write(gzip.compress(suffix))


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_gzip_bomb_in_jsonl_is_streamed_with_a_cap(tmp_path):
    """A 300 MiB line inside a .jsonl.gz is one rejected record with its size, skipped to its newline in
    bounded memory (6.2 GB before), and the record after it is read."""
    import pathlib

    path = tmp_path / "bomb.jsonl.gz"
    good = json.dumps({"source": "s", "body": "before"}).encode()
    after = json.dumps({"source": "s", "body": "after"}).encode()
    _gzip_bomb(path, good + b'\n{"source": "s", "body": "', 300, b'"}\n' + after + b"\n")
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    base = _peak_rss_mb()
    first, second, third = read_path(path, source="s")
    assert _peak_rss_mb() - base < 200
    assert first.article is not None
    assert first.article.body == "before"
    assert second.article is None
    assert second.origin.endswith("bomb.jsonl.gz:2")
    size = len(b'{"source": "s", "body": "') + 300 * 1024 * 1024 + len(b'"}\n')
    assert f"record is {size} bytes" in second.problems[0].reason
    assert third.origin.endswith("bomb.jsonl.gz:3")
    assert third.article is not None
    assert third.article.body == "after"


def test_over_long_jsonl_line_is_rejected_and_the_next_record_read(tmp_path):
    """A line past MAX_RECORD_BYTES is rejected with its line number; the records after it still come."""
    from workers.readers import MAX_RECORD_BYTES

    path = tmp_path / "big.jsonl.gz"
    _gzip_bomb(path, b'{"source": "s", "body": "', MAX_RECORD_BYTES // (1024 * 1024) + 2, b'"}\n')
    with gzip.open(path, "ab") as handle:
        handle.write(json.dumps({"source": "s", "body": "after"}).encode() + b"\n")
    big, after = read_path(path, source="s")
    assert big.origin.endswith(":1")
    assert "longer than the limit" in big.problems[0].reason
    assert after.origin.endswith(":2")
    assert after.article is not None
    assert after.article.body == "after"


def test_nul_in_url_or_source_rejects_one_record_not_the_batch():
    """A NUL in a JSON url or source is FILE:LINE: FIELD: REASON; the records after it still go through."""
    data = "\n".join(
        [
            json.dumps({"source": "s", "body": "x", "url": "https://a.example/\u0000"}),
            json.dumps({"source": "s\u0000", "body": "x"}),
            json.dumps({"source": "s", "body": "x", "title": "t\u0000"}),
            json.dumps({"source": "s", "body": "fine"}),
        ]
    ).encode()
    records = list(read_jsonl(io.BytesIO(data), name="feed"))
    assert [(r.origin, r.problems[0].field if r.problems else None) for r in records] == [
        ("feed:1", "url"),
        ("feed:2", "source"),
        ("feed:3", "title"),
        ("feed:4", None),
    ]
    assert "control characters (U+0000)" in records[0].problems[0].reason


def test_latin1_page_declared_utf8_keeps_its_accents(tmp_path):
    """A Latin-1 page whose meta says UTF-8 is decoded as Latin-1/cp1252, not to replacement characters."""
    path = tmp_path / "latin1.html"
    path.write_bytes('<meta charset="utf-8"><p>Le café de Zürich, señora.</p>'.encode("latin-1"))
    [record] = read_path(path, source="s")
    assert record.article is not None
    assert "café de Zürich, señora" in record.article.body


def test_declared_legacy_charset_is_used_when_bytes_are_not_utf8(tmp_path):
    """Bytes that are not UTF-8 are decoded with the charset the page declares (here windows-1251)."""
    path = tmp_path / "ru.html"
    path.write_bytes('<meta charset="windows-1251"><p>Привет, мир</p>'.encode("cp1251"))
    [record] = read_path(path, source="s")
    assert record.article is not None
    assert "Привет, мир" in record.article.body


def test_corrupt_gzip_is_a_problem_not_a_traceback(tmp_path):
    """A truncated .html.gz and a .jsonl.gz that is not gzip are reported as problems."""
    html = tmp_path / "cut.html.gz"
    html.write_bytes(gzip.compress(b"<p>hello</p>" * 1000)[:50])
    jsonl = tmp_path / "bad.jsonl.gz"
    jsonl.write_bytes(b"not gzip at all")
    cut, bad = read_inputs([str(html), str(jsonl)], source="s")
    assert cut.article is None
    assert cut.problems[0].field == "(file)"
    assert bad.article is None
    assert "cannot be read" in bad.problems[0].reason


def test_over_long_json_file_is_rejected(tmp_path, monkeypatch):
    """A .json file past MAX_RECORD_BYTES is rejected without being read whole."""
    import workers.readers as readers

    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 100)
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"source": "s", "body": "x" * 200}))
    [record] = read_path(path, source="s")
    assert record.article is None
    assert "longer than the limit of 100 bytes" in record.problems[0].reason
