"""Read raw articles from files, directories and stdin, validating each against `RawArticle`.

Supported: `.txt` text dumps, `.html`/`.htm` pages, `.jsonl`/`.ndjson` (one raw article per line)
and `.json` (one object), each optionally gzipped (`.gz`); WARC and ARC archives (`.warc`,
`.warc.gz`, `.arc`, `.arc.gz`, read by `workers.ingest.archives`); directories are read recursively; `-`
reads JSON lines from stdin. Every record comes back as a `Record`: either a valid article or the
place (`file:line`, `file@offset`) and the reasons why it is not one. `newsflow run`, `enqueue` and
`backfill` all read through this module, so they accept and refuse the same inputs.

Input is streamed: gzip is decompressed as it is read, JSON lines one at a time, and no line is held
past `MAX_RECORD_BYTES`: a longer line is skipped to its newline (read in chunks, never kept) and
rejected with its size, and the records after it are read. One bad record never stops the records
after it. Paths that are not regular files (FIFOs, sockets, devices, symlink loops, broken links)
are refused with one line each, never opened: a FIFO would block the reader for ever.
"""

import codecs
import errno
import gzip
import json
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import pydantic

from schemas import RawArticle
from schemas.limits import MAX_BODY_BYTES, MAX_HTML_BYTES, mib

MAX_RECORD_BYTES = 2 * MAX_BODY_BYTES + 64 * 1024
"""Largest decompressed JSON record (one line of .jsonl, or a .json file): a body at its limit
with JSON escapes fits; anything longer is rejected without being held in memory."""

_READ_CHUNK = 1024 * 1024

TEXT_SUFFIXES = {".txt": "text/plain", ".html": "text/html", ".htm": "text/html"}
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
WARC_SUFFIXES = (".arc", ".warc")
SUPPORTED = (*TEXT_SUFFIXES, *JSON_SUFFIXES, *WARC_SUFFIXES)
"""Every suffix we read (each also gzipped), in the order the messages list them."""


def supported_list() -> str:
    """The supported file types for a message, in a stable order."""
    return ", ".join(f"{s}[.gz]" for s in SUPPORTED)


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


# --- paths that are not regular files -----------------------------------------------------------------

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def path_problem(path: Path) -> str | None:  # noqa: PLR0911 -- one return per kind of path
    """Why `path` cannot be read as an input file or directory, or None when it can. Never opens it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop (too many levels of symbolic links); skipped"
        if exc.errno == errno.ENOENT:
            if path.is_symlink():
                return "broken symlink (its target does not exist); skipped"
            return "no such file or directory"
        if exc.errno == errno.EACCES:
            return "permission denied; skipped"
        return f"cannot be read: {exc.strerror or exc}; skipped"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    what = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"not a regular file ({what}); skipped"


@dataclass(frozen=True)
class Entry:
    """One path an input argument names: a file to read, a path refused (`problem`), a file in a
    directory whose type we do not read (`unsupported`, counted as skipped), or a symlink leading out of
    the input directory (`outside`: why it is not followed, counted as skipped `symlink_outside`)."""

    path: Path
    problem: str | None = None
    unsupported: bool = False
    outside: str | None = None


SYMLINK_OUTSIDE = "symlink_outside"
"""The skip kind of a symlink that leads out of its input directory (not followed by default)."""


def _leaves(child: Path, root: Path) -> str | None:
    """Why `child` (inside input directory `root`, resolved) is not read: it is a symlink, or lies under
    one, that leads out of `root` (to /proc/self/environ, an env file...); None when it stays inside."""
    try:
        target = child.resolve(strict=True)
    except (OSError, RuntimeError):
        return None  # a loop or a broken link: `path_problem` says so
    if target == root or target.is_relative_to(root):
        return None
    return f"symlink to {target}, outside the input directory: not followed (--follow-symlinks reads it); skipped"


def walk(item: str, *, follow_symlinks: bool = False) -> Iterator[Entry]:
    """The entries of one input argument: the file itself, or a directory's entries recursively (sorted).

    Inside a directory, a file of an unknown type is an `unsupported` entry (counted as skipped, it
    may be a README); a FIFO, socket, device, symlink loop or broken link is a `problem` entry; a
    symlink whose target lies outside the directory is an `outside` entry, never opened, unless
    `follow_symlinks` (a link to /proc/self/environ must not put the environment into a payload).
    A path named on the command line is read even if it is a symlink: the operator named it.
    Symlinks to directories are not followed (a loop could never end)."""
    path = Path(item)
    problem = path_problem(path)
    if problem is not None or not path.is_dir():
        yield Entry(path, problem)
        return
    try:
        children = sorted(path.rglob("*"))
        root = path.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        yield Entry(path, f"cannot be listed: {getattr(exc, 'strerror', None) or exc}; skipped")
        return
    for child in children:
        problem = path_problem(child)
        outside = None if follow_symlinks or problem is not None else _leaves(child, root)
        if outside is not None:
            yield Entry(child, outside=outside)
        elif problem is not None:
            yield Entry(child, problem)
        elif child.is_dir():
            if child.is_symlink():
                yield Entry(child, "symlink to a directory, not followed; skipped")
        elif is_supported(child):
            yield Entry(child)
        else:
            yield Entry(child, unsupported=True)


# --- decoding -----------------------------------------------------------------------------------------


def _problems(error: pydantic.ValidationError) -> tuple[Problem, ...]:
    return tuple(
        Problem(field=".".join(str(p) for p in e["loc"]) or "(record)", reason=e["msg"])
        for e in error.errors()
    )


def _open(path: Path, gz: bool) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if gz else path.open("rb")


_DECLARED_CHARSET = re.compile(
    r"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9._:-]{1,40})""", re.IGNORECASE
)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _charset(name: str | None) -> str | None:
    """Python's name for a charset label, or None when unknown."""
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'").lower()).name
    except LookupError:
        return None


