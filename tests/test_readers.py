"""Producers' readers: every supported format, with problems reported by file and line."""

import gzip
import io
import json

from workers.ingest.archives import read_inputs, read_path
from workers.ingest.readers import read_jsonl


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
    from workers.ingest.readers import MAX_RECORD_BYTES

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
    import workers.ingest.readers as readers

    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 100)
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"source": "s", "body": "x" * 200}))
    [record] = read_path(path, source="s")
    assert record.article is None
    assert "longer than the limit of 100 bytes" in record.problems[0].reason


# --- issue 19/20: non-files, UTF-16, one HTML limit, unknown fields, stable messages --------------------


def test_fifo_and_symlink_loop_are_refused_with_one_line_each(tmp_path):
    """A FIFO and a symlink loop, named on the command line or inside a directory, are one rejected line each
    (never opened: a FIFO would block), and the healthy file beside them is read."""
    import os

    from workers.ingest.archives import read_inputs

    folder = tmp_path / "in"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jsonl")
    (folder / "loop.html").symlink_to(folder / "loop.html")
    (folder / "good.jsonl").write_text(json.dumps({"source": "s", "body": "fine"}) + "\n")
    fifo = tmp_path / "named.jsonl"
    os.mkfifo(fifo)
    loop = tmp_path / "self.txt"
    loop.symlink_to(loop)
    records = list(read_inputs([str(fifo), str(loop), str(folder)], source="s"))
    reasons = {r.origin.rsplit("/", 1)[-1]: r.problems[0].reason for r in records if r.article is None}
    assert reasons == {
        "named.jsonl": "not a regular file (a FIFO (named pipe)); skipped",
        "self.txt": "symlink loop (too many levels of symbolic links); skipped",
        "loop.html": "symlink loop (too many levels of symbolic links); skipped",
        "pipe.jsonl": "not a regular file (a FIFO (named pipe)); skipped",
    }
    assert [r.article.body for r in records if r.article is not None] == ["fine"]


def test_unknown_files_in_a_directory_are_counted_as_skipped(tmp_path):
    """A file of an unknown type inside a directory is not read and is counted as skipped, not lost silently."""
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / "a.ndjson").write_text(json.dumps({"source": "s", "body": "nd"}) + "\n")
    skipped: dict[str, int] = {}
    records = list(read_inputs([str(tmp_path)], source="s", skipped=skipped))
    assert [r.article.body for r in records if r.article] == ["nd"]
    assert skipped == {"unsupported_file": 1}


def test_unsupported_type_message_lists_extensions_in_a_stable_order(tmp_path):
    """The unsupported-type message is the same on every run (it was built from a set)."""
    import subprocess
    import sys

    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    code = (
        "from workers.ingest.archives import read_inputs; import sys; "
        f"print(next(iter(read_inputs([{str(tmp_path / 'x.pdf')!r}], source='s'))).problems[0].reason)"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3)
    }
    assert len(seen) == 1, seen
    assert (
        ".txt[.gz], .html[.gz], .htm[.gz], .json[.gz], .jsonl[.gz], .ndjson[.gz], .arc[.gz], .warc[.gz]"
        in seen.pop()
    )


PAGE = (
    '<html><head><meta charset="{charset}"><title>Café in Zürich</title></head><body><article>'
    "<p>The café in Zürich reopened on Tuesday for the señora's party after a long winter.</p>"
    "</article></body></html>"
)


