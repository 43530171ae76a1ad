"""What the operator commands share: broker figures for `status`, dead-letter queries and actions,
selecting articles in chunks, and replaying them from a stage, to the workers (throttled) or
in-process. The CLI modules in `workers/cli/` print; this module decides.
"""

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, select

from schemas import StageMessage
from workers.core import keys
from workers.core.settings import Settings
from workers.db.engine import transaction
from workers.db.models import (
    ArticleRow,
    RawArticleRow,
    StageResultRow,
)
from workers.ops.trace import parse_time
from workers.runtime import embedded
from workers.runtime.broker import wait_below
from workers.runtime.pipeline import STAGE_NAMES, Context, current_version

THROTTLE_EVERY = 100
"""Messages sent between two looks at the queue depth."""

UNACKED_KEY = "unacked"
"""kombu's Redis transport keeps every delivered, not yet acknowledged message in this hash."""


# --- broker ------------------------------------------------------------------------------------------


def articles_in(message: Any) -> int:
    """Articles one queued kombu message carries: a micro-batch's length, 1 for a one-article message,
    1 when the body cannot be read (a message is at least one article of work). Pure."""
    import base64

    try:
        body: Any = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        first = args[0]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return 1
    if isinstance(first, dict) and isinstance(first.get("articles"), list):
        return max(1, len(first["articles"]))
    return 1


SCAN_LIMIT = 100_000
"""Queued messages `status` reads per stage to count their articles; beyond it, each counts as one."""


def broker_figures(client: Any) -> dict[str, dict[str, int]]:
    """Per stage: messages and the articles they carry, queued, in flight (delivered, not yet
    acknowledged) and scheduled retries (delivered with a future ETA, held by a worker until then)."""
    figures: dict[str, Counter[str]] = {stage: Counter() for stage in STAGE_NAMES}
    for stage in STAGE_NAMES:
        name = keys.queue_name(stage)
        length = int(client.llen(name))
        figures[stage]["queued"] = length
        read = client.lrange(name, 0, SCAN_LIMIT - 1) if length else []
        articles = 0
        for raw in read:
            try:
                articles += articles_in(json.loads(raw))
            except ValueError:
                articles += 1
        figures[stage]["queued_articles"] = articles + max(0, length - len(read))
    by_queue = {keys.queue_name(stage): stage for stage in STAGE_NAMES}
    now = datetime.now(UTC)
    for raw in client.hvals(UNACKED_KEY):
        try:
            message, _exchange, routing_key = json.loads(raw)
            headers = message.get("headers") or {}
        except (ValueError, TypeError, AttributeError):
            continue
        stage = by_queue.get(routing_key) or str(headers.get("task", "")).removeprefix(f"{keys.PREFIX}.")
        if stage not in STAGE_NAMES:
            continue
        eta = headers.get("eta")
        kind = "scheduled_retries" if eta and parse_time(eta) > now else "in_flight"
        figures[stage][kind] += 1
        figures[stage][f"{kind}_articles"] += articles_in(message)
    fields = ("queued", "in_flight", "scheduled_retries")
    return {
        stage: {key: counts[key] for name in fields for key in (name, f"{name}_articles")}
        for stage, counts in figures.items()
    }


# --- dead letters ------------------------------------------------------------------------------------


# --- selecting articles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which stored articles a `reprocess` means (every filter optional; all of them must hold)."""

    start: str
    stale: bool = False
    version: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    date_field: str = "published"
    verdict: str | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.stale or self.version or self.source or self.since or self.until or self.verdict)


def _selection_query(sel: Selection, after: str, limit: int) -> Select[Any]:
    query = select(RawArticleRow.id).where(RawArticleRow.id > after)
    if sel.source:
        query = query.where(RawArticleRow.source == sel.source)
    if sel.stale or sel.version:
        wanted = current_version(sel.start) if sel.stale else sel.version
        record = and_(
            StageResultRow.article_id == RawArticleRow.id,
            StageResultRow.stage == sel.start,
            StageResultRow.version != wanted if sel.stale else StageResultRow.version == wanted,
        )
        query = query.where(exists().where(record))
    if sel.verdict or sel.since or sel.until:
        query = query.join(ArticleRow, ArticleRow.id == RawArticleRow.id)
        if sel.verdict:
            query = query.where(ArticleRow.status == sel.verdict)
        column = ArticleRow.published_at if sel.date_field == "published" else ArticleRow.stored_at
        if sel.since:
            query = query.where(column >= sel.since)
        if sel.until:
            query = query.where(column < sel.until)
    return query.order_by(RawArticleRow.id).limit(limit)


