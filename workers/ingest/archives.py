"""Read inputs as positioned items, WARC archives included, so a backfill can checkpoint and resume.

- WARC / ARC, plain or gzipped (warcio): each HTML `response` record with status 200 becomes a raw
  article with its target URI, the WARC date as `fetched_at` and the host (without `www.`) as
  source; revisits, non-HTML, non-200 and non-response records are skipped and counted by kind. A
  record cut short (a truncated file: its content shorter than its Content-Length, its gzip member
  unfinished, or headers warcio cannot parse) is rejected with the file, its offset and the reason,
  and the reading of that file ends there (nothing after a cut can be read); the next files go on.
- `.jsonl`/`.ndjson` (optionally `.gz`): one raw article per line, through `workers.ingest.readers.lines`
  (each line capped, a longer one skipped to its newline and rejected with its size).
- everything else `workers.ingest.readers` supports (`.txt`, `.html`, `.json`...) as one item per file.

Every item carries the offset where the next item starts (bytes into the WARC file, or into the
decompressed JSON lines stream), so `items(path, start=offset)` continues exactly after it.
Directories are walked recursively in sorted order (`workers.ingest.readers.walk`): files of unknown type
are counted as skipped (`unsupported_file`), FIFOs, sockets, devices and symlink loops are refused
with one line each; nothing is passed over silently.
"""

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast
from urllib.parse import urlsplit

import pydantic

from schemas import RawArticle
from schemas.limits import MAX_BODY_BYTES
from workers.ingest import readers
from workers.ingest.readers import Problem, Record

WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class Item:
    """One input record with its position: an article, a rejection (`problems`) or a skip (`skipped`)."""

    origin: str
    next_offset: int
    article: RawArticle | None = None
    problems: tuple[Problem, ...] = ()
    skipped: str | None = None

    @property
    def record(self) -> Record:
        """The `workers.ingest.readers.Record` view of this item."""
        return Record(self.origin, self.article, self.problems)


def kind(path: Path) -> str:
    """warc, jsonl, file (one record) or unsupported."""
    name = path.name.lower()
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "file" if readers.is_supported(path) else "unsupported"


def files(paths: Iterable[str], *, follow_symlinks: bool = False) -> Iterator[Path]:
    """Input paths in order, directories expanded recursively (sorted); a path that cannot be read
    (FIFO, symlink loop, missing) is kept, `items` reports it; files of unknown type in a directory
    and symlinks out of it are left out (`entries` counts them)."""
    for entry in entries(paths, follow_symlinks=follow_symlinks):
        if not entry.unsupported and entry.outside is None:
            yield entry.path


def entries(paths: Iterable[str], *, follow_symlinks: bool = False) -> Iterator[readers.Entry]:
    """Every entry the input arguments name (`workers.ingest.readers.walk`), `-` excluded."""
    for item in paths:
        if item != "-":
            yield from readers.walk(item, follow_symlinks=follow_symlinks)


def skipped_item(entry: readers.Entry) -> Item | None:
    """The skip an entry is (a file of unknown type; a symlink out of its directory, with why), or None."""
    if entry.unsupported:
        return Item(str(entry.path), 0, skipped="unsupported_file")
    if entry.outside is not None:
        return Item(
            str(entry.path), 0, problems=(Problem("(file)", entry.outside),), skipped=readers.SYMLINK_OUTSIDE
        )
    return None


def items(path: Path, *, source: str, start: int = 0, ignore_unknown: bool = False) -> Iterator[Item]:
    """The items of one file from byte offset `start` (0: the beginning)."""
    problem = readers.path_problem(path)
    if problem is not None:
        yield Item(str(path), 0, problems=(Problem("(file)", problem),))
        return
    if path.is_dir():
        yield Item(str(path), 0, problems=(Problem("(file)", "is a directory; skipped"),))
        return
    found = kind(path)
    if found == "warc":
        yield from warc_items(path, start=start)
    elif found == "jsonl":
        yield from jsonl_items(path, start=start, ignore_unknown=ignore_unknown)
    elif found == "file":
        if start == 0:
            size = path.stat().st_size
            for record in readers.read_file(path, source=source, ignore_unknown=ignore_unknown):
                yield Item(record.origin, size, record.article, record.problems)
    else:
        yield Item(
            str(path),
            0,
            problems=(Problem("(file)", f"unsupported file type; use one of {readers.supported_list()}"),),
        )