def _declared_charset(head: str) -> str | None:
    """The charset a page declares in its first 4 KB (meta charset or http-equiv), if Python knows it."""
    match = _DECLARED_CHARSET.search(head[:4096])
    return None if match is None else _charset(match.group(1))


def _utf16_layout(data: bytes) -> str | None:
    """utf-16-le or utf-16-be when the head looks like UTF-16 text without a BOM (mostly ASCII, so
    every other byte is NUL), else None."""
    head = data[:1024]
    if len(head) < 16:
        return None
    half = len(head) // 2
    odd_nul = head[1::2].count(0) / half
    even_nul = head[0::2].count(0) / half
    if odd_nul > 0.7 and even_nul < 0.1:
        return "utf-16-le"
    if even_nul > 0.7 and odd_nul < 0.1:
        return "utf-16-be"
    return None


def decode(data: bytes, declared: str | None = None) -> str:
    """Bytes of a page → text, by BOM, then by declaration, then by the bytes themselves.

    1. A byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32) decides, whatever is declared.
    2. UTF-16 without a BOM (a page declaring utf-16le in its own UTF-16 bytes, or an HTTP header
       saying so): the NUL of every other byte of ASCII markup shows it, and it is decoded as such, by
       the declared byte order if any: a valid UTF-16 page is text, not binary data.
    3. A declared non-UTF-8 charset (HTTP header) is used as declared.
    4. Otherwise UTF-8. Invalid UTF-8 is replaced, not fatal: a scraped page with one bad byte is
       still an article. But a page with more invalid sequences than valid multi-byte characters is
       not UTF-8, whatever it declares (a Latin-1 page labelled UTF-8): it is decoded with its
       declared single-byte charset, or windows-1252 (a superset of Latin-1's printable range), so
       its accents survive.
    """
    codec = _codec_by_bom_or_declaration(data, _charset(declared))
    if codec is not None:
        bom = next((len(b) for b, c in _BOMS if data.startswith(b)), 0)
        return data[bom:].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    valid_multibyte = sum(1 for ch in text if ord(ch) > 0x7F and ch != "\ufffd")
    if invalid <= valid_multibyte:
        return text
    meta = _declared_charset(data[:4096].decode("latin-1"))
    charset = meta if meta is not None and meta != "utf-8" else "cp1252"
    return data.decode(charset, errors="replace")


