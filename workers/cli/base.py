"""What every command module shares: the typer app, consoles, common options, settings, safe rendering,
and the one place where configuration and connection errors become one line and an exit code.

Exit codes (documented in the README's Operations section):

| code | meaning |
|---|---|
| 0 | done |
| 1 | done, but some records were rejected or some articles failed (each reported) |
| 2 | usage error or bad input (unknown stage, missing file, malformed option) |
| 3 | configuration error (a setting or URL that cannot work) |
| 4 | a service is unreachable (Redis or PostgreSQL down, wrong host or port) |
| 5 | a service refused our credentials (wrong password or user) |
| 6 | the database schema is missing or out of date (run `newsflow db upgrade`) |
| 130 | interrupted (Ctrl-C); resumable commands say how to continue |
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

from schemas import RawArticle
from workers.ingest.readers import Record

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNREACHABLE = 4
EXIT_AUTH = 5
EXIT_SCHEMA = 6
EXIT_INTERRUPTED = 130


class OperatorError(Exception):
    """An error with a one-line message for the operator and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def describe(exc: BaseException) -> OperatorError | None:  # noqa: PLR0911 -- one return per kind of error
    """Classify configuration, connection and authentication errors; None for anything else (a bug)."""
    import pydantic
    import redis.exceptions
    import sqlalchemy.exc

    if isinstance(exc, OperatorError):
        return exc
    if isinstance(exc, pydantic.ValidationError) and exc.title == "Settings":
        problems = "; ".join(
            f"NEWSFLOW_{'_'.join(str(p) for p in e['loc']).upper() or '(settings)'}: {e['msg']}"
            for e in exc.errors()
        )
        return OperatorError(f"configuration error: {problems}; fix the environment or .env", EXIT_CONFIG)
    if isinstance(exc, sqlalchemy.exc.ArgumentError | sqlalchemy.exc.NoSuchModuleError):
        return OperatorError(
            f"configuration error: database URL: {_first_line(exc)}; set NEWSFLOW_DATABASE_URL (or --db) to "
            "sqlite:///FILE or postgresql+psycopg://USER@HOST/DB",
            EXIT_CONFIG,
        )
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return _database_error(exc)
    from workers.core.errors import raised_inside

    if isinstance(exc, ImportError) and raised_inside(exc, "sqlalchemy"):
        return OperatorError(
            f"configuration error: the database URL needs the driver {exc.name or _first_line(exc)}, which is not "
            "installed; install it, or set NEWSFLOW_DATABASE_URL (or --db) to sqlite:///FILE or "
            "postgresql+psycopg://USER@HOST/DB",
            EXIT_CONFIG,
        )
    if isinstance(exc, redis.exceptions.AuthenticationError) or (
        isinstance(exc, redis.exceptions.ResponseError) and _is_redis_auth(str(exc))
    ):
        return OperatorError(
            f"Redis refused the credentials: {_first_line(exc)}; check the password in NEWSFLOW_BROKER_URL "
            "(redis://:PASSWORD@HOST:PORT/DB)",
            EXIT_AUTH,
        )
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return OperatorError(
            f"Redis unreachable: {_first_line(exc)}; start Redis (deploy/redis.sh) or fix NEWSFLOW_BROKER_URL",
            EXIT_UNREACHABLE,
        )
    kombu_error = _kombu_error(exc)
    if kombu_error is not None:
        return kombu_error
    return None


