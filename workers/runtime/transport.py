"""kombu's Redis transport, refusing an oversized message before it is parsed (`broker_transport`).

kombu pops a message from its Redis list and parses the whole envelope (JSON around the base64 body)
before Celery sees it: a 100 MB message became some 600 MB in the worker's main process (the reply,
its text, the parsed envelope, the decoded body), above a worker's memory limit. Here a message
longer than `ENVELOPE_LIMIT` is cut down before parsing: its body is replaced by nothing, the rest
of the envelope (headers, properties: a few hundred bytes) is parsed as usual, and two headers say
how large it was and what it began with. The task's guard (`workers.runtime.tasks.strategy`) then
dead-letters it `invalid_message` by its size and acknowledges it, like any malformed message.
Everything else is kombu's own transport, unchanged (`redis://` URLs, options, reconnects).
"""

import base64
import binascii
import contextlib
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from schemas.limits import MAX_MESSAGE_BYTES

ENVELOPE_LIMIT = 2 * MAX_MESSAGE_BYTES
"""Largest raw Redis message parsed whole: a body at MAX_MESSAGE_BYTES in base64 (4/3) with its envelope."""
OVERSIZE_HEADER = "newsflow_oversize"
"""Header of a cut-down message: the size in bytes of the message as it was in Redis."""
EXCERPT_HEADER = "newsflow_excerpt"
"""Header of a cut-down message: its body's first 300 bytes (decoded from base64 where it was)."""
_BODY = b'"body": "'


def _loads(raw: bytes) -> Any:
    """kombu's JSON loads (its type hooks) of raw bytes."""
    return kombu_json.loads(raw.decode("utf-8"))  # type: ignore[no-untyped-call]


def cut_down(item: bytes) -> dict[str, Any] | None:
    """The envelope of an oversized raw message without its body, marked with its size and an excerpt;
    None when the envelope is not kombu's usual layout (then it is parsed whole, as kombu would)."""
    start = item.find(_BODY, 0, 64)
    if start < 0:
        return None
    begin = start + len(_BODY)
    end = item.find(b'"', begin)
    if end < 0:
        return None
    try:
        envelope: dict[str, Any] = _loads(item[:begin] + item[end:])
    except ValueError:
        return None
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    if not isinstance(headers, dict):
        return None
    head = item[begin : min(end, begin + 400)]
    if (envelope.get("properties") or {}).get("body_encoding") == "base64":
        with contextlib.suppress(binascii.Error, ValueError):
            head = base64.b64decode(head[: len(head) // 4 * 4])
    headers[OVERSIZE_HEADER] = str(len(item))
    headers[EXCERPT_HEADER] = head[:300].decode("utf-8", "replace")
    return envelope


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; a message above ENVELOPE_LIMIT is delivered cut down (`cut_down`)."""

    def _brpop_read(self, **options: Any) -> bool:
        # kombu 5.x's `_brpop_read`, with the size check before `loads`.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if dest__item:
                dest, item = dest__item
                dest = (dest.decode() if isinstance(dest, bytes) else str(dest)).rsplit(self.sep, 1)[0]
                self._queue_cycle.rotate(dest)
                envelope = cut_down(item) if len(item) > ENVELOPE_LIMIT else None
                if envelope is None:
                    envelope = _loads(item if isinstance(item, bytes) else str(item).encode())
                del item, dest__item  # the raw reply is not kept while the message is handled
                self.connection._deliver(envelope, dest)
                return True
            raise Empty()
        finally:
            setattr(self, "_in_poll", None)  # noqa: B010 -- kombu's attribute, typed there as a bool
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel` above; selected by Celery's `broker_transport`."""

    Channel = Channel
