"""Read raw articles from files, directories and stdin, validating each against `RawArticle`.

Supported: `.txt` text dumps, `.html`/`.htm` pages, `.jsonl` (one raw article per line) and
`.json` (one object), each optionally gzipped (`.gz`); directories are read recursively; `-`
reads JSON lines from stdin. Every record comes back as a `Record`: either a valid article
or the place (`file:line`) and pydantic's reasons why it is not one.
"""

import gzip
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import pydantic

from schemas import RawArticle
from schemas.limits import MAX_BODY_BYTES

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


def _decode(data: bytes) -> str:
    # Invalid UTF-8 is replaced, not fatal: a scraped page with one bad byte is still an article.
    return data.decode("utf-8", errors="replace")


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
        with _open(path, gz) as handle:
            if suffix == ".json":
                yield _json_record(f"{path}:1", handle.read())
            else:
                yield from read_jsonl(handle, name=str(path))
        return
    content_type = TEXT_SUFFIXES.get(suffix)
    if content_type is None:
        yield Record(
            str(path), None, (Problem("(file)", f"unsupported file type; use one of {', '.join(SUPPORTED)}"),)
        )
        return
    with _open(path, gz) as handle:
        data = handle.read(MAX_BODY_BYTES + 1)
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


def read_jsonl(handle: IO[bytes], *, name: str) -> Iterator[Record]:
    """Records from JSON lines (blank lines skipped), each numbered `name:line`."""
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield _json_record(f"{name}:{number}", line)


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
