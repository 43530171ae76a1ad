"""The bad-input corpus: each case writes its input files and states the outcome it must have.

A case is run by `test_embedded.py` (readers + `workers.runtime.embedded.run`, as `newsflow run` does) and,
when `distributed` is set, by `test_distributed.py` (`newsflow enqueue` + real workers). Either way
it is run alone and next to a healthy article, and its `check` sees a `Result`: the producer's
rejections (`FILE:LINE: FIELD: REASON`), the case's stored articles and dead letters, and every
text the run wrote (database dump, logs, output) for the cases that must leak nothing.

Outcomes are one of: rejected at the producer (with the field and reason), dead-lettered (stage
and reason), stored (with a stated property). `seconds` and `memory_mb` bound the whole run of the
case (peak RSS growth of the process that runs it, embedded).
"""

from __future__ import annotations

import gzip
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from schemas import StoredArticle
from workers.core.settings import Settings
from workers.stages.tag import DEFAULT_MAX_ENTITIES, MAX_CANDIDATES

SECRET = "c0ffee-SECRET-7f3a91-do-not-leak"
"""Content of the local file the external-entity case names; it must never appear anywhere."""

PARAGRAPHS = [
    "The regional council approved the new harbour budget on Tuesday after a long debate about "
    "the cost of dredging the eastern channel and repairing the old sea wall near the ferry pier.",
    "Council members said the plan would protect the fishing fleet during winter storms, while "
    "critics argued that the money should go to the schools and the hospital in the town centre.",
    "The works are expected to begin in the spring and to last for about eighteen months, with the "
    "ferry service running on a reduced timetable while the contractors work on the pier.",
]


def article_html(title: str = "Harbour budget approved", extra: str = "", head: str = "") -> str:
    """A small, valid news page; `extra` is added to the body, `head` to the head."""
    body = "".join(f"<p>{p}</p>\n" for p in PARAGRAPHS)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>{head}</head>'
        f"<body><article><h1>{title}</h1>\n{body}{extra}</article></body></html>\n"
    )


def _record(**fields: object) -> str:
    return json.dumps({"source": "badinput.example", **fields}, ensure_ascii=True)


def healthy_record(n: int = 0) -> str:
    """One healthy JSON-lines record (distinct per n)."""
    text = "\n\n".join(PARAGRAPHS) + f"\n\nThis is healthy record number {n} of the corpus."
    return _record(body=text, url=f"https://badinput.example/healthy-{n}", content_type="text/plain")


@dataclass
class Result:
    """What one run of one case produced (the healthy neighbour's article excluded)."""

    rejected: list[str]
    stored: list[StoredArticle]
    failures: list[tuple[str, str]]
    """(stage, reason) of each dead letter of the case's articles."""
    valid: int
    """Records the producer accepted for this case."""
    leak_texts: list[str] = field(default_factory=list)
    """Everything the run wrote: database dump, log lines, command output."""
    output: str = ""
    """What the command printed (stdout and stderr), where the mode has one."""


Check = Callable[[Result], None]


@dataclass(frozen=True)
class Case:
    """One bad input: how to write it, what must come of it, and its time and memory bounds."""

    name: str
    build: Callable[[Path], list[Path]]
    outcome: str
    check: Check
    seconds: float = 20.0
    memory_mb: int = 150
    distributed: bool = False
    settings: dict[str, object] = field(default_factory=dict)
    xfail_embedded: str | None = None
    xfail_distributed: str | None = None
    cli: bool = False
    """Also run through `newsflow run` (embedded CLI), whose output is checked."""
    backfill: bool = False
    """Also run through `newsflow backfill` (`workers.ingest.backfill.backfill`) against the real workers."""


# --- checks -------------------------------------------------------------------------------------


def rejected(field_name: str, reason: str, *, stored: int = 0) -> Check:
    """The producer rejects exactly one record, naming FILE:LINE, the field and the reason."""

    def check(result: Result) -> None:
        assert len(result.rejected) == 1, result.rejected
        line = result.rejected[0]
        location, got_field, got_reason = line.split(": ", 2)
        assert location.rsplit(":", 1)[1].isdigit(), line
        assert got_field == field_name, line
        assert reason in got_reason, line
        assert len(result.stored) == stored, [a.id for a in result.stored]
        assert not result.failures, result.failures

    return check


