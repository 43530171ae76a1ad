"""Stored text never reaches the terminal raw, and configuration errors are one line with an exit code."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.samples import EXAMPLES
from workers.cli import app
from workers.cli.base import EXIT_CONFIG, EXIT_SCHEMA, EXIT_UNREACHABLE, EXIT_USAGE, safe_block, safe_line
from workers.core.settings import get_settings

runner = CliRunner()

HOSTILE = "Breaking [/bold] news \x1b[31mred\x1b[0m [link=https://evil.example]click[/link] \u202eevil"


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEWSFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("NEWSFLOW_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _hostile_page(tmp_path: Path) -> Path:
    html = (EXAMPLES / "valleypost-library.html").read_text()
    page = tmp_path / "hostile.html"
    page.write_text(html.replace("Riverside library reopens after flood repairs", HOSTILE))
    return page


def _assert_safe(text: str) -> None:
    assert "\x1b" not in text
    assert "\u202e" not in text


def test_safe_line_escapes_controls_and_bidi_but_keeps_text():
    """Control and bidi-override characters become visible escapes; everything else is unchanged."""
    assert safe_line("a\x1b[31mb\nc\u202ed") == "a\\x1b[31mb\\x0ac\\u202ed"
    assert safe_block("line one\n\tline two\x07") == "line one\n\tline two\\x07"
    assert safe_line("[bold]x[/bold] é") == "[bold]x[/bold] é"


def test_markup_and_escape_sequences_in_a_title_are_printed_literally(sqlite_url, tmp_path):
    """A title with `[/bold]`, ESC sequences, `[link=...]` and a bidi override: run and show exit 0 and
    print the markup literally with every control character escaped."""
    page = _hostile_page(tmp_path)
    code, stdout, stderr = _run("run", str(page), "--db", sqlite_url)
    assert code == 0, stderr
    _assert_safe(stdout + stderr)
    assert "[/bold]" in stdout
    code, stdout, stderr = _run("run", str(page), "--db", sqlite_url, "--json")
    assert code == 0, stderr
    [article] = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    _assert_safe(stdout)
    assert "[/bold]" in article["title"]
    code, shown, stderr = _run("show", article["id"], "--db", sqlite_url)
    assert code == 0, stderr
    _assert_safe(shown)
    assert "[/bold] news" in shown
    assert "[link=https://evil.example]click[/link]" in shown
    code, traced, stderr = _run("trace", article["id"], "--db", sqlite_url)
    assert code == 0, stderr
    _assert_safe(traced)
    code, cleaned, stderr = _run("clean", str(page))
    assert code == 0, stderr
    _assert_safe(cleaned)
    assert "[/bold]" in cleaned


def test_tag_on_a_missing_file_is_a_clean_usage_error(tmp_path):
    """`tag` of a file that does not exist exits 2 with one line, no traceback."""
    code, stdout, stderr = _run("tag", str(tmp_path / "nope.txt"))
    assert code == EXIT_USAGE
    assert "no such file" in stderr
    assert "Traceback" not in stderr + stdout


def test_version_prints_the_installed_version():
    """`newsflow --version` prints the package version and exits 0."""
    from importlib.metadata import version

    code, stdout, _ = _run("--version")
    assert code == 0
    assert stdout.strip() == f"newsflow {version('newsflow')}"


def test_a_wrong_database_url_is_a_configuration_error():
    """A database URL naming no known driver is one line and exit code 3."""
    code, stdout, stderr = _run("status", "--db", "nosuchdb://x/y")
    assert code == EXIT_CONFIG
    assert "configuration error: database URL" in stderr
    assert "Traceback" not in stderr + stdout


def test_an_invalid_setting_is_a_configuration_error(monkeypatch):
    """A malformed NEWSFLOW_ variable names the variable, exit code 3."""
    monkeypatch.setenv("NEWSFLOW_HIGH_WATER_MARK", "lots")
    code, _, stderr = _run("status")
    assert code == EXIT_CONFIG
    assert "NEWSFLOW_HIGH_WATER_MARK" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_an_unmigrated_database_says_to_run_db_upgrade(sqlite_url):
    """Commands on an empty database point at `newsflow db upgrade` with exit code 6."""
    code, _, stderr = _run("dead-letters", "list", "--db", sqlite_url)
    assert code == EXIT_SCHEMA
    assert "newsflow db upgrade" in stderr


def test_enqueue_with_redis_down_is_one_line(sqlite_url, monkeypatch):
    """Enqueue against a Redis port nobody listens on: one line naming Redis, exit code 4."""
    from tests.servers import free_port

    _run("db", "upgrade", "--db", sqlite_url)
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("NEWSFLOW_BROKER_URL", f"redis://127.0.0.1:{free_port()}/0")
    get_settings.cache_clear()
    code, stdout, stderr = _run("enqueue", str(EXAMPLES / "feed.jsonl"))
    assert code == EXIT_UNREACHABLE, stderr
    assert stderr.startswith("newsflow: Redis unreachable")
    assert len(stderr.strip().splitlines()) == 1
    assert stdout == ""


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('connection failed: FATAL:  password authentication failed for user "newsflow"', 5),
        ("connection failed: connection to server at 127.0.0.1, port 5999 failed: Connection refused", 4),
        ('connection failed: FATAL:  database "nope" does not exist', EXIT_CONFIG),
    ],
)
def test_postgres_errors_are_told_apart(message, code):
    """psycopg's messages for a refused password, a server down and a missing database map to 5, 4 and 3."""
    import psycopg
    import sqlalchemy.exc

    from workers.cli.base import describe

    error = sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(message))
    found = describe(error)
    assert found is not None
    assert found.code == code
    assert "\n" not in str(found)


