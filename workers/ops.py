"""What the operator commands share: broker figures for `status`, dead-letter queries and actions,
selecting articles in chunks, and replaying them from a stage, to the workers (throttled) or
in-process. The CLI modules in `workers/cli/` print; this module decides.
"""

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import Session

from schemas import StageMessage
from workers import embedded, keys
from workers.db import repo
from workers.db.engine import transaction
from workers.db.models import (
    ArticleRow,
    DeadLetterNoteRow,
    DeadLetterRow,
    RawArticleRow,
    StageResultRow,
)
from workers.errors import PermanentError
from workers.pipeline import STAGE_NAMES, Context, current_version
from workers.settings import Settings

THROTTLE_EVERY = 100
"""Messages sent between two looks at the queue depth."""

UNACKED_KEY = "unacked"
"""kombu's Redis transport keeps every delivered, not yet acknowledged message in this hash."""

RETRYABLE_AFTER_FIX = frozenset({"model_unavailable"})
"""Permanent for the message, but curable by configuration: `retry` accepts them without --force."""


def _permanent_reasons() -> frozenset[str]:
    reasons = {"invalid_message", "invalid"}
    stack: list[type[PermanentError]] = [PermanentError]
    while stack:
        cls = stack.pop()
        reasons.add(cls.reason)
        stack.extend(cls.__subclasses__())
    return frozenset(reasons - RETRYABLE_AFTER_FIX)


PERMANENT_REASONS = _permanent_reasons()
"""Dead-letter reasons that say the input itself is bad: retrying them fails again unless it changed."""


# --- broker ------------------------------------------------------------------------------------------


def broker_figures(client: Any) -> dict[str, dict[str, int]]:
    """Per stage: messages queued, in flight (delivered, not yet acknowledged) and scheduled retries
    (delivered with a future ETA, held by a worker until then)."""
    queued = {stage: int(client.llen(keys.queue_name(stage))) for stage in STAGE_NAMES}
    in_flight: Counter[str] = Counter()
    scheduled: Counter[str] = Counter()
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
        if eta and _parse_time(eta) > now:
            scheduled[stage] += 1
        else:
            in_flight[stage] += 1
    return {
        stage: {"queued": queued[stage], "in_flight": in_flight[stage], "scheduled_retries": scheduled[stage]}
        for stage in STAGE_NAMES
    }


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- dead letters ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters a `dead-letters list` or `retry` means."""

    ids: Sequence[int] = ()
    stage: str | None = None
    reason: str | None = None
    error_class: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_closed: bool = False
    limit: int = 1000


def check_stage(stage: str | None) -> None:
    """ValueError with the list of stages when `stage` is not one."""
    if stage is not None and stage not in STAGE_NAMES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_NAMES)}")


def dead_letter_query(flt: DeadLetterFilter) -> Select[DeadLetterRow, str]:
    """The dead letters matching `flt`, oldest first, each with its article's source."""
    query = select(DeadLetterRow, RawArticleRow.source).outerjoin(
        RawArticleRow, RawArticleRow.id == DeadLetterRow.article_id
    )
    if not flt.include_closed:
        query = query.where(DeadLetterRow.retried_at.is_(None))
    if flt.ids:
        query = query.where(DeadLetterRow.id.in_(flt.ids))
    if flt.stage:
        query = query.where(DeadLetterRow.stage == flt.stage)
    if flt.reason:
        query = query.where(DeadLetterRow.reason == flt.reason)
    if flt.error_class:
        query = query.where(DeadLetterRow.error_class == flt.error_class)
    if flt.source:
        query = query.where(RawArticleRow.source == flt.source)
    if flt.since:
        query = query.where(DeadLetterRow.last_failed_at >= flt.since)
    if flt.until:
        query = query.where(DeadLetterRow.first_failed_at < flt.until)
    return query.order_by(DeadLetterRow.id).limit(flt.limit)