def dead_lettered(stage: str, reason: str) -> Check:
    """The article is accepted, then dead-lettered at `stage` with `reason`; nothing stored."""

    def check(result: Result) -> None:
        assert not result.rejected, result.rejected
        assert result.failures == [(stage, reason)], result.failures
        assert not result.stored

    return check


def stored(prop: Callable[[StoredArticle], bool], *, count: int = 1) -> Check:
    """Every accepted record is stored and each stored article has the property."""

    def check(result: Result) -> None:
        assert not result.rejected, result.rejected
        assert not result.failures, result.failures
        assert len(result.stored) == count, [a.id for a in result.stored]
        for article in result.stored:
            assert prop(article), article.model_dump_json()[:2000]

    return check


def _all(*checks: Check) -> Check:
    def check(result: Result) -> None:
        for one in checks:
            one(result)

    return check


def _no_leak(result: Result) -> None:
    for text in result.leak_texts:
        assert SECRET not in text


def _nothing_raw_on_terminal(result: Result) -> None:
    assert "\x1b" not in result.output, repr(result.output[:500])
    assert "Traceback" not in result.output


# --- builders -----------------------------------------------------------------------------------


def _write(path: Path, data: str | bytes) -> list[Path]:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return [path]


def _lines(path: Path, *lines: str) -> list[Path]:
    return _write(path, "".join(line + "\n" for line in lines))


