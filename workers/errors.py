"""The two kinds of failure (STYLE.md 6) and the reason codes that go with them.

A `PermanentError` is bad input: retrying cannot help, so the task records a dead letter and
stops. A `TransientError` is the world being briefly unavailable (broker, database): the task
retries it with exponential backoff and jitter, and dead-letters it only when retries run out.
"""


class NewsflowError(Exception):
    """Base for every error newsflow raises on purpose; `reason` is a short snake_case code."""

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class PermanentError(NewsflowError):
    """Bad input: never retried, always dead-lettered with its reason."""

    reason = "invalid"


class NoContent(PermanentError):
    """Cleaning found no article text."""

    reason = "no_content"


class NotHtml(PermanentError):
    """A body declared as HTML is something else (a PDF, binary data)."""

    reason = "not_html"


class TooLarge(PermanentError):
    """Input beyond a size guard."""

    reason = "too_large"


class TooDeep(PermanentError):
    """Markup nested beyond the depth guard."""

    reason = "too_deep"


class MissingInput(PermanentError):
    """A stage's input record does not exist (a message for an unknown article)."""

    reason = "missing_input"


class TransientError(NewsflowError):
    """The broker or the database is briefly unavailable: retried with backoff."""

    reason = "transient"


class ModelUnavailable(PermanentError):
    """The configured spaCy model is not installed (fix NEWSFLOW_TAGGER_MODEL, then `newsflow retry`)."""

    reason = "model_unavailable"