def test_a_database_url_whose_driver_is_not_installed_is_one_line_exit_3(tmp_path):
    """Issue 30.6: `run --db mysql://...` without a MySQL driver says which driver is missing, in one line,
    exit code 3, no traceback."""
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>x</p></body></html>")
    code, stdout, stderr = _run("run", "--db", "mysql://newsflow@127.0.0.1/newsflow", str(page))
    assert code == EXIT_CONFIG, stderr
    assert stderr.startswith("newsflow: configuration error: the database URL needs the driver")
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr + stdout


def test_an_in_memory_sqlite_database_is_refused_with_the_reason(tmp_path):
    """Issue 30.6: `--db sqlite:///:memory:` is a configuration error saying why (one connection's database),
    not advice to run `db upgrade`."""
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>x</p></body></html>")
    code, _, stderr = _run("run", "--db", "sqlite:///:memory:", str(page))
    assert code == EXIT_CONFIG, stderr
    assert "in-memory SQLite database" in stderr
    assert "db upgrade" not in stderr


def test_a_full_disk_is_said_as_such_not_as_unreachable():
    """Issue 30.8: PostgreSQL's disk full (SQLSTATE 53100) is "cannot write: its disk is full", for the CLI and
    for the producer's wait, never "unreachable"."""
    import psycopg
    import sqlalchemy.exc

    from workers.cli.base import describe
    from workers.ingest.producer import _outage

    full = psycopg.errors.DiskFull(
        'could not extend file "base/16384/2619": No space left on device\nHINT:  Check free disk space.'
    )
    error = sqlalchemy.exc.OperationalError("INSERT ...", {}, full)
    found = describe(error)
    assert found is not None
    assert "disk is full" in str(found)
    assert "unreachable" not in str(found)
    line = _outage(error, "the database")
    assert line is not None
    assert "disk is full" in line
    assert "unreachable" not in line


def test_printed_file_names_are_escaped(tmp_path):
    """Issue 30.4: a missing file whose name holds an escape sequence and a newline is named escaped."""
    code, _, stderr = _run("backfill", str(tmp_path / "gone\x1b[2J\nrejected forged.jsonl"))
    assert code == EXIT_USAGE
    assert "\x1b" not in stderr
    assert "\\x1b[2J\\x0arejected forged" in stderr
    assert len(stderr.strip().splitlines()) == 1