def jsonl_items(path: Path, *, start: int = 0, ignore_unknown: bool = False) -> Iterator[Item]:
    """JSON lines from offset `start` of the (decompressed) stream; blank lines skipped.

    Origins are `FILE:LINE` read from the start of the file, `FILE@OFFSET` when resumed mid-file (the
    line number is not known without reading what came before). A corrupt or cut gzip stream ends the
    file with one rejected item (the lines before it stand).
    """
    import zlib

    gz = path.name.lower().endswith(".gz")
    offset = start
    try:
        with cast(IO[bytes], gzip.open(path, "rb") if gz else path.open("rb")) as handle:
            if start:
                handle.seek(start)
            for line in readers.lines(handle, start=start):
                offset = line.end
                where = f"{path}@{line.start}" if start else f"{path}:{line.number}"
                if line.data is None:
                    record = readers._too_long(where, line.size)
                elif not line.data.strip():
                    continue
                else:
                    record = readers.json_record(where, line.data, ignore_unknown=ignore_unknown)
                yield Item(record.origin, line.end, record.article, record.problems)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        reason = f"cannot be read past byte {offset} (decompressed): {type(exc).__name__}: {exc}"[:300]
        # The file ends here for us (a backfill marks it done); the offset is where reading failed.
        yield Item(f"{path}@{offset}", offset, problems=(Problem("(file)", reason),))


def source_of(url: str) -> str:
    """The source name for an archived page: its host, lower case, without a leading `www.`."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.") or "unknown"


def warc_items(path: Path, *, start: int = 0) -> Iterator[Item]:
    """Items of a WARC (or ARC) file, plain or gzipped per record, from record offset `start`.

    A record cut short is one rejected item (`(archive)`: the file, its offset and what is missing)
    whose `next_offset` is the end of the file: a resumed backfill moves past it."""
    from warcio.archiveiterator import ArchiveIterator

    size = path.stat().st_size
    offset = start
    with path.open("rb") as handle:
        handle.seek(start)
        records = ArchiveIterator(handle, arc2warc=True)
        try:
            for record in records:
                item = _warc_item(record)
                # Once the record is read to its end warcio knows where it started and where the next
                # one starts (absolute offsets: it asked the file where it was).
                records.read_to_end()
                where = records.get_record_offset()
                cut = _truncation(record, records, size)
                if cut is not None:
                    yield Item(f"{path}@{where}", size, problems=(Problem("(archive)", cut),))
                    return
                offset = records.offset
                yield Item(f"{path}@{where}", records.offset, item.article, item.problems, item.skipped)
            rest = _unread_tail(handle, offset, size)
            if rest:
                # warcio stops quietly at a gzip member or a header cut early: the cut record is named.
                reason = f"record truncated: the last {rest} bytes are not a complete record (the file is cut); rejected"
                yield Item(f"{path}@{offset}", size, problems=(Problem("(archive)", reason),))
        except Exception as exc:  # warcio raises anything on a cut or corrupt file
            # ArchiveLoadFailed, EOFError, zlib.error, and on some cuts AttributeError or ValueError from
            # inside warcio: whatever it is, the rest of this file cannot be read; say where and why.
            reason = f"cannot be read from here (cut or corrupt): {type(exc).__name__}: {str(exc).strip()}"
            yield Item(f"{path}@{offset}", size, problems=(Problem("(archive)", reason[:300]),))


def _unread_tail(handle: IO[bytes], offset: int, size: int) -> int:
    """Bytes after the last whole record that are more than blank lines (0: the file ends cleanly)."""
    if offset >= size:
        return 0
    handle.seek(offset)
    tail = handle.read(min(size - offset, 64 * 1024))
    return 0 if not tail.strip() and size - offset <= len(tail) else size - offset


def _truncation(record: object, records: object, size: int) -> str | None:
    """Why a record that was read to its end is incomplete, or None when it is whole."""
    raw = getattr(record, "raw_stream", None)
    missing = getattr(raw, "limit", 0)
    declared = getattr(record, "length", None)
    if missing:
        return (
            f"record truncated: {missing} of its {declared} bytes of content are missing "
            f"(the file ends at byte {size}); rejected"
        )
    reader = getattr(records, "reader", None)
    decompressor = getattr(reader, "decompressor", None)
    if decompressor is not None and not getattr(decompressor, "eof", True):
        return f"record truncated: its gzip member does not end (the file ends at byte {size}); rejected"
    return None


def _warc_item(record: object, origin: str = "") -> Item:  # noqa: PLR0911 -- one return per kind of skip
    rec_type = getattr(record, "rec_type", None)
    if rec_type == "revisit":
        return Item(origin, 0, skipped="revisit")
    if rec_type != "response":
        return Item(origin, 0, skipped=f"{rec_type or 'unknown'}_record")
    headers = record.rec_headers  # type: ignore[attr-defined]
    http = getattr(record, "http_headers", None)
    url = headers.get_header("WARC-Target-URI") or ""
    if http is None:
        return Item(origin, 0, skipped="not_http")
    status = (http.get_statuscode() or "").strip()
    if status != "200":
        return Item(origin, 0, skipped="non_200")
    content_type = (http.get_header("Content-Type") or "").lower()
    mime = content_type.split(";")[0].strip()
    if mime not in HTML_TYPES:
        return Item(origin, 0, skipped="not_html")
    body = record.content_stream().read(MAX_BODY_BYTES + 1)  # type: ignore[attr-defined]
    if len(body) > MAX_BODY_BYTES:
        return Item(origin, 0, problems=(readers.too_big_body(None),))
    charset = None
    if "charset=" in content_type:
        charset = content_type.split("charset=")[-1].split(";")[0].strip().strip("\"'") or None
    try:
        article = RawArticle(
            source=source_of(url),
            body=readers.decode(body, charset),
            url=url or None,
            fetched_at=_warc_date(headers.get_header("WARC-Date")),
            content_type="text/html",
        )
    except pydantic.ValidationError as exc:
        return Item(origin, 0, problems=readers._problems(exc))
    record_ = readers.checked(origin, article)
    return Item(origin, 0, record_.article, record_.problems)


def _warc_date(value: str | None) -> datetime | None:
    """The WARC-Date (ISO 8601, UTC) as a datetime; None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def stream(
    paths: Iterable[str],
    *,
    source: str,
    ignore_unknown: bool = False,
    files_seen: list[Path] | None = None,
    follow_symlinks: bool = False,
) -> Iterator[Item]:
    """Every item of every input argument in order (`-` is JSON lines on stdin): what `run` and
    `enqueue` read. Files of unknown type inside a directory come back as `unsupported_file` skips,
    symlinks out of it (unless `follow_symlinks`) as `symlink_outside` skips saying why;
    `files_seen` collects each file opened."""
    for item in paths:
        if item == "-":
            for record in readers.read_stdin(ignore_unknown=ignore_unknown):
                yield Item(record.origin, 0, record.article, record.problems)
            continue
        for entry in readers.walk(item, follow_symlinks=follow_symlinks):
            skip = skipped_item(entry)
            if skip is not None:
                yield skip
                continue
            if files_seen is not None and entry.problem is None:
                files_seen.append(entry.path)
            yield from items(entry.path, source=source, ignore_unknown=ignore_unknown)