def select_articles(settings: Settings, sel: Selection, *, after: str, chunk: int) -> Iterator[str]:
    """Article ids matching `sel` in id order after `after`, read in keyset pages of `chunk`."""
    cursor = after
    while True:
        with transaction(settings.database_url) as session:
            page: list[str] = list(session.scalars(_selection_query(sel, cursor, chunk)))
        yield from page
        if len(page) < chunk:
            return
        cursor = page[-1]


def count_selected(settings: Settings, sel: Selection, *, after: str) -> int:
    """How many articles `sel` matches (for the progress bar's total and ETA)."""
    query = _selection_query(sel, after, 2**62).order_by(None).limit(None).subquery()
    with transaction(settings.database_url) as session:
        return int(session.scalar(select(func.count()).select_from(query)) or 0)


def known_ids(settings: Settings, ids: Sequence[str]) -> set[str]:
    """Those of `ids` that name a raw article."""
    if not ids:
        return set()
    with transaction(settings.database_url) as session:
        return set(session.scalars(select(RawArticleRow.id).where(RawArticleRow.id.in_(list(ids)))))


def ids_by_prefix(settings: Settings, prefix: str, limit: int = 2) -> list[str]:
    """Up to `limit` raw article ids starting with `prefix`, in id order (one: the prefix is unique)."""
    with transaction(settings.database_url) as session:
        return list(
            session.scalars(
                select(RawArticleRow.id)
                .where(RawArticleRow.id.startswith(prefix, autoescape=True))
                .order_by(RawArticleRow.id)
                .limit(limit)
            )
        )


def verdicts() -> tuple[str, ...]:
    """The dedup verdict kinds `--verdict` accepts."""
    from typing import get_args

    from schemas import DedupVerdict

    kind = DedupVerdict.model_fields["kind"].annotation
    return tuple(get_args(kind)) or ("unique", "exact_duplicate", "near_duplicate", "revision")


def record_runs(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Journal operator replays (`retry`, `reprocess`) for `newsflow trace`."""
    from workers.runtime import journal

    journal.record_actions(settings.database_url, rows)


# --- replaying ---------------------------------------------------------------------------------------


@dataclass
class Replayer:
    """Runs articles again from a stage: in-process (`embedded`) or enqueued with backpressure."""

    settings: Settings
    embedded: bool
    on_wait: Callable[[float], None] | None = None
    sent: int = 0
    failed: int = 0
    waited_s: float = 0.0
    _app: Any = field(default=None, init=False)
    _redis: Any = field(default=None, init=False)

    def replay(self, msg: StageMessage, start: str) -> bool:
        """Replay one article from `start`; False if it failed again (embedded mode only)."""
        if self.embedded:
            ok = embedded.process(Context(self.settings), msg, start=start) is None
            self.failed += not ok
            self.sent += 1
            return ok
        import redis

        from workers.runtime.broker import send
        from workers.runtime.celery_app import app

        if self._redis is None:
            self._app = app
            self._redis = redis.Redis.from_url(
                self.settings.broker_url.unicode_string(), socket_connect_timeout=5
            )
        if self.sent % THROTTLE_EVERY == 0:
            self.waited_s += wait_below(
                self._redis, self.settings.high_water_mark, stage=start, on_wait=self.on_wait
            )
        send(self._app, msg, start=start)
        self.sent += 1
        return True


def filter_time(value: str | None) -> datetime | None:
    """A --since/--until value: an ISO date or time (UTC when no zone), or a relative `30m`, `6h`, `2d`."""
    if value is None:
        return None
    text = value.strip()
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if text[-1:] in units and text[:-1].isdigit():
        from datetime import timedelta

        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"not a time: {value!r}; use an ISO date (2026-11-30), time (2026-11-30T12:00) or 30m, 6h, 2d"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