def check_database_url(url: str) -> None:
    """Refuse a database URL that cannot work for newsflow before anything uses it: an in-memory SQLite
    database lasts one connection, and every command opens several (the schema would vanish)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # a malformed URL is reported where it is used, with its own message
        return
    if parsed.get_backend_name() == "sqlite" and (
        parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    ):
        raise OperatorError(
            "configuration error: an in-memory SQLite database lasts one connection and newsflow opens several, "
            "so nothing would be kept; use a file: sqlite:///newsflow.db",
            EXIT_CONFIG,
        )


def _kombu_error(exc: BaseException) -> OperatorError | None:
    try:
        import kombu.exceptions
    except ImportError:  # pragma: no cover - kombu comes with celery
        return None
    if isinstance(exc, kombu.exceptions.OperationalError):
        cause = exc.__cause__ or exc.__context__
        inner = describe(cause) if cause is not None else None
        if inner is not None:
            return inner
        if _is_redis_auth(str(exc)):
            return OperatorError(
                f"Redis refused the credentials: {_first_line(exc)}; check NEWSFLOW_BROKER_URL", EXIT_AUTH
            )
        return OperatorError(
            f"Redis unreachable: {_first_line(exc)}; start Redis or fix NEWSFLOW_BROKER_URL", EXIT_UNREACHABLE
        )
    return None


def _is_redis_auth(message: str) -> bool:
    lowered = message.lower()
    return any(
        marker in lowered
        for marker in ("wrongpass", "noauth", "invalid password", "invalid username", "authentication")
    )


_PG_AUTH = ("password authentication failed", "no password supplied", "authentication failed", "pg_hba.conf")
_PG_CONFIG = ("does not exist", "invalid dsn", "invalid connection option")
_SCHEMA = ("no such table", "undefinedtable", "relation", "no such column", "undefinedcolumn")


def _database_error(exc: BaseException) -> OperatorError:  # noqa: PLR0911 -- one return per kind of error
    import sqlalchemy.exc

    orig = getattr(exc, "orig", None) or exc
    message = _first_line(orig)
    lowered = f"{type(orig).__name__} {orig}".lower()
    where = _database_where(exc)
    from workers.ingest.producer import DISK_FULL

    if any(marker in lowered for marker in DISK_FULL):
        return OperatorError(
            f"the database cannot write{where}: its disk is full: {message}; free space on the database "
            "server (the database itself answers)",
            EXIT_UNREACHABLE,
        )
    if any(marker in lowered for marker in _PG_AUTH):
        return OperatorError(
            f"PostgreSQL refused the credentials{where}: {message}; check user and password in "
            "NEWSFLOW_DATABASE_URL",
            EXIT_AUTH,
        )
    if isinstance(exc, sqlalchemy.exc.ProgrammingError | sqlalchemy.exc.OperationalError) and any(
        marker in lowered for marker in _SCHEMA
    ):
        return OperatorError(
            f"database schema missing or out of date{where}: {message}; run `newsflow db upgrade`",
            EXIT_SCHEMA,
        )
    if ("database" in lowered and "does not exist" in lowered) or (
        "role" in lowered and "does not exist" in lowered
    ):
        return OperatorError(
            f"database configuration error{where}: {message}; create it or fix NEWSFLOW_DATABASE_URL",
            EXIT_CONFIG,
        )
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        if "unable to open database file" in lowered:
            return OperatorError(
                f"database file cannot be opened{where}: {message}; check the path in NEWSFLOW_DATABASE_URL",
                EXIT_CONFIG,
            )
        return OperatorError(
            f"database unreachable{where}: {message}; start PostgreSQL or fix NEWSFLOW_DATABASE_URL",
            EXIT_UNREACHABLE,
        )
    if any(marker in lowered for marker in _PG_CONFIG):
        return OperatorError(f"database configuration error{where}: {message}", EXIT_CONFIG)
    return OperatorError(f"database error{where}: {message}", EXIT_UNREACHABLE)


def _database_where(exc: BaseException) -> str:
    """' at HOST:PORT/DB' from the failing connection, without the password."""
    url = _state.get("database_url")
    if not url:
        return ""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:
        return ""
    if parsed.get_backend_name() == "sqlite":
        return f" at {parsed.database}"
    return f" at {parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return safe_line(text.splitlines()[0])[:300]


_state: dict[str, str] = {}
"""The database URL the running command uses, for error messages (never with its password)."""


def _metavar(param: Any) -> str:
    """The placeholder help shows for an option's value or an argument: its name (`--limit N` style),
    never a Python type such as `<list[str]>`."""
    name = (param.name or "value").upper()
    return {"IDS": "ID", "PATHS": "PATH"}.get(name, name)


def name_values(command: Any) -> None:
    """Give every option that takes a value, and every argument, a metavar named for what it holds,
    in `command` and all its subcommands (Typer would show the annotation's type name)."""
    for param in command.params:
        if (
            param.metavar is None
            and not getattr(param, "is_flag", False)
            and not getattr(param, "count", False)
        ):
            param.metavar = _metavar(param)
        if param.param_type_name == "argument":
            # Typer appends the annotation's type to an argument's help line whatever its metavar.
            param.display_type_rich = lambda ctx: ""
    for sub in getattr(command, "commands", {}).values():
        name_values(sub)


class Group(TyperGroup):
    """The root group: every command's configuration and connection errors become one line and an exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name_values(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            known = describe(exc)
            if known is None:
                raise
            err.print(f"newsflow: {known}", markup=False, highlight=False)
            raise typer.Exit(known.code) from None


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"newsflow {version('newsflow')}")
        except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
            typer.echo("newsflow (not installed)")
        raise typer.Exit()


app = typer.Typer(
    name="newsflow",
    cls=Group,
    help=(
        "News ingestion: raw scraped pages → clean → dedup → tag → store.\n\n"
        "Embedded: `newsflow run FILES` processes in-process into SQLite, no servers.\n"
        "Distributed: `newsflow enqueue FILES` feeds Redis; `newsflow worker` consumes it into PostgreSQL."
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: docstring paragraphs are rewrapped to the terminal
)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """News ingestion: raw scraped pages → clean → dedup → tag → store."""


PIPE_WIDTH = 10_000
"""Columns a table may take when the output is not a terminal: a pipe or file gets whole cells."""


class _Console(Console):
    """A console whose width is the terminal's, or PIPE_WIDTH when it writes to a pipe or file.

    rich assumes 80 columns without a terminal and wraps table cells to fit ("no_conte nt"); a piped
    table should keep every cell whole so that `grep`, `cut` and `awk` see what was stored.
    """

    @property
    def size(self) -> Any:
        from rich.console import ConsoleDimensions

        found = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, found.height)
        return found

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


out = _Console(soft_wrap=True)
err = _Console(stderr=True, soft_wrap=True)

Paths = Annotated[
    list[str],
    typer.Argument(
        help="Files or directories (.txt, .html, .htm, .json, .jsonl, .ndjson, .arc, .warc, each optionally "
        ".gz); "
        "'-' reads JSON lines on stdin.",
        show_default=False,
    ),
]
SourceOpt = Annotated[
    str,
    typer.Option(
        "--source",
        help="Source name for .txt/.html files (default: local; JSON lines and WARC carry their own).",
    ),
]
IgnoreUnknownOpt = Annotated[
    bool,
    typer.Option(
        "--ignore-unknown-fields",
        help="Drop JSON fields the raw-article schema does not know (a dump's page_id) instead of "
        "rejecting the record.",
    ),
]
"""`run`, `enqueue` and `backfill`: how to treat JSON fields the schema does not know."""

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: NEWSFLOW_DATABASE_URL, else sqlite:///newsflow.db)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one object per line) instead of a table.")]


def settings_for(db: str | None = None, **overrides: object) -> Any:
    """The settings (with --db and other overrides applied), logging configured for a CLI process."""
    from workers.core.logging import configure_logging
    from workers.core.settings import Settings, get_settings

    settings = get_settings()
    if db is not None or overrides:
        settings = Settings(**{**settings.model_dump(), **({"database_url": db} if db else {}), **overrides})
    _state["database_url"] = settings.database_url
    check_database_url(settings.database_url)
    configure_logging(settings.log_format, "WARNING" if settings.log_level == "INFO" else settings.log_level)
    return settings


def require_paths(paths: list[str], *, stdin: bool = True) -> None:
    """Exit 2 (a usage error) naming the first path that does not exist, before anything is read; `-`
    (stdin) is accepted when `stdin`. Other unreadable inputs (a FIFO, a broken link) are reported as
    rejected records by the readers."""
    from pathlib import Path

    from workers.ingest import readers

    for path in paths:
        if path == "-" and stdin:
            continue
        if readers.path_problem(Path(path)) == "no such file or directory":
            fail(f"{path}: no such file or directory", EXIT_USAGE)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr (control characters escaped: it may hold a file name) and exit with `code`."""
    err.print(safe_line(message), markup=False, highlight=False)
    raise typer.Exit(code)


# --- safe rendering: stored text never reaches the terminal raw -------------------------------------


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_line(value: object) -> str:
    """`value` as one line with every control or bidi-override character shown as an escape (no markup)."""
    text = "" if value is None else str(value)
    return _UNSAFE_RE.sub(lambda m: _escape_char(m.group()), text)


def safe_block(value: object) -> str:
    """Like `safe_line` but keeps newlines and tabs, for article text."""
    text = "" if value is None else str(value)
    return _UNSAFE_RE.sub(lambda m: m.group() if m.group() in "\n\t" else _escape_char(m.group()), text)


def plain(value: object, style: str = "") -> Text:
    """A rich Text for stored content: never parsed as markup, control characters escaped."""
    return Text(safe_line(value), style=style)


def safe_json(data: Any) -> str:
    """JSON for the terminal: JSON escapes C0 controls; DEL, C1 and bidi overrides are escaped too."""
    text = json.dumps(data, ensure_ascii=False, default=str)
    return _UNSAFE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(data: Any) -> None:
    """One JSON object (or list) on one line of stdout."""
    out.print(safe_json(data), markup=False, highlight=False, soft_wrap=True)


def print_text(value: object) -> None:
    """Article text on stdout: no markup, controls escaped, newlines kept."""
    out.print(safe_block(value), markup=False, highlight=False)


def echo(line: str) -> None:
    """A plain line on stdout (ids, tab-separated rows): tabs kept, every other control escaped."""
    typer.echo("\t".join(safe_line(field) for field in line.split("\t")))


def note(message: str) -> None:
    """A plain line on stderr (summaries, progress without a terminal); control characters escaped."""
    err.print(safe_line(message), markup=False, highlight=False)


# --- input and progress ------------------------------------------------------------------------------


def valid(records: Iterator[Record], rejected: list[Record]) -> Iterator[RawArticle]:
    """The valid articles; rejected records are reported on stderr as they come."""
    for record in records:
        if record.article is not None:
            yield record.article
        else:
            rejected.append(record)
            report_rejected(record)


def report_rejected(record: Record) -> None:
    """One `rejected FILE:LINE: FIELD: REASON` line per problem."""
    for problem in record.problems:
        err.print(
            Text("rejected ", style="red") + plain(f"{record.origin}: {problem.field}: {problem.reason}"),
            highlight=False,
        )


class _RateColumn(ProgressColumn):
    """Items per second over the whole run, shown once a second has passed and two items are done (the
    rate of the first two items, microseconds apart, is noise: "376704.6/s")."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed < 1.0 or task.completed < 2:
            return Text("")
        return Text(f"{task.completed / elapsed:.1f}/s")


class _CountColumn(ProgressColumn):
    """`12/40` when the total is known, `12` while it is not (never `0/?`)."""

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        return Text(f"{done}/{int(task.total)}" if task.total is not None else str(done))


def progress(*, total_bytes: bool = False) -> Progress:
    """A progress bar on stderr when it is a terminal (rate and ETA), disabled otherwise."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if total_bytes:
        columns += [TaskProgressColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    else:
        columns += [_CountColumn(), _RateColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=err, transient=True, disable=not err.is_terminal)


WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Then wait until every article sent reached an end (stored, duplicate or dead-lettered), "
        "with a progress bar in articles.",
    ),
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="With --wait: give up after this many seconds (exit 1).", min=0),
]


