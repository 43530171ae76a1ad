"""Where articles stand: the terminal states, and waiting until a set of articles reached one.

An article ends in exactly one terminal state. They are declared once, in `TERMINAL_STATES`; `--wait`
(enqueue, backfill, reprocess) and `status` count them from here. A state is a name and the query that
finds the articles in it, so a new state (the page-kind room's `not_article`) is one more entry.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, distinct, func, select, true
from sqlalchemy.orm import Session

from workers.db.models import ArticleRow, DeadLetterRow, NotArticleRow, RawArticleRow, StageJournalRow
from workers.runtime.pipeline import STAGE_NAMES


@dataclass(frozen=True)
class TerminalState:
    """A terminal state: its name and how to find which of some article ids are in it since a time.

    `find(ids, since)` returns a query of (article id,) rows; `ids` None means every article, `since`
    None means "ever"."""

    name: str
    find: Callable[[Sequence[str] | None, datetime | None], Any]


def _stored_since(ids: Sequence[str] | None, since: datetime | None) -> ColumnElement[bool]:
    """The article row exists and, with `since`, the store stage ran after it (an upsert that changes
    nothing keeps stored_at, so the journal says when the store stage last finished)."""
    condition: ColumnElement[bool] = ArticleRow.id.in_(ids) if ids is not None else true()
    if since is None:
        return condition
    stored_again = (
        select(StageJournalRow.id)
        .where(
            StageJournalRow.article_id == ArticleRow.id,
            StageJournalRow.stage == STAGE_NAMES[-1],
            StageJournalRow.event == "ok",
            StageJournalRow.ended_at >= since,
        )
        .exists()
    )
    return condition & ((ArticleRow.stored_at >= since) | stored_again)


DUPLICATE_VERDICTS = ("exact_duplicate", "near_duplicate")


def _stored(ids: Sequence[str] | None, since: datetime | None) -> Any:
    return select(ArticleRow.id).where(
        _stored_since(ids, since), ArticleRow.status.not_in(DUPLICATE_VERDICTS)
    )


def _duplicate(ids: Sequence[str] | None, since: datetime | None) -> Any:
    return select(ArticleRow.id).where(_stored_since(ids, since), ArticleRow.status.in_(DUPLICATE_VERDICTS))


def _dead_lettered(ids: Sequence[str] | None, since: datetime | None) -> Any:
    query = select(DeadLetterRow.article_id).where(
        DeadLetterRow.article_id.is_not(None), DeadLetterRow.retried_at.is_(None)
    )
    if ids is not None:
        query = query.where(DeadLetterRow.article_id.in_(ids))
    if since is not None:
        query = query.where(DeadLetterRow.last_failed_at >= since)
    return query


def _not_article(ids: Sequence[str] | None, since: datetime | None) -> Any:
    query = select(NotArticleRow.article_id)
    if ids is not None:
        query = query.where(NotArticleRow.article_id.in_(ids))
    if since is not None:
        query = query.where(NotArticleRow.decided_at >= since)
    return query


TERMINAL_STATES: tuple[TerminalState, ...] = (
    TerminalState("stored", _stored),
    TerminalState("duplicate", _duplicate),
    TerminalState("dead_lettered", _dead_lettered),
    TerminalState("not_article", _not_article),
)
"""Every state an article can end in; the first that holds names the article's state."""

CHUNK = 500
"""Ids per query (bind-parameter limits)."""


def terminal(session: Session, ids: Sequence[str], since: datetime | None = None) -> dict[str, str]:
    """{article id: terminal state} for those of `ids` that reached one (since `since`) (read only)."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        for state in TERMINAL_STATES:
            for (article_id,) in session.execute(state.find(chunk, since)).all():
                found.setdefault(article_id, state.name)
    return found


def totals(session: Session) -> dict[str, int]:
    """Articles in each terminal state, over the whole database (read only)."""
    found = {}
    for state in TERMINAL_STATES:
        ids = state.find(None, None).subquery()
        found[state.name] = int(session.execute(select(func.count(distinct(ids.c[0])))).scalar_one())
    return found


def oldest_waiting(session: Session) -> datetime | None:
    """When the oldest article still on its way (received, in no terminal state) was received; None when
    none is waiting (read only)."""
    query = select(func.min(RawArticleRow.received_at))
    for state in TERMINAL_STATES:
        query = query.where(RawArticleRow.id.not_in(state.find(None, None)))
    value: datetime | None = session.execute(query).scalar_one()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite gives naive UTC times
    return value


@dataclass
class Progress:
    """How many of the waited-for articles reached each terminal state, and how many are still on the way."""

    total: int
    by_state: dict[str, int] = field(default_factory=lambda: {s.name: 0 for s in TERMINAL_STATES})

    @property
    def done(self) -> int:
        """Articles in a terminal state."""
        return sum(self.by_state.values())

    @property
    def pending(self) -> int:
        """Articles not yet in a terminal state."""
        return self.total - self.done

    def line(self) -> str:
        """`3 of 4 done (stored 2, duplicate 1, dead_lettered 0), 1 still running`."""
        states = ", ".join(f"{name} {n}" for name, n in self.by_state.items())
        line = f"{self.done} of {self.total} done ({states})"
        return line + (f", {self.pending} still running" if self.pending else "")


def wait(
    transaction: Callable[[], Any],
    ids: Sequence[str],
    *,
    since: datetime | None = None,
    timeout: float | None = None,
    poll_s: float = 0.5,
    on_progress: Callable[[Progress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Poll until every article of `ids` reached a terminal state (since `since`), or `timeout` seconds
    passed; the last count. `transaction()` yields a session. Read only."""
    wanted = list(dict.fromkeys(ids))
    deadline = None if timeout is None else time.monotonic() + timeout
    finished: dict[str, str] = {}
    while True:
        left = [i for i in wanted if i not in finished]
        if left:
            with transaction() as session:
                finished.update(terminal(session, left, since))
        progress = Progress(total=len(wanted))
        for state in finished.values():
            progress.by_state[state] += 1
        if on_progress is not None:
            on_progress(progress)
        if progress.pending == 0 or (deadline is not None and time.monotonic() >= deadline):
            return progress
        sleep(poll_s)
