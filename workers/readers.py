"""Read raw articles from files, directories and stdin, validating each against `RawArticle`.

Supported: `.txt` text dumps, `.html`/`.htm` pages, `.jsonl` (one raw article per line) and
`.json` (one object), each optionally gzipped (`.gz`); directories are read recursively; `-`
reads JSON lines from stdin. Every record comes back as a `Record`: either a valid article
or the place (`file:line`) and pydantic's reasons why it is not one.

Input is streamed: gzip is decompressed as it is read, JSON lines one at a time, and no record
may decompress to more than `MAX_RECORD_BYTES` (a gzip bomb is one rejected record, not a
MemoryError). One bad record never stops the records after it.
"""

import codecs
import gzip
import json
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import pydantic

from schemas import RawArticle
from schemas.limits import MAX_BODY_BYTES

MAX_RECORD_BYTES = 2 * MAX_BODY_BYTES + 64 * 1024
"""Largest decompressed JSON record (one line of .jsonl, or a .json file): a body at its limit
with JSON escapes fits; anything longer is rejected without being held in memory."""

_READ_CHUNK = 1024 * 1024

TEXT_SUFFIXES = {".txt": "text/plain", ".html": "text/html", ".htm": "text/html"}
JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}
SUPPORTED = (*TEXT_SUFFIXES, *JSON_SUFFIXES)


@dataclass(frozen=True)
class Problem:
    """Why one record was rejected: field path and reason."""

    field: str
    reason: str


@dataclass(frozen=True)
class Record:
    """One input record: where it came from, and the article or the problems."""

    origin: str
    article: RawArticle | None
    problems: tuple[Problem, ...] = ()


def _stem(path: Path) -> tuple[str, bool]:
    """The suffix that says the format, and whether the file is gzipped."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    return (suffixes[-1] if suffixes else ""), gz


def is_supported(path: Path) -> bool:
    """True for files whose name says a format we read."""
    suffix, _ = _stem(path)
    return suffix in SUPPORTED


def _problems(error: pydantic.ValidationError) -> tuple[Problem, ...]:
    return tuple(
        Problem(field=".".join(str(p) for p in e["loc"]) or "(record)", reason=e["msg"])
        for e in error.errors()
    )


def _open(path: Path, gz: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else path.open("rb")


_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE
)


def _declared_charset(data: bytes) -> str | None:
    """The charset a page declares in its first 4 KB (meta charset or http-equiv), if Python knows it."""
    match = _DECLARED_CHARSET.search(data[:4096])
    if match is None:
        return None
    name = match.group(1).decode("ascii").lower()
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _decode(data: bytes) -> str:
    """Bytes of a page → text. UTF-8 unless the bytes show otherwise.

    Invalid UTF-8 is replaced, not fatal: a scraped page with one bad byte is still an article.
    But a page with more invalid sequences than valid multi-byte characters is not UTF-8, whatever
    it declares (a Latin-1 page labelled UTF-8): it is decoded with its declared single-byte
    charset, or windows-1252 (a superset of Latin-1's printable range), so its accents survive.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    valid_multibyte = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if invalid <= valid_multibyte:
        return text
    declared = _declared_charset(data)
    charset = declared if declared is not None and declared != "utf-8" else "cp1252"
    return data.decode(charset, errors="replace")


MAX_SKIP_BYTES = 4 * MAX_RECORD_BYTES
"""How far past an over-long JSON line the reader looks for the next line before it gives up on
the rest of the file (a gzip bomb can decompress to many gigabytes; reading it all only wastes time)."""


class _GaveUp(Exception):
    """An over-long line did not end within MAX_SKIP_BYTES: the rest of the file is not read."""


def _read_capped(handle: IO[bytes], limit: int) -> bytes | None:
    """Up to `limit` bytes of the stream, or None if it is longer (the rest is left unread)."""
    data = handle.read(limit + 1)
    return data if len(data) <= limit else None


def _too_long(origin: str) -> Record:
    return Record(
        origin,
        None,
        (Problem("(record)", f"record is longer than {MAX_RECORD_BYTES} bytes (decompressed), the limit"),),
    )


def _unreadable(origin: str, exc: Exception) -> Record:
    return Record(origin, None, (Problem("(file)", f"cannot be read: {type(exc).__name__}: {exc}"[:300]),))


def read_path(path: Path, *, source: str) -> Iterator[Record]:
    """Records from one file or, recursively, a directory's supported files (sorted, deterministic)."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and is_supported(p)):
            yield from read_path(child, source=source)
        return
    suffix, gz = _stem(path)
    if not path.exists():
        yield Record(str(path), None, (Problem("(file)", "no such file or directory"),))
        return
    if suffix in JSON_SUFFIXES:
        try:
            with _open(path, gz) as handle:
                if suffix == ".json":
                    data = _read_capped(handle, MAX_RECORD_BYTES)
                    yield _json_record(f"{path}:1", data) if data is not None else _too_long(f"{path}:1")
                else:
                    yield from read_jsonl(handle, name=str(path))
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # A corrupt or truncated gzip member: the records read so far stand, the rest is reported.
            yield _unreadable(str(path), exc)
        return
    content_type = TEXT_SUFFIXES.get(suffix)
    if content_type is None:
        yield Record(
            str(path), None, (Problem("(file)", f"unsupported file type; use one of {', '.join(SUPPORTED)}"),)
        )
        return
    try:
        with _open(path, gz) as handle:
            # At most one byte past the limit is decompressed: the schema then says how big is too big.
            data = handle.read(MAX_BODY_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield _unreadable(str(path), exc)
        return
    try:
        article = RawArticle(source=source, body=_decode(data), content_type=content_type)  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        yield Record(f"{path}:1", None, _problems(exc))
        return
    yield Record(f"{path}:1", article)


def _json_record(origin: str, line: bytes) -> Record:
    try:
        return Record(origin, RawArticle.model_validate_json(line))
    except pydantic.ValidationError as exc:
        return Record(origin, None, _problems(exc))


def _lines(handle: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Each line of the stream, or None for a line longer than `limit` (skipped without keeping it)."""
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        skipped = len(line)
        while line and not line.endswith(b"\n"):
            if skipped > MAX_SKIP_BYTES:
                raise _GaveUp
            line = handle.readline(_READ_CHUNK)
            skipped += len(line)
        yield None


def read_jsonl(handle: IO[bytes], *, name: str) -> Iterator[Record]:
    """Records from JSON lines (blank lines skipped), each numbered `name:line`; streamed, each line capped."""
    number = 0
    try:
        for number, line in enumerate(_lines(handle, MAX_RECORD_BYTES), start=1):
            if line is None:
                yield _too_long(f"{name}:{number}")
            elif line.strip():
                yield _json_record(f"{name}:{number}", line)
    except _GaveUp:
        reason = (
            f"record longer than {MAX_SKIP_BYTES} bytes (decompressed); the rest of the input is not read"
        )
        yield Record(f"{name}:{number + 1}", None, (Problem("(record)", reason),))


def read_inputs(paths: Iterable[str], *, source: str) -> Iterator[Record]:
    """Records from every path in order; `-` reads JSON lines from stdin."""
    for item in paths:
        if item == "-":
            yield from read_jsonl(sys.stdin.buffer, name="<stdin>")
        else:
            yield from read_path(Path(item), source=source)


def to_json_line(article: RawArticle) -> str:
    """One JSON line for a raw article (what `enqueue -` reads)."""
    return json.dumps(article.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