def wait_for_articles(
    settings: Any, ids: list[str], timeout: float | None, since: Any = None, label: str = "done"
) -> int:
    """Wait (--wait) until `ids` reached a terminal state, showing a bar in articles on a terminal and one
    line at the end; the exit code: 0 when all did, 1 when the timeout came first."""
    from workers.db.engine import transaction
    from workers.ops.progress import wait

    with progress() as bar:
        task = bar.add_task(label, total=len(set(ids)))
        result = wait(
            lambda: transaction(settings.database_url),
            ids,
            since=since,
            timeout=timeout,
            on_progress=lambda p: bar.update(task, completed=p.done),
        )
    note(result.line())
    if result.pending:
        note(f"gave up waiting after {timeout:g}s; the workers go on (newsflow status)")
        return EXIT_PARTIAL
    return EXIT_OK


def backpressure_notice(stage: str) -> Callable[[float], None]:
    """A callback that tells the operator we wait for the workers (`waited` seconds so far)."""
    shown = {"last": -1.0}

    def notice(waited: float) -> None:
        if waited - shown["last"] >= 5 or shown["last"] < 0:
            shown["last"] = waited
            note(f"waiting for the workers: {stage} queue above the high-water mark ({waited:.0f}s)")

    return notice


def is_terminal() -> bool:
    """True when stderr is a terminal (progress bars) rather than a pipe or log file."""
    return err.is_terminal and sys.stderr.isatty()