def read_all(
    paths: Iterable[str],
    *,
    source: str,
    skipped: dict[str, int] | None = None,
    ignore_unknown: bool = False,
    follow_symlinks: bool = False,
    on_skipped: Callable[[Item], None] | None = None,
) -> Iterator[Record]:
    """Every record of every path (`-` is stdin), WARC files included; skipped records counted by kind,
    and those that say why (a symlink out of its directory) passed to `on_skipped`."""
    for entry in stream(paths, source=source, ignore_unknown=ignore_unknown, follow_symlinks=follow_symlinks):
        if entry.skipped is not None:
            if skipped is not None:
                skipped[entry.skipped] = skipped.get(entry.skipped, 0) + 1
            if entry.problems and on_skipped is not None:
                on_skipped(entry)
            continue
        yield entry.record


def read_path(
    path: Path, *, source: str, ignore_unknown: bool = False, skipped: dict[str, int] | None = None
) -> Iterator[Record]:
    """Records from one file or, recursively, a directory's files (sorted, deterministic), archives
    included. `skipped` counts what is passed over by kind (WARC revisits, files of unknown type)."""
    yield from read_inputs([str(path)], source=source, ignore_unknown=ignore_unknown, skipped=skipped)


def read_inputs(
    paths: Iterable[str],
    *,
    source: str,
    ignore_unknown: bool = False,
    skipped: dict[str, int] | None = None,
    follow_symlinks: bool = False,
    on_skipped: Callable[[Item], None] | None = None,
) -> Iterator[Record]:
    """Records from every path in order, every format (WARC/ARC too); `-` reads JSON lines from stdin.
    Symlinks out of an input directory are skipped (and said, through `on_skipped`) unless `follow_symlinks`."""
    yield from read_all(
        paths,
        source=source,
        skipped=skipped,
        ignore_unknown=ignore_unknown,
        follow_symlinks=follow_symlinks,
        on_skipped=on_skipped,
    )
