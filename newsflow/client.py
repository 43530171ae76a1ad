"""`Client`: a typed client of the newsflow HTTP API (docs/guide/http.md)."""

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx

RETRIED = frozenset({429, 503})
"""Answers that mean "later": the batch is sent again after Retry-After seconds."""


class Error(Exception):
    """An answer the client does not retry (401, 403, 413, 400, ...) or retries gave up on: `status` and
    the server's `error` message (never the token)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RecordError:
    """A record the server refused: its index in the submitted iterable, and each field and reason."""

    index: int
    errors: tuple[tuple[str, str], ...]


@dataclass
class SubmitResult:
    """What `submit` did: the id of each accepted record by its index, the refused records, how many
    articles were new (not stored before) and how many times a batch waited on 429/503."""

    ids: dict[int, str] = field(default_factory=dict)
    errors: list[RecordError] = field(default_factory=list)
    new: int = 0
    retries: int = 0


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _batches(articles: Iterable[Mapping[str, Any]], size: int, max_bytes: int) -> Iterator[list[bytes]]:
    """The articles as JSON lines, grouped in lists of at most `size` lines and about `max_bytes` bytes."""
    batch: list[bytes] = []
    total = 0
    for article in articles:
        line = (json.dumps(article, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogatepass")
        if batch and (len(batch) >= size or total + len(line) > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(line)
        total += len(line)
    if batch:
        yield batch


class Client:
    """A connection to one newsflow server with one bearer token. Use it as a context manager, or call
    `close()`. Not shared between threads."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 120.0,
        max_retries: int = 20,
        max_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": "newsflow-client/1"},
            timeout=timeout,
            transport=transport,
        )
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._sleep = sleep

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, int]:
        """The answer, after waiting out 429/503 (Retry-After, capped at `max_wait`) up to `max_retries`
        times, and the number of retries; Error for any other 4xx/5xx."""
        retries = 0
        while True:
            response = self._http.request(method, path, **kwargs)
            if response.status_code in RETRIED and retries < self.max_retries:
                retries += 1
                self._sleep(min(_retry_after(response, 1.0), self.max_wait))
                continue
            if response.status_code >= 400:
                try:
                    message = str(response.json().get("error", response.text))
                except (ValueError, AttributeError):
                    message = response.text[:300]
                raise Error(response.status_code, message)
            return response, retries

    def submit(
        self,
        articles: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 500,
        batch_bytes: int = 8 * 1024 * 1024,
    ) -> SubmitResult:
        """Send raw articles (dicts as `newsflow schema` describes them) as JSON lines, in batches of at
        most `batch_size` records and about `batch_bytes` bytes (a record bigger than that goes alone);
        each batch is retried on 429/503 after the server's Retry-After. Safe to repeat: an article sent
        twice is stored once. Indexes in the result count from 0 over `articles`."""
        result = SubmitResult()
        offset = 0
        for lines in _batches(articles, batch_size, batch_bytes):
            response, retries = self._send(
                "POST",
                "/v1/articles",
                content=b"".join(lines),
                headers={"Content-Type": "application/x-ndjson"},
            )
            result.retries += retries
            answer = response.json()
            result.new += int(answer.get("new", 0))
            for record in answer["records"]:
                index = offset + int(record["index"])
                if "id" in record:
                    result.ids[index] = str(record["id"])
                else:
                    result.errors.append(
                        RecordError(
                            index, tuple((str(e["field"]), str(e["reason"])) for e in record["errors"])
                        )
                    )
            offset += len(lines)
        return result

    def get(self, article_id: str) -> dict[str, Any] | None:
        """One article as `newsflow show --json` prints it (`stored: false` while still in the pipeline),
        or None when no such article was submitted."""
        try:
            response, _ = self._send("GET", f"/v1/articles/{article_id}")
        except Error as exc:
            if exc.status == 404:
                return None
            raise
        found: dict[str, Any] = response.json()
        return found

    def changes(
        self, after: str | None = None, *, limit: int = 100, follow: bool = False, poll: float = 1.0
    ) -> Iterator[dict[str, Any]]:
        """Stored articles in store order after the cursor `after` (None: from the start), each with its
        `cursor`: keep the last one seen to resume. Ends when the feed is exhausted, or with `follow`
        waits `poll` seconds and asks again, for ever."""
        cursor = after or ""
        while True:
            response, _ = self._send("GET", "/v1/changes", params={"after": cursor, "limit": limit})
            page = response.json()
            yield from page["articles"]
            cursor = str(page["next"])
            if not page["articles"]:
                if not follow:
                    return
                self._sleep(poll)