def dead_letter_dict(
    row: DeadLetterRow, source: str | None, notes: Sequence[DeadLetterNoteRow] = ()
) -> dict[str, Any]:
    """A dead letter as `dead-letters list/show --json` print it."""
    try:
        payload: Any = json.loads(row.payload)
    except ValueError:
        payload = row.payload
    return {
        "id": row.id,
        "stage": row.stage,
        "reason": row.reason,
        "permanent": row.reason in PERMANENT_REASONS,
        "error_class": row.error_class,
        "message": row.message,
        "article_id": row.article_id,
        "trace_id": row.trace_id,
        "source": source,
        "attempts": row.attempts,
        "first_failed_at": _iso(row.first_failed_at),
        "last_failed_at": _iso(row.last_failed_at),
        "closed_at": _iso(row.retried_at),
        "payload": payload,
        "notes": [{"action": n.action, "note": n.note, "at": _iso(n.at)} for n in notes],
    }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def notes_for(session: Session, ids: Iterable[int]) -> dict[int, list[DeadLetterNoteRow]]:
    """The operator notes of these dead letters, oldest first."""
    found: dict[int, list[DeadLetterNoteRow]] = {}
    wanted = list(ids)
    if wanted:
        for note in session.scalars(
            select(DeadLetterNoteRow)
            .where(DeadLetterNoteRow.dead_letter_id.in_(wanted))
            .order_by(DeadLetterNoteRow.id)
        ):
            found.setdefault(note.dead_letter_id, []).append(note)
    return found


def close_dead_letters(session: Session, rows: Sequence[DeadLetterRow], *, action: str, note: str) -> None:
    """Close dead letters (kept for audit) and note who did what; the journal gets one row each."""
    if not rows:
        return
    repo.mark_retried(session, [r.id for r in rows])
    session.add_all(DeadLetterNoteRow(dead_letter_id=r.id, action=action, note=note) for r in rows)
    from workers.db.models import StageJournalRow

    now = datetime.now(UTC)
    session.add_all(
        StageJournalRow(
            article_id=r.article_id,
            stage=r.stage,
            event=action,
            started_at=now,
            ended_at=now,
            detail={"dead_letter_id": r.id, "note": note[:500]},
        )
        for r in rows
        if r.article_id
    )


@dataclass
class RetryOutcome:
    """What `retry --wait` saw after re-enqueuing: stored again, failed again, still running."""

    stored: int = 0
    failed_again: list[int] = field(default_factory=list)
    pending: int = 0


def wait_for_outcome(
    settings: Settings,
    replayed: Sequence[tuple[str, str, datetime]],
    *,
    timeout: float,
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> RetryOutcome:
    """Poll until each replayed (article, stage, since) is stored after `since` or dead-lettered again."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = RetryOutcome()
        with transaction(settings.database_url) as session:
            for article_id, stage, since in replayed:
                again = session.scalar(
                    select(DeadLetterRow.id)
                    .where(
                        DeadLetterRow.article_id == article_id,
                        DeadLetterRow.retried_at.is_(None),
                        DeadLetterRow.last_failed_at >= since,
                    )
                    .limit(1)
                )
                if again is not None:
                    outcome.failed_again.append(int(again))
                elif session.scalar(
                    select(ArticleRow.id).where(ArticleRow.id == article_id, ArticleRow.stored_at >= since)
                ) or _stored_unchanged(session, article_id, stage, since):
                    outcome.stored += 1
                else:
                    outcome.pending += 1
        if outcome.pending == 0 or time.monotonic() >= deadline:
            return outcome
        sleep(poll_s)


def _stored_unchanged(session: Session, article_id: str, stage: str, since: datetime) -> bool:
    """An upsert that changes nothing keeps stored_at; the journal says the store stage ran since."""
    from workers.db.models import StageJournalRow

    return (
        session.scalar(
            select(StageJournalRow.id)
            .where(
                StageJournalRow.article_id == article_id,
                StageJournalRow.stage == STAGE_NAMES[-1],
                StageJournalRow.event == "ok",
                StageJournalRow.ended_at >= since,
            )
            .limit(1)
        )
        is not None
    )


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
    from workers import journal

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

        from workers.celery_app import app
        from workers.producer import send

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


def wait_below(
    client: Any,
    high_water: int,
    *,
    stage: str = STAGE_NAMES[0],
    on_wait: Callable[[float], None] | None = None,
) -> float:
    """`producer.wait_below_high_water`, telling `on_wait` how long it has waited so far at each poll."""
    from workers.producer import wait_below_high_water

    waited = [0.0]

    def sleep(seconds: float) -> None:
        if on_wait is not None:
            on_wait(waited[0])
        time.sleep(seconds)
        waited[0] += seconds

    return wait_below_high_water(client, high_water, stage=stage, sleep=sleep)


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
