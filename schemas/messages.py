"""The small messages that travel between stages: ids, never documents."""

from typing import Annotated

from pydantic import StringConstraints, TypeAdapter

from schemas._base import Frozen
from schemas.limits import ARTICLE_ID_PATTERN

ArticleId = Annotated[str, StringConstraints(pattern=ARTICLE_ID_PATTERN)]


class StageMessage(Frozen):
    """Work for one stage: which article, and the trace it belongs to."""

    article_id: ArticleId
    trace_id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


STAGE_MESSAGE = TypeAdapter(StageMessage)
