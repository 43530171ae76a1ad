"""Dead letters for the operator: which reasons are the input's fault (not worth a retry), filtering and
listing them, closing them with a note (kept for audit), and waiting for a retried article's outcome.
The CLI (`workers/cli/dead_letters.py`) prints; this module decides.
"""

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from workers.core.errors import PermanentError
from workers.core.settings import Settings
from workers.db import repo
from workers.db.engine import transaction
from workers.db.models import ArticleRow, DeadLetterNoteRow, DeadLetterRow, RawArticleRow
from workers.runtime.pipeline import STAGE_NAMES

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


def without_class(error_class: str | None, message: str | None) -> str | None:
    """The message without a leading `ErrorClass: ` when it repeats `error_class` (errors are recorded
    as `Class: message`; shown beside the class, that reads `TooDeep: TooDeep: ...`). Pure."""
    if message and error_class and message.startswith(f"{error_class}: "):
        return message[len(error_class) + 2 :]
    return message


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
        "message": without_class(row.error_class, row.message),
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
