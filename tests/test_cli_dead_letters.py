"""Dead letters in embedded mode (real SQLite): list, show, retry refusals, discard, unknown ids."""

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from workers.cli import app
from workers.core.settings import get_settings

runner = CliRunner()

PDF = {
    "source": "pdf.example",
    "url": "https://pdf.example/doc",
    "content_type": "text/html",
    "body": "%PDF-1.7\n%âãÏÓ\n1 0 obj <</Type /Catalog>> endobj stream \u0001\u0002 endstream",
}


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEWSFLOW_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def pdf_letter(sqlite_url, tmp_path) -> int:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps(PDF) + "\n")
    code, _, stderr = _run("run", str(feed), "--db", sqlite_url)
    assert code == 1
    assert "not_html" in stderr
    _, listed, _ = _run("dlq", "list", "--db", sqlite_url, "--json")
    [row] = [json.loads(line) for line in listed.splitlines()]
    return int(row["id"])


def test_permanent_dead_letter_is_refused_then_discarded_with_a_note(sqlite_url, pdf_letter):
    """`retry` refuses a not_html letter (exit 1, still open); `discard --note` closes it and keeps the note."""
    code, stdout, stderr = _run("retry", "--embedded", "--db", sqlite_url, "--json")
    assert code == 1
    assert json.loads(stdout)["refused_permanent"] == [pdf_letter]
    assert "not retried without --force" in stderr
    _, listed, _ = _run("dlq", "list", "--db", sqlite_url, "--json")
    assert [json.loads(line)["id"] for line in listed.splitlines()] == [pdf_letter]
    code, _, stderr = _run("dlq", "discard", "--reason", "not_html", "--note", "PDF", "--db", sqlite_url)
    assert code == 0, stderr
    _, listed, _ = _run("dlq", "list", "--db", sqlite_url, "--json")
    assert listed.strip() == ""
    code, shown, _ = _run("dlq", "show", str(pdf_letter), "--db", sqlite_url, "--json")
    data = json.loads(shown)
    assert data["closed_at"] is not None
    assert [(n["action"], n["note"]) for n in data["notes"]] == [("discarded", "PDF")]
    code, _, stderr = _run("dlq", "discard", str(pdf_letter), "--note", "again", "--db", sqlite_url)
    assert code == 1
    assert f"dead letter {pdf_letter}: closed at" in stderr


def test_forced_retry_of_a_permanent_failure_fails_again_and_says_so(sqlite_url, pdf_letter):
    """`retry --force --embedded` replays the PDF, which fails again: reported, exit code 1."""
    code, stdout, _ = _run("retry", "--force", "--embedded", "--db", sqlite_url, "--json")
    assert code == 1
    summary = json.loads(stdout)
    assert (summary["retried"], summary["failed_again"]) == (1, 1)


def test_reprocess_of_an_unknown_id_is_reported_not_dead_lettered(sqlite_url, pdf_letter):
    """`reprocess` of an id with no raw article reports it, exits 1 and opens no dead letter."""
    code, _, stderr = _run("reprocess", "e" * 32, "--from", "clean", "--embedded", "--db", sqlite_url)
    assert code == 1
    assert f"unknown article id: {'e' * 32}" in stderr
    _, listed, _ = _run("dlq", "list", "--db", sqlite_url, "--json")
    assert [json.loads(line)["id"] for line in listed.splitlines()] == [pdf_letter]


def test_filters_are_validated(sqlite_url, pdf_letter):
    """Unknown stages and malformed times are usage errors (exit 2) for list and retry."""
    assert _run("dlq", "list", "--stage", "nowhere", "--db", sqlite_url)[0] == 2
    assert _run("retry", "--stage", "nowhere", "--db", sqlite_url)[0] == 2
    code, _, stderr = _run("dlq", "list", "--since", "yesterday-ish", "--db", sqlite_url)
    assert code == 2
    assert "not a time" in stderr
    _, listed, _ = _run(
        "dlq", "list", "--since", "1h", "--source", "pdf.example", "--db", sqlite_url, "--json"
    )
    assert len(listed.splitlines()) == 1