def test_utf16_pages_decode_by_bom_and_by_declaration(tmp_path):
    """UTF-16 with a BOM (LE and BE) and UTF-16LE declared without a BOM decode to the page's text."""
    import codecs

    cases = {
        "bom-le.html": codecs.BOM_UTF16_LE + PAGE.format(charset="utf-16").encode("utf-16-le"),
        "bom-be.html": codecs.BOM_UTF16_BE + PAGE.format(charset="utf-16").encode("utf-16-be"),
        "declared-le.html": PAGE.format(charset="utf-16le").encode("utf-16-le"),
        "bom-utf8.html": codecs.BOM_UTF8 + PAGE.format(charset="utf-8").encode(),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        [record] = read_path(tmp_path / name, source="s")
        assert record.article is not None, name
        assert "The café in Zürich reopened" in record.article.body, name
        assert "\x00" not in record.article.body, name


def test_utf16_page_passes_the_clean_stage_binary_sniff(tmp_path):
    """A UTF-16 page read by the producer is cleaned as HTML, not refused as binary data."""
    from workers.core.ids import article_id
    from workers.stages import clean as clean_stage

    path = tmp_path / "declared.html"
    body = PAGE.replace("<p>", "<p>" + "The harbour council met again on Tuesday evening. " * 3)
    path.write_bytes(body.format(charset="utf-16le").encode("utf-16-le"))
    [record] = read_path(path, source="s")
    assert record.article is not None
    cleaned = clean_stage.clean(record.article, article_id(record.article))
    assert "café in Zürich reopened" in cleaned.text


def test_one_html_size_limit_enforced_at_the_producer(tmp_path):
    """HTML past MAX_HTML_BYTES without scripts and styles is refused at the producer with its measured size;
    the same bulk inside a script is accepted (the clean stage strips it); a text dump of that size is accepted."""
    from schemas.limits import MAX_HTML_BYTES

    prose = "<p>" + "word " * (MAX_HTML_BYTES // 5 + 10) + "</p>"
    (tmp_path / "big.html").write_text(f"<html><body>{prose}</body></html>")
    (tmp_path / "script.html").write_text(
        f"<html><body><script>{prose}</script><p>short text</p></body></html>"
    )
    (tmp_path / "big.txt").write_text("word " * (MAX_HTML_BYTES // 5 + 10))
    big, script, text = (
        next(iter(read_path(tmp_path / n, source="s"))) for n in ("big.html", "script.html", "big.txt")
    )
    assert big.article is None
    assert big.problems[0].field == "body"
    assert f"the limit is {MAX_HTML_BYTES} bytes (2 MiB)" in big.problems[0].reason
    assert "HTML is " in big.problems[0].reason
    assert script.article is not None
    assert text.article is not None


def test_over_size_page_states_its_size_not_the_cap_plus_one(tmp_path):
    """A 17 MiB page is rejected with its own size (not 16777217); a gzipped one with "more than 16 MiB"."""
    size = 17 * 1024 * 1024
    (tmp_path / "huge.html").write_bytes(b"<p>" + b"x" * (size - 3))
    with gzip.open(tmp_path / "huge.html.gz", "wb") as handle:
        handle.write(b"<p>" + b"x" * (size - 3))
    plain, gz = read_inputs([str(tmp_path / "huge.html"), str(tmp_path / "huge.html.gz")], source="s")
    assert plain.problems[0].reason == f"is {size} bytes, the limit is 16777216 bytes (16 MiB)"
    assert "16777217" not in gz.problems[0].reason
    assert gz.problems[0].reason.startswith("is more than 16 MiB (decompressed)")


def test_unknown_fields_are_refused_or_ignored_under_the_flag():
    """A dump's page_id is an extra field (rejected) unless ignore_unknown drops it."""
    data = json.dumps({"source": "s", "body": "text", "page_id": "p1"}).encode() + b"\n"
    [strict] = read_jsonl(io.BytesIO(data), name="dump")
    [lenient] = read_jsonl(io.BytesIO(data), name="dump", ignore_unknown=True)
    assert strict.problems[0].field == "page_id"
    assert lenient.article is not None
    assert lenient.article.body == "text"


def test_the_producer_and_the_clean_stage_share_one_html_limit():
    """The clean stage's too_large guard and the producer's HTML limit are the same number (one contract)."""
    from schemas import limits
    from workers.stages.cleaning import guards

    assert guards.MAX_HTML_BYTES == limits.MAX_HTML_BYTES
