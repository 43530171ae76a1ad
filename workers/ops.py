"""What the operator commands (`newsflow retry`, `newsflow reprocess`) share: selecting articles in
chunks and replaying them from a stage, to the workers (throttled) or in-process."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from schemas import StageMessage
from workers import embedded
from workers.db import repo
from workers.db.engine import transaction
from workers.pipeline import Context, current_version
from workers.settings import Settings

THROTTLE_EVERY = 100
"""Messages sent between two looks at the queue depth."""


def select_articles(settings: Settings, *, start: str, stale: bool, after: str, chunk: int) -> Iterator[str]:
    """Article ids in id order after `after`: all, or (stale) those whose `start` record is from another version."""
    version = current_version(start) if stale else None
    cursor = after
    while True:
        with transaction(settings.database_url) as session:
            page = repo.article_ids_after(session, stage=start, stale_for=version, after=cursor, limit=chunk)
        yield from page
        if len(page) < chunk:
            return
        cursor = page[-1]


@dataclass
class Replayer:
    """Runs articles again from a stage: in-process (`embedded`) or enqueued with backpressure."""

    settings: Settings
    embedded: bool
    sent: int = 0
    failed: int = 0
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
        from workers.producer import send, wait_below_high_water

        if self._redis is None:
            self._app, self._redis = app, redis.Redis.from_url(self.settings.broker_url.unicode_string())
        if self.sent % THROTTLE_EVERY == 0:
            wait_below_high_water(self._redis, self.settings.high_water_mark, stage=start)
        send(self._app, msg, start=start)
        self.sent += 1
        return True
