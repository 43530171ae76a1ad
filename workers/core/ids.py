"""Deterministic ids: the same raw article always gets the same id, so resubmitting it is a no-op."""

import hashlib
import json
import uuid

from schemas import RawArticle


def article_id(raw: RawArticle) -> str:
    """32 hex characters from the source, URL and body (not fetch time): equal submissions, equal ids."""
    identity = json.dumps([raw.source, raw.url, raw.body], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def new_trace_id() -> str:
    """A fresh trace id for one submission, carried through every stage's logs."""
    return uuid.uuid4().hex
