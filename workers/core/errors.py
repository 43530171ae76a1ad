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


class InvalidMessage(PermanentError):
    """A queued message that is not a stage message: wrong shape, argument count or keyword."""

    reason = "invalid_message"


class DatabaseRejected(PermanentError):
    """The database refused the statement itself (a constraint, a value it cannot hold, a statement too
    large): the same input fails the same way again, so it is not retried."""

    reason = "database_rejected"


class DeadLettered(Exception):
    """Raised by a stage task after it recorded a dead letter: Celery marks the task FAILURE (Flower lists it
    as failed), acknowledges the message and never retries it. The arguments are positional so the
    exception survives Celery's JSON serialisation of failures."""

    def __init__(self, stage: str, reason: str, dead_letter_id: int | None) -> None:
        super().__init__(stage, reason, dead_letter_id)
        self.stage = stage
        self.reason = reason
        self.dead_letter_id = dead_letter_id

    def __str__(self) -> str:
        return f"dead-lettered at {self.stage}: {self.reason} (dead letter {self.dead_letter_id})"


_DETERMINISTIC_DB = (
    "too many sql variables",  # SQLite: more parameters than it allows in one statement
    "number of parameters must be between",  # psycopg: PostgreSQL's 65,535 parameter limit
    "string or blob too big",
    "statement too big",
    "too big",
    "cannot contain nul",  # a NUL character in a text value
    "invalid byte sequence",
    "out of range",
)


def is_deterministic_db_error(exc: BaseException) -> bool:
    """True for a database error that the same statement will hit again (not an outage)."""
    import sqlalchemy.exc

    if isinstance(
        exc,
        sqlalchemy.exc.IntegrityError | sqlalchemy.exc.DataError | sqlalchemy.exc.ProgrammingError,
    ):
        return True
    if isinstance(exc, sqlalchemy.exc.StatementError):
        text = describe(exc).lower()
        return any(marker in text for marker in _DETERMINISTIC_DB)
    return False


_TIMEOUT_SQLSTATES = {
    "57014": "statement_timeout",  # query_canceled: statement_timeout (or a cancel request)
    "55P03": "lock_timeout",  # lock_not_available: lock_timeout, NOWAIT
    "25P03": "idle_in_transaction_session_timeout",  # the server ended a session idle in a transaction
}


def db_timeout(exc: BaseException) -> str | None:
    """Which PostgreSQL session timeout ended the statement behind `exc` (None if none did). Such an error
    is transient (STYLE.md 19): the wait was bounded by the server, the same statement may pass later."""
    inner = getattr(exc, "orig", None) or exc
    return _TIMEOUT_SQLSTATES.get(getattr(inner, "sqlstate", None) or "")


TRACEBACK_LINES = 12
"""Lines kept from the end of a traceback (the raise site and its callers)."""


def traceback_head(exc: BaseException | None) -> str | None:
    """The last lines of `exc`'s formatted traceback (with its cause), or None."""
    import traceback

    if exc is None:
        return None
    try:
        lines = "".join(traceback.format_exception(exc)).rstrip().splitlines()
    except Exception:  # a traceback that cannot be formatted is not worth failing for
        return None
    return "\n".join(lines[-TRACEBACK_LINES:])[:4000]


def describe(exc: BaseException, limit: int = 300) -> str:
    """`ClassName: first line of the message`, with SQLAlchemy's statement and parameters left out, so no
    article text reaches a log line."""
    inner = getattr(exc, "orig", None) or exc
    first = (str(inner).strip().splitlines() or [""])[0]
    first = first.split("[SQL:", 1)[0].split("[parameters:", 1)[0].strip()
    return f"{type(inner).__name__}: {first[:limit]}" if first else type(inner).__name__


def reason_of(exc: BaseException) -> str:
    """The dead-letter reason for an exception that failed one article: its own code if it is a
    `PermanentError`, `database_rejected` for a statement the database refuses deterministically,
    else `unexpected`."""
    if isinstance(exc, PermanentError):
        return exc.reason
    if is_deterministic_db_error(exc):
        return DatabaseRejected.reason
    return "unexpected"


def raised_inside(exc: BaseException, package: str) -> bool:
    """True when a frame of `exc`'s traceback is in `package` (its folder name: `kombu`, `sqlalchemy`)."""
    marker = f"/{package}/"
    tb = exc.__traceback__
    while tb is not None:
        if marker in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
            return True
        tb = tb.tb_next
    return False
