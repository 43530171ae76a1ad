"""The small messages that travel between stages: ids, never documents."""

from typing import Annotated

from pydantic import Field, StringConstraints, TypeAdapter

from schemas._base import Frozen
from schemas.limits import ARTICLE_ID_PATTERN

ArticleId = Annotated[str, StringConstraints(pattern=ARTICLE_ID_PATTERN)]


class StageMessage(Frozen):
    """Work for one stage: which article, and the trace it belongs to."""

    article_id: ArticleId
    trace_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


STAGE_MESSAGE = TypeAdapter(StageMessage)

MAX_BATCH = 64
"""Most articles one stage message may carry (`NEWSFLOW_BATCH_SIZE` is at most this)."""


class StageBatch(Frozen):
    """Work for one stage on a small batch of articles (STYLE.md 17): each keeps its own trace, and a
    failure belongs to one article. A batch of one is the same work as a `StageMessage`."""

    articles: Annotated[list[StageMessage], Field(min_length=1, max_length=MAX_BATCH)]


STAGE_BATCH = TypeAdapter(StageBatch)