def _gzip_members(path: Path, prefix: bytes, filler: bytes, megabytes: int, suffix: bytes) -> list[Path]:
    """A gzip file that decompresses to prefix + `megabytes` MB of filler + suffix, written in
    milliseconds: one compressed MB repeated as concatenated gzip members (which gzip readers join)."""
    member = gzip.compress(filler * (1024 * 1024 // len(filler)), compresslevel=9)
    with path.open("wb") as handle:
        handle.write(gzip.compress(prefix))
        for _ in range(megabytes):
            handle.write(member)
        handle.write(gzip.compress(suffix))
    return [path]


def _billion_laughs(d: Path) -> list[Path]:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    doctype = "<!DOCTYPE html [\n" + "\n".join(entities) + "\n]>\n"
    return _write(d / "laughs.html", doctype + article_html(extra="<p>&lol9;</p>").split("\n", 1)[1])


def _xxe(d: Path) -> list[Path]:
    secret = d / "secret.txt"
    secret.write_text(SECRET)
    doctype = f'<!DOCTYPE html [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
    page = article_html(title="Harbour &xxe; budget", extra="<p>Leak: &xxe;</p>").split("\n", 1)[1]
    return _write(d / "xxe.html", doctype + page)


def _english_flood(words: int) -> str:
    # English prose first: the tag stage tags only text whose language has a model (issue 21), and
    # the language is read from the first 1,000 characters; a bare name list reads as Fulfulde.
    return "Names of the harbour\n\n" + "\n\n".join(PARAGRAPHS) + "\n\n" + _flood(words)


def _flood(words: int) -> str:
    # Distinct capitalised names: each one is a mention candidate and, mostly, its own entity.
    letters = "BCDFGHKLMNPRSTVZ"
    vowels = "aeiou"

    def name(i: int) -> str:
        out = ""
        while True:
            out += letters[i % 16] + vowels[(i // 16) % 5]
            i //= 80
            if not i:
                return out.capitalize()

    # In English sentences: the tag stage routes each paragraph by its language (issue 29), and a bare
    # list of names reads as another language, which would leave the flood untagged.
    def sentence(start: int, stop: int) -> str:
        names = [f"{name(i)} {name(i * 7 + 3)}" for i in range(start, stop)]
        return f"On Monday {', '.join(names[:-1])} and {names[-1]} met the harbour board in the town hall."

    return "\n\n".join(
        " ".join(sentence(s, min(s + 4, words)) for s in range(start, min(start + 200, words), 4))
        for start in range(0, words, 200)
    )


def _assert(condition: bool, result: Result) -> None:
    assert condition, (result.rejected, [(a.id, a.dedup) for a in result.stored], result.failures)


def _one_canonical(result: Result) -> None:
    _assert(sorted(a.dedup for a in result.stored) == ["exact_duplicate", "unique"], result)


def _invisible(text: str) -> str:
    return text.replace("harbour", "har\u200bbour").replace("council", "\u202ecouncil\u202c")


CASES: list[Case] = [
    Case(
        "malformed_json",
        lambda d: _lines(d / "feed.jsonl", '{"source": "s", "body": "unterminated', healthy_record(1)),
        "rejected at the producer: (record): Invalid JSON; the record after it is stored",
        rejected("(record)", "Invalid JSON", stored=1),
        distributed=True,
    ),
    Case(
        "wrong_schema",
        lambda d: _lines(d / "feed.jsonl", json.dumps({"src": "x", "body": 5, "extra": True})),
        "rejected at the producer: source: Field required (and the other fields)",
        lambda r: _assert(
            [line.split(": ", 1)[1] for line in r.rejected]
            == [
                "source: Field required",
                "body: Input should be a valid string",
                "src: Extra inputs are not permitted",
                "extra: Extra inputs are not permitted",
            ]
            and r.valid == 0,
            r,
        ),
    ),
    Case(
        "payload_50mb",
        lambda d: _write(d / "huge.html", article_html(extra="<p>" + "x" * (50 * 1024 * 1024) + "</p>")),
        "rejected at the producer: body: is 16777217 bytes, the limit is 16777216",
        rejected("body", "the limit is 16777216"),
        memory_mb=250,
        distributed=True,
    ),
    Case(
        "payload_50mb_json_record",
        lambda d: _lines(d / "huge.jsonl", _record(body="y" * (50 * 1024 * 1024)), healthy_record(2)),
        "rejected at the producer: (record): record is longer than the limit; the next record is stored",
        rejected("(record)", "longer than the limit", stored=1),
        memory_mb=250,
    ),
    Case(
        "nested_divs_10000",
        lambda d: _write(
            d / "deep.html", article_html(extra="<div>" * 10_000 + "<p>deep</p>" + "</div>" * 10_000)
        ),
        "dead-lettered at clean: too_deep",
        dead_lettered("clean", "too_deep"),
        distributed=True,
    ),
    Case(
        "billion_laughs",
        _billion_laughs,
        "stored; the entity is never expanded (no 'lollol' in the text)",
        stored(lambda a: "lollol" not in a.text and "harbour budget" in a.text),
        distributed=True,
    ),
    Case(
        "external_entity_local_file",
        _xxe,
        "stored; the local file's content appears nowhere (database, logs, output)",
        _all(stored(lambda a: SECRET not in a.text), _no_leak),
        distributed=True,
        cli=True,
    ),
    Case(
        "attribute_20mb",
        lambda d: _write(
            d / "attr.html", article_html(extra=f'<p data-x="{"A" * (20 * 1024 * 1024)}">x</p>')
        ),
        "rejected at the producer: body: the limit is 16777216",
        rejected("body", "the limit is 16777216"),
        memory_mb=250,
    ),
    Case(
        "attribute_15mb",
        lambda d: _write(
            d / "attr.html", article_html(extra=f'<p data-x="{"A" * (15 * 1024 * 1024)}">x</p>')
        ),
        "stored; the attribute's 15 MB are not in the text",
        stored(lambda a: "AAAAAAAAAA" not in a.text and "harbour budget" in a.text),
        memory_mb=400,
    ),
    Case(
        "gzip_bomb_html",
        lambda d: _gzip_members(d / "bomb.html.gz", b"<html><body><p>", b"A", 1024, b"</p></body></html>"),
        "rejected at the producer: body: the limit is 16777216 (at most 16 MB+1 decompressed)",
        rejected("body", "the limit is 16777216"),
        memory_mb=150,
        distributed=True,
    ),
    Case(
        "gzip_bomb_jsonl",
        lambda d: _gzip_members(
            d / "bomb.jsonl.gz",
            (healthy_record(3) + "\n").encode() + b'{"source": "s", "body": "',
            b"A",
            300,
            b'"}\n' + healthy_record(4).encode() + b"\n",
        ),
        "the 300 MB line is rejected with its size: (record): record is N bytes, longer than the limit, "
        "skipped to its newline in bounded memory; the records before and after it are stored",
        rejected("(record)", "bytes (decompressed), longer than the limit", stored=2),
        memory_mb=150,
        distributed=True,
        backfill=True,
    ),
    Case(
        "gzip_oversized_jsonl_record",
        lambda d: _gzip_members(
            d / "big.jsonl.gz",
            b'{"source": "s", "body": "',
            b"A",
            60,
            b'"}\n' + healthy_record(5).encode() + b"\n",
        ),
        "rejected at the producer: (record): record is longer than the limit; the next record is stored",
        rejected("(record)", "longer than the limit", stored=1),
        memory_mb=150,
    ),
    Case(
        "nul_bytes_in_body",
        lambda d: _write(d / "nul.html", article_html(extra="<p>Null\x00bytes\x00in the\x00 text.</p>")),
        "stored; no NUL in the stored text",
        stored(lambda a: "\x00" not in a.text and "harbour budget" in a.text),
        distributed=True,
    ),
    Case(
        "nul_in_url",
        lambda d: _lines(
            d / "feed.jsonl", _record(body="x", url="https://a.example/\u0000x"), healthy_record(6)
        ),
        "rejected at the producer: url: must not contain control characters (U+0000); the next record is stored",
        rejected("url", "control characters (U+0000)", stored=1),
        distributed=True,
    ),
    Case(
        "nul_in_source",
        lambda d: _lines(
            d / "feed.jsonl", json.dumps({"source": "bad\u0000source", "body": "x"}), healthy_record(7)
        ),
        "rejected at the producer: source: must not contain control characters; the next record is stored",
        rejected("source", "control characters (U+0000)", stored=1),
        distributed=True,
    ),
    Case(
        "nul_in_title",
        lambda d: _lines(d / "feed.jsonl", _record(body="\n\n".join(PARAGRAPHS), title="Bad\u0000title")),
        "rejected at the producer: title: must not contain NUL (PostgreSQL cannot store it)",
        rejected("title", "must not contain NUL"),
        distributed=True,
    ),
    Case(
        "invalid_utf8",
        lambda d: _write(
            d / "bad.html",
            article_html(extra="<p>Caf\u00e9 owners cheered \xff loudly.</p>")
            .encode()
            .replace(b"\xc3\xbf", b"\xff"),
        ),
        "stored; the bad byte replaced, valid UTF-8 kept ('Café')",
        stored(lambda a: "Café owners cheered" in a.text),
    ),
    Case(
        "lying_charset",
        lambda d: _write(
            d / "latin1.html",
            article_html(extra="<p>The café in Zürich reopened for the señora's party.</p>").encode(
                "latin-1"
            ),
        ),
        "stored with its accents: a Latin-1 page declared UTF-8 is read as Latin-1",
        stored(lambda a: "café in Zürich" in a.text and "señora" in a.text),
        distributed=True,
    ),
    Case(
        "ansi_and_newline_in_url",
        lambda d: _lines(
            d / "feed.jsonl",
            _record(body="x", url="https://a.example/\x1b[31mred"),
            _record(body="x", url="https://a.example/a\nb"),
            healthy_record(8),
        ),
        "both rejected at the producer: url: control characters / whitespace; the next record is stored",
        lambda r: _assert(
            len(r.rejected) == 2
            and r.rejected[0].endswith("url: Value error, must not contain control characters (U+001B)")
            and r.rejected[1].endswith("url: Value error, must not contain whitespace")
            and len(r.stored) == 1,
            r,
        ),
    ),
    Case(
        "ansi_and_newline_in_title",
        lambda d: _lines(
            d / "feed.jsonl",
            _record(
                body="\n\n".join(PARAGRAPHS),
                title='Harbour\n{"event": "forged"}\x1b[2J\x1b[31m red [/bold] [link=http://x]',
            ),
        ),
        "stored; no raw ESC and no traceback on the terminal (`newsflow run` exits 0)",
        _all(stored(lambda a: True), _nothing_raw_on_terminal),
        cli=True,
    ),
    Case(
        "rtl_override_and_zero_width",
        lambda d: _lines(
            d / "feed.jsonl",
            _record(body="\n\n".join(PARAGRAPHS), url="https://badinput.example/plain"),
            # Another outlet's copy: dedup learns a source's own repeated lines as its chrome, so a
            # verbatim copy on the same site is not merged (precision first; see the README's dedup).
            _record(
                body=_invisible("\n\n".join(PARAGRAPHS)),
                url="https://mirror.example/invisible",
                source="mirror.example",
            ),
        ),
        "both stored; the copy with U+202E/U+200B is an exact duplicate of the plain one",
        _all(stored(lambda a: True, count=2), _one_canonical),
    ),
    Case(
        "nfc_nfd_twins",
        lambda d: _lines(
            d / "feed.jsonl",
            _record(
                # A whole article: a text below dedup's 40-word floor is never a duplicate, by design.
                body=unicodedata.normalize("NFC", "Café in Zürich. " + "\n\n".join(PARAGRAPHS)),
                url="https://b.example/1",
            ),
            _record(
                body=unicodedata.normalize("NFD", "Café in Zürich. " + "\n\n".join(PARAGRAPHS)),
                url="https://mirror.example/2",
                source="mirror.example",
            ),
        ),
        "one article: the NFD twin is an exact duplicate of the NFC one",
        _all(stored(lambda a: True, count=2), _one_canonical),
    ),
    Case(
        "sql_looking_strings",
        lambda d: _lines(
            d / "feed.jsonl",
            _record(
                body="Robert'); DROP TABLE articles;-- said the clerk.\n\n"
                + "\n\n".join(PARAGRAPHS)
                + "\n\nThe login was ' OR '1'='1'; -- and nothing happened.",
                title="Robert'); DROP TABLE articles;--",
                content_type="text/plain",
            ),
        ),
        "stored verbatim (the SQL-looking text is in the stored text, the tables survive)",
        stored(lambda a: "Robert'); DROP TABLE articles;--" in a.text and "' OR '1'='1'; --" in a.text),
        distributed=True,
    ),
    Case(
        "empty_page",
        lambda d: _write(d / "empty.html", "  \n\t "),
        "rejected at the producer: body: must not be blank",
        rejected("body", "must not be blank"),
    ),
    Case(
        "empty_markup",
        lambda d: _write(d / "empty.html", "<!DOCTYPE html><html><head></head><body></body></html>"),
        "dead-lettered at clean: no_content",
        dead_lettered("clean", "no_content"),
        distributed=True,
    ),
    Case(
        "scripts_only",
        lambda d: _write(
            d / "scripts.html",
            "<html><head><script>var a = 'lots of script text ' + 1;</script></head><body>"
            + "<script>document.write('x'.repeat(100));</script>" * 50
            + "<style>p { color: red }</style></body></html>",
        ),
        "dead-lettered at clean: no_content",
        dead_lettered("clean", "no_content"),
        distributed=True,
    ),
    Case(
        "pdf_as_html",
        lambda d: _write(
            d / "doc.html",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nstream\n" + bytes(range(256)) * 40,
        ),
        "dead-lettered at clean: not_html",
        dead_lettered("clean", "not_html"),
        distributed=True,
    ),
    Case(
        "entity_flood_capped",
        lambda d: _write(d / "flood.txt", _english_flood(4_000)),
        f"stored; entities capped at {DEFAULT_MAX_ENTITIES} (the cap is reached), mentions <= {MAX_CANDIDATES}",
        stored(
            lambda a: (
                len(a.entities) == DEFAULT_MAX_ENTITIES
                and sum(len(e.mentions) for e in a.entities) <= MAX_CANDIDATES
            )
        ),
        seconds=60,
        memory_mb=500,
        distributed=True,
    ),
    Case(
        "million_entity_candidates",
        # Prose (sentences), so the cleaner keeps it as an article: a bare token list is no_content.
        lambda d: _write(
            d / "million.txt",
            "\n\n".join(
                " ".join(
                    f"Q{i % 10} met Q{(i + 1) % 10} and Q{(i + 2) % 10} near the harbour."
                    for i in range(k, k + 1000)
                )
                for k in range(0, 125_000, 1000)
            ),
        ),
        f"stored; the model sees the first 100,000 characters, entities <= 1000, mentions <= {MAX_CANDIDATES}",
        stored(
            lambda a: len(a.entities) <= 1000 and sum(len(e.mentions) for e in a.entities) <= MAX_CANDIDATES
        ),
        seconds=60,
        memory_mb=600,
    ),
    Case(
        "entity_flood_time_limit",
        lambda d: _write(d / "flood.txt", _english_flood(60_000)),
        "dead-lettered timeout at the soft time limit (2 s here, at clean or tag), and the run goes on",
        lambda r: _assert(len(r.failures) == 1 and r.failures[0][1] == "timeout" and not r.stored, r),
        seconds=15,
        memory_mb=500,
        settings={"task_soft_time_limit": 2, "task_time_limit": 5},
    ),
    Case(
        "impossible_meta_date",
        lambda d: _write(
            d / "date.html",
            article_html(head='<meta property="article:published_time" content="2024-02-30T10:00:00Z">'),
        ),
        "stored with no published date (not 2024-02-01)",
        stored(lambda a: a.published_at is None or (a.published_at.month, a.published_at.day) != (2, 1)),
    ),
    Case(
        "impossible_hint_date",
        lambda d: _lines(d / "feed.jsonl", _record(body="x", published_at="2024-02-30T10:00:00Z")),
        "rejected at the producer: published_at: invalid date",
        rejected("published_at", "day value is outside expected range"),
    ),
    Case(
        "javascript_url",
        lambda d: _lines(d / "feed.jsonl", _record(body="x", url="javascript:alert(document.cookie)")),
        "rejected at the producer: url: must be an absolute http:// or https:// URL",
        rejected("url", "must be an absolute http:// or https:// URL"),
        distributed=True,
    ),
    Case(
        "source_10kb",
        lambda d: _lines(d / "feed.jsonl", json.dumps({"source": "s" * 10_240, "body": "x"})),
        "rejected at the producer: source: String should have at most 200 characters",
        rejected("source", "at most 200 characters"),
        distributed=True,
    ),
    Case(
        "doctype_subset_quadratic",
        lambda d: _write(d / "doctype.html", "<!DOCTYPE a [" * 2_000 + article_html(extra="<!ENTITY x 'y'>")),
        "stored or dead-lettered in well under a second per 100 KB (the doctype regex is quadratic)",
        lambda r: _assert(len(r.stored) + len(r.failures) == 1 and not r.rejected, r),
        seconds=1.0,
    ),
]


# --- input cases of issues 19 and 20: archives cut short, UTF-16, non-files, the HTML limit, repeats ---


def _warc(path: Path, pages: int) -> list[int]:
    """A real gzipped WARC (warcio) of `pages` distinct article pages; returns each record's end offset."""
    import io

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    ends = []
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for n in range(pages):
            body = article_html(title=f"Harbour budget, part {n}", extra=f"<p>{healthy_text(n)}</p>").encode()
            http = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1"
            )
            record = writer.create_warc_record(
                f"https://warc{n}.badinput.example/story/{n}",
                "response",
                payload=io.BytesIO(body),
                length=len(body),
                http_headers=http,
            )
            writer.write_record(record)
            ends.append(handle.tell())
    return ends


def healthy_text(n: int) -> str:
    """A distinct prose paragraph per n (so archived pages are not each other's duplicates)."""
    words = [
        "harbour",
        "council",
        "ferry",
        "budget",
        "winter",
        "storm",
        "pier",
        "school",
        "hospital",
        "spring",
    ]
    return " ".join(
        f"The {words[(n + k) % 10]} report number {n * 31 + k} was read aloud." for k in range(12)
    )


CUT_WHOLE = 4
"""Whole records before the cut in `_cut_warc`."""


def _cut_warc(d: Path) -> list[Path]:
    full = d / "full.warc.gz.tmp"
    ends = _warc(full, CUT_WHOLE + 2)
    cut = d / "cut.warc.gz"
    cut.write_bytes(full.read_bytes()[: (ends[CUT_WHOLE - 1] + ends[CUT_WHOLE]) // 2])
    full.unlink()
    return [cut]


def _cut_rejected(result: Result) -> None:
    """One rejection: `cut.warc.gz@OFFSET: (archive): record truncated ...`; the whole records stored."""
    _assert(len(result.rejected) == 1, result)
    location, got_field, reason = result.rejected[0].split(": ", 2)
    _assert(location.startswith("cut.warc.gz@") and location.rsplit("@", 1)[1].isdigit(), result)
    _assert(got_field == "(archive)" and "truncated" in reason, result)
    _assert(len(result.stored) == CUT_WHOLE and not result.failures, result)


def _not_files(d: Path) -> list[Path]:
    import os

    named = d / "named.jsonl"
    os.mkfifo(named)
    sub = d / "sub"
    sub.mkdir()
    os.mkfifo(sub / "pipe.jsonl")
    (sub / "loop.html").symlink_to(sub / "loop.html")
    (sub / "feed.jsonl").write_text(healthy_record(9) + "\n")
    return [named, sub]


def _not_files_rejected(result: Result) -> None:
    """Each non-file is one line naming it and what it is; the healthy file beside them is stored."""
    _assert(
        sorted(result.rejected)
        == [
            "named.jsonl: (file): not a regular file (a FIFO (named pipe)); skipped",
            "sub/loop.html: (file): symlink loop (too many levels of symbolic links); skipped",
            "sub/pipe.jsonl: (file): not a regular file (a FIFO (named pipe)); skipped",
        ],
        result,
    )
    _assert(len(result.stored) == 1 and not result.failures, result)


def _utf16(d: Path) -> list[Path]:
    import codecs

    declared = article_html(title="Harbour budget in UTF-16", head='<meta charset="utf-16le">')
    bom = article_html(title="Harbour budget with a BOM", extra="<p>Café owners in Zürich cheered.</p>")
    (d / "declared.html").write_bytes(declared.encode("utf-16-le"))
    (d / "bom.html").write_bytes(codecs.BOM_UTF16_LE + bom.encode("utf-16-le"))
    return [d / "bom.html", d / "declared.html"]


ENV_SECRET = "s3cr3t-env-password-9e2c"
"""Content of an env file outside the input directory that a symlink inside it names; never read."""


def _symlinks_out(d: Path) -> list[Path]:
    """An input directory with a healthy page, a symlink to /proc/self/environ and one to an env file
    outside the directory (issue 30.5: they put the broker and database passwords into payloads)."""
    folder = d / "dir"
    folder.mkdir()
    (folder / "page.html").write_text(article_html(title="Harbour budget behind symlinks"))
    env_file = d / "prod.env"
    env_file.write_text(f"NEWSFLOW_DATABASE_URL=postgresql://newsflow:{ENV_SECRET}@db/newsflow\n")
    (folder / "settings.html").symlink_to(env_file)
    (folder / "environ.txt").symlink_to("/proc/self/environ")
    return [folder]


def _symlinks_not_followed(result: Result) -> None:
    _assert(not result.rejected and not result.failures, result)
    _assert(result.valid == 1 and len(result.stored) == 1, result)  # neither link became a record
    _assert("symlinks" in (result.stored[0].title or ""), result)
    assert not any(ENV_SECRET in text or "PATH=" in text for text in result.leak_texts), "a link was read"
    if result.output:  # `newsflow run`: each skip said with its reason, and counted
        assert result.output.count("outside the input directory: not followed") == 2, result.output
        assert "symlink_outside 2" in result.output, result.output


def _long_path(d: Path) -> list[Path]:
    """A page whose path is over 1,000 characters (five directories of 230), and one whose name carries
    an escape sequence and a newline (issue 30.3-4: a long path stopped every backfill)."""
    deep = d
    for n in range(5):
        deep = deep / (str(n) * 230)
    deep.mkdir(parents=True)
    (deep / "page.html").write_text(article_html(title="Harbour budget deep down"))
    (d / "odd\x1b[2J\nrejected forged.html").write_text(article_html(title="Harbour budget odd name"))
    return [d]


INPUT_CASES: list[Case] = [
    Case(
        "symlinks_out_of_the_directory",
        _symlinks_out,
        "the page is stored; a symlink to /proc/self/environ and one to an env file outside the input directory "
        "are skipped (symlink_outside) with a line saying why, never read (--follow-symlinks reads them)",
        _symlinks_not_followed,
        distributed=True,
        backfill=True,
        cli=True,
    ),
    Case(
        "path_over_1000_chars_and_escapes_in_names",
        _long_path,
        "both pages stored: a path of 1,100+ characters (backfill checkpoints it by hash) and a name with an "
        "escape sequence and a newline (printed escaped)",
        lambda r: _assert(
            len(r.stored) == 2
            and not r.rejected
            and "\x1b" not in r.output
            and "\nrejected forged" not in r.output,
            r,
        ),
        distributed=True,
        backfill=True,
        cli=True,
    ),
    Case(
        "truncated_warc_gz",
        _cut_warc,
        f"the {CUT_WHOLE} whole records are stored; the record cut in the middle is rejected: "
        "FILE@OFFSET: (archive): record truncated (never stored with a cut body, no traceback)",
        _cut_rejected,
        distributed=True,
        backfill=True,
    ),
    Case(
        "fifo_and_symlink_loop",
        _not_files,
        "a FIFO named on the command line, a FIFO and a symlink loop inside a directory: one rejected line "
        "each, saying what it is (no hang); the healthy file in the directory is stored",
        _not_files_rejected,
        distributed=True,
        backfill=True,
    ),
    Case(
        "utf16_pages",
        _utf16,
        "stored: a UTF-16LE page with a BOM and one declaring utf-16le without a BOM are decoded (not not_html)",
        stored(lambda a: "harbour budget" in a.text and "\x00" not in a.text, count=2),
        distributed=True,
        backfill=True,
    ),
    Case(
        "html_over_the_limit",
        lambda d: _write(
            d / "big.html",
            article_html(extra="<p>" + "The council discussed the harbour budget again. " * 60_000 + "</p>"),
        ),
        "rejected at the producer: body: HTML is N bytes without scripts, styles and comments, the limit is "
        "2097152 bytes (the clean stage's limit, the same constant)",
        rejected("body", "the limit is 2097152 bytes (2 MiB)"),
        memory_mb=250,
        distributed=True,
        backfill=True,
    ),
    Case(
        "unknown_field_page_id",
        lambda d: _lines(
            d / "dump.jsonl", _record(body="\n\n".join(PARAGRAPHS), page_id="p-1"), healthy_record(10)
        ),
        "rejected at the producer: page_id: Extra inputs are not permitted (--ignore-unknown-fields drops it); "
        "the next record is stored",
        rejected("page_id", "Extra inputs are not permitted", stored=1),
        distributed=True,
        backfill=True,
    ),
    Case(
        "identical_lines_100k",
        lambda d: _lines(d / "same.jsonl", *([healthy_record(11)] * 100_000)),
        "one article, run once (100,000 identical lines in well under a minute; 352-600 s before)",
        stored(lambda a: "healthy record number 11" in a.text),
        seconds=45,
        memory_mb=300,
    ),
]
CASES += INPUT_CASES


def settings_for(case: Case, base: Settings) -> Settings:
    """The run's settings: `base` with the case's overrides."""
    return Settings(**{**base.model_dump(), **case.settings})


__all__ = ["CASES", "SECRET", "Case", "Result", "article_html", "healthy_record", "settings_for"]
