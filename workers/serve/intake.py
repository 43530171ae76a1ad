"""A submission's body in, records out: read within the size limit and the deadline, then split into raw
articles exactly as `newsflow enqueue` reads a file (the same validation, the same reasons), each record
with its position in the request."""

import io
import json
from collections.abc import AsyncIterator

import anyio

from workers.ingest.readers import Record, json_record, read_jsonl


class BodyError(Exception):
    """A body that cannot be read as a whole: `status` 400 (not JSON), 408 (too slow), 413 (too large)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(
    chunks: AsyncIterator[bytes], *, declared: str | None, limit: int, deadline_s: float
) -> bytes:
    """The whole body, read chunk by chunk and never held past `limit` bytes (413 as soon as it would be,
    or at once when Content-Length says so); 408 when it has not all arrived within `deadline_s`."""
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BodyError(400, "Content-Length is not a number") from None
        if size > limit:
            raise BodyError(413, f"the body is {size} bytes, the limit is {limit} bytes")
    body = bytearray()
    try:
        with anyio.fail_after(deadline_s):
            async for chunk in chunks:
                if len(body) + len(chunk) > limit:
                    raise BodyError(413, f"the body is more than {limit} bytes, the limit")
                body += chunk
    except TimeoutError:
        raise BodyError(408, f"the body did not arrive within {deadline_s:g} seconds") from None
    return bytes(body)


def _array_records(text: str, ignore_unknown: bool) -> list[Record]:
    """The elements of a JSON array, each validated from its own JSON text as a line of a file is."""
    decoder = json.JSONDecoder()
    records: list[Record] = []
    pos = _skip(text, 1)
    if pos < len(text) and text[pos] == "]":
        return records
    while True:
        origin = f"request[{len(records)}]"
        try:
            _, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise BodyError(400, f"malformed JSON array at character {exc.pos}: {exc.msg}") from None
        records.append(
            json_record(origin, text[pos:end].encode("utf-8", "surrogatepass"), ignore_unknown=ignore_unknown)
        )
        pos = _skip(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]" and not text[pos + 1 :].strip():
            return records
        raise BodyError(400, f"malformed JSON array at character {pos}: expected ',' or ']'")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def parse(body: bytes, *, ignore_unknown: bool = False) -> list[Record]:
    """The records of a body: a JSON array of raw articles (positions `request[INDEX]`), or JSON lines
    (positions `request:LINE`, blank lines skipped, each line as `newsflow enqueue` reads one). A JSON
    array that is not well-formed is refused as a whole (BodyError 400): where its records start is
    unknown past the error. A single JSON object is one record."""
    try:
        head = body.lstrip()[:1]
        if head == b"[":
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BodyError(400, f"the body is not UTF-8 (byte {exc.start})") from None
            return _array_records(text.lstrip(), ignore_unknown)
        return list(read_jsonl(io.BytesIO(body), name="request", ignore_unknown=ignore_unknown))
    except RecursionError:
        raise BodyError(400, "JSON nested too deeply") from None