def _codec_by_bom_or_declaration(data: bytes, header: str | None) -> str | None:
    """The codec a BOM or a declaration names (steps 1-3 of `decode`), or None for UTF-8 and sniffing."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    layout = _utf16_layout(data)
    if layout is not None:
        # ASCII markup with every other byte NUL is UTF-16 whatever a stale meta says: read as UTF-8 it
        # would be NUL-ridden "binary" (a page declaring utf-16le in UTF-16 has no BOM to tell it).
        return header if header in {"utf-16-le", "utf-16-be"} else layout
    if header is not None and header.startswith("utf-16"):
        return header
    if header is not None and header not in {"utf-8", "ascii"}:
        return header
    return None


_decode = decode
"""Older name."""


# --- the one size limit for HTML ----------------------------------------------------------------------


def html_problem(article: RawArticle) -> Problem | None:
    """The `body` problem of an HTML article past `MAX_HTML_BYTES` (measured as the clean stage does:
    without scripts, styles, comments and inline data), or None. Text dumps have only the body limit.

    The producer refuses what the clean stage would dead-letter `too_large`: one limit, one place."""
    body = article.body
    if len(body) * 4 <= MAX_HTML_BYTES or len(body.encode("utf-8", "surrogatepass")) <= MAX_HTML_BYTES:
        return None
    from workers.core.errors import NotHtml
    from workers.stages.cleaning import guards

    try:
        if guards.sniff(article) != "text/html":
            return None
    except NotHtml:
        return None  # binary: the clean stage dead-letters it `not_html`, with its reason
    measured = guards.drop_huge_tokens(guards.strip_inert(body))
    size = len(measured.encode("utf-8", "surrogatepass"))
    if size <= MAX_HTML_BYTES:
        return None
    return Problem(
        "body",
        f"HTML is {size} bytes without scripts, styles and comments, the limit is {MAX_HTML_BYTES} bytes "
        f"({mib(MAX_HTML_BYTES)})",
    )


def checked(origin: str, article: RawArticle) -> Record:
    """The record for a schema-valid article: rejected if it breaks the HTML size limit."""
    problem = html_problem(article)
    return Record(origin, None, (problem,)) if problem is not None else Record(origin, article)


def too_big_body(size: int | None) -> Problem:
    """The `body` problem of an input past `MAX_BODY_BYTES`: its size when known, else "more than"."""
    limit = f"the limit is {MAX_BODY_BYTES} bytes ({mib(MAX_BODY_BYTES)})"
    if size is not None:
        return Problem("body", f"is {size} bytes, {limit}")
    return Problem("body", f"is more than {mib(MAX_BODY_BYTES)} (decompressed), {limit}")


# --- JSON records and lines ---------------------------------------------------------------------------


def _too_long(origin: str, size: int, *, complete: bool = True) -> Record:
    what = f"is {size} bytes" if complete else f"is more than {size} bytes"
    return Record(
        origin,
        None,
        (
            Problem(
                "(record)",
                f"record {what} (decompressed), longer than the limit of {MAX_RECORD_BYTES} bytes; skipped",
            ),
        ),
    )


def _unreadable(origin: str, exc: Exception) -> Record:
    return Record(origin, None, (Problem("(file)", f"cannot be read: {type(exc).__name__}: {exc}"[:300]),))


_FIELDS = frozenset(RawArticle.model_fields)


def json_record(origin: str, line: bytes, *, ignore_unknown: bool = False) -> Record:
    """One JSON record → a Record. With `ignore_unknown`, fields the schema does not know (a dump's
    `page_id`) are dropped before validation instead of being refused."""
    try:
        if ignore_unknown:
            data: Any = json.loads(line)
            if isinstance(data, dict):
                data = {k: v for k, v in data.items() if k in _FIELDS}
            article = RawArticle.model_validate(data)
        else:
            article = RawArticle.model_validate_json(line)
    except pydantic.ValidationError as exc:
        return Record(origin, None, _problems(exc))
    except ValueError as exc:  # json.loads: not JSON (the strict path reports it through pydantic)
        return Record(origin, None, (Problem("(record)", f"Invalid JSON: {exc}"[:300]),))
    return checked(origin, article)


_json_record = json_record
"""Older name."""


@dataclass(frozen=True)
class Line:
    """One line of a stream: its number, where it starts and where the next starts (bytes into the
    decompressed stream), and its bytes, or None with its `size` when it was longer than the cap."""

    number: int
    start: int
    end: int
    data: bytes | None
    size: int


def lines(handle: IO[bytes], *, start: int = 0, limit: int | None = None) -> Iterator[Line]:
    """Every line of the stream from byte `start`, each held only up to `limit` (default
    MAX_RECORD_BYTES): a longer line is read on to its newline in 1 MiB chunks, never kept, and
    comes back as `data=None` with its size. Memory stays bounded by the limit whatever the input."""
    cap = MAX_RECORD_BYTES if limit is None else limit
    offset, number = start, 0
    while True:
        line = handle.readline(cap + 1)
        if not line:
            return
        number += 1
        if len(line) <= cap or line.endswith(b"\n"):
            yield Line(number, offset, offset + len(line), line, len(line))
            offset += len(line)
            continue
        size = len(line)
        del line
        while True:
            chunk = handle.readline(_READ_CHUNK)
            size += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                break
        yield Line(number, offset, offset + size, None, size)
        offset += size


def read_jsonl(
    handle: IO[bytes], *, name: str, start: int = 0, ignore_unknown: bool = False
) -> Iterator[Record]:
    """Records from JSON lines (blank lines skipped), each numbered `name:line` (`name@offset` when
    read from a mid-stream `start`); streamed, each line capped, the lines after a long one read."""
    for line in lines(handle, start=start):
        origin = f"{name}@{line.start}" if start else f"{name}:{line.number}"
        if line.data is None:
            yield _too_long(origin, line.size)
        elif line.data.strip():
            yield json_record(origin, line.data, ignore_unknown=ignore_unknown)


# --- one file -----------------------------------------------------------------------------------------


def _read_capped(handle: IO[bytes], limit: int) -> bytes | None:
    """Up to `limit` bytes of the stream, or None if it is longer (the rest is left unread)."""
    data = handle.read(limit + 1)
    return data if len(data) <= limit else None


def read_file(path: Path, *, source: str, ignore_unknown: bool = False) -> Iterator[Record]:
    """Records of one regular file that is not an archive: a page, a text dump, JSON or JSON lines."""
    suffix, gz = _stem(path)
    if suffix in JSON_SUFFIXES:
        try:
            with _open(path, gz) as handle:
                if suffix == ".json":
                    data = _read_capped(handle, MAX_RECORD_BYTES)
                    yield (
                        json_record(f"{path}:1", data, ignore_unknown=ignore_unknown)
                        if data is not None
                        else _too_long(f"{path}:1", MAX_RECORD_BYTES, complete=False)
                    )
                else:
                    yield from read_jsonl(handle, name=str(path), ignore_unknown=ignore_unknown)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            # A corrupt or truncated gzip member: the records read so far stand, the rest is reported.
            yield _unreadable(str(path), exc)
        return
    content_type = TEXT_SUFFIXES.get(suffix)
    if content_type is None:
        yield Record(
            str(path), None, (Problem("(file)", f"unsupported file type; use one of {supported_list()}"),)
        )
        return
    try:
        with _open(path, gz) as handle:
            # At most one byte past the limit is decompressed: enough to know it is too big.
            data = handle.read(MAX_BODY_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield _unreadable(str(path), exc)
        return
    if len(data) > MAX_BODY_BYTES:
        yield Record(f"{path}:1", None, (too_big_body(None if gz else path.stat().st_size),))
        return
    try:
        article = RawArticle(source=source, body=decode(data), content_type=content_type)  # type: ignore[arg-type]
    except pydantic.ValidationError as exc:
        yield Record(f"{path}:1", None, _problems(exc))
        return
    yield checked(f"{path}:1", article)


def read_stdin(*, ignore_unknown: bool = False) -> Iterator[Record]:
    """JSON lines from stdin."""
    yield from read_jsonl(sys.stdin.buffer, name="<stdin>", ignore_unknown=ignore_unknown)


def to_json_line(article: RawArticle) -> str:
    """One JSON line for a raw article (what `enqueue -` reads)."""
    return json.dumps(article.model_dump(mode="json", exclude_none=True), ensure_ascii=False)
