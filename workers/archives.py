"""Read inputs as positioned items, WARC archives included, so a backfill can checkpoint and resume.

- WARC / WARC.gz (warcio): each HTML `response` record with status 200 becomes a raw article with its
  target URI, the WARC date as `fetched_at` and the host (without `www.`) as source; revisits,
  non-HTML, non-200 and non-response records are skipped and counted by kind.
- `.jsonl`/`.ndjson` (optionally `.gz`): one raw article per line, as `workers.readers` reads them.
- everything else `workers.readers` supports (`.txt`, `.html`, `.json`...) as one item per file.

Every item carries the offset where the next item starts (bytes into the WARC file, or into the
decompressed JSON lines stream), so `items(path, start=offset)` continues exactly after it.
Directories are walked recursively in sorted order; unsupported files are reported, never silently
skipped.
"""

import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast
from urllib.parse import urlsplit

import pydantic

from schemas import RawArticle
from schemas.limits import MAX_BODY_BYTES
from workers import readers
from workers.readers import Problem, Record

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
        """The `workers.readers.Record` view of this item."""
        return Record(self.origin, self.article, self.problems)


def kind(path: Path) -> str:
    """warc, jsonl, file (one record) or unsupported."""
    name = path.name.lower()
    if name.endswith(WARC_SUFFIXES):
        return "warc"
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return "file" if readers.is_supported(path) else "unsupported"


def files(paths: Iterable[str]) -> Iterator[Path]:
    """Input files in order; directories expanded recursively (sorted) to the files we can read."""
    for item in paths:
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and kind(p) != "unsupported")
        else:
            yield path


def items(path: Path, *, source: str, start: int = 0) -> Iterator[Item]:
    """The items of one file from byte offset `start` (0: the beginning)."""
    if not path.exists():
        yield Item(str(path), 0, problems=(Problem("(file)", "no such file or directory"),))
        return
    found = kind(path)
    if found == "warc":
        yield from warc_items(path, start=start)
    elif found == "jsonl":
        yield from jsonl_items(path, start=start)
    elif found == "file":
        if start == 0:
            size = path.stat().st_size
            for record in readers.read_path(path, source=source):
                yield Item(record.origin, size, record.article, record.problems)
    else:
        supported = ", ".join((*readers.SUPPORTED, *WARC_SUFFIXES))
        yield Item(
            str(path), 0, problems=(Problem("(file)", f"unsupported file type; use one of {supported}"),)
        )


def jsonl_items(path: Path, *, start: int = 0) -> Iterator[Item]:
    """JSON lines from offset `start` of the (decompressed) stream; blank lines skipped.

    Origins are `FILE:LINE` read from the start of the file, `FILE@OFFSET` when resumed mid-file (the
    line number is not known without reading what came before).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with cast(IO[bytes], opener(path, "rb")) as handle:
        if start:
            handle.seek(start)
        offset, number = start, 0
        while True:
            line = handle.readline()
            if not line:
                return
            number += 1
            offset += len(line)
            if line.strip():
                where = f"{path}@{offset - len(line)}" if start else f"{path}:{number}"
                record = readers._json_record(where, line)
                yield Item(record.origin, offset, record.article, record.problems)


def source_of(url: str) -> str:
    """The source name for an archived page: its host, lower case, without a leading `www.`."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.") or "unknown"


def warc_items(path: Path, *, start: int = 0) -> Iterator[Item]:
    """Items of a WARC (or ARC) file, plain or gzipped per record, from record offset `start`."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    with path.open("rb") as handle:
        handle.seek(start)
        records = ArchiveIterator(handle, arc2warc=True)
        try:
            for record in records:
                item = _warc_item(record)
                # Once the record is read to its end warcio knows where it started and where the next
                # one starts (absolute offsets: it asked the file where it was).
                records.read_to_end()
                yield Item(
                    f"{path}@{records.get_record_offset()}",
                    records.offset,
                    item.article,
                    item.problems,
                    item.skipped,
                )
        except ArchiveLoadFailed as exc:
            yield Item(
                f"{path}", path.stat().st_size, problems=(Problem("(archive)", str(exc).strip()[:300]),)
            )


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
    charset = "utf-8"
    if "charset=" in content_type:
        charset = content_type.split("charset=")[-1].split(";")[0].strip().strip("\"'") or "utf-8"
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    try:
        article = RawArticle(
            source=source_of(url),
            body=text,
            url=url or None,
            fetched_at=_warc_date(headers.get_header("WARC-Date")),
            content_type="text/html",
        )
    except pydantic.ValidationError as exc:
        return Item(origin, 0, problems=readers._problems(exc))
    return Item(origin, 0, article)


def _warc_date(value: str | None) -> datetime | None:
    """The WARC-Date (ISO 8601, UTC) as a datetime; None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_all(paths: Iterable[str], *, source: str, skipped: dict[str, int] | None = None) -> Iterator[Record]:
    """Every record of every path (`-` is stdin), WARC files included; skipped records counted by kind."""
    for item in paths:
        if item == "-":
            yield from readers.read_inputs(["-"], source=source)
            continue
        for path in files([item]):
            for entry in items(path, source=source):
                if entry.skipped is not None:
                    if skipped is not None:
                        skipped[entry.skipped] = skipped.get(entry.skipped, 0) + 1
                    continue
                yield entry.record
