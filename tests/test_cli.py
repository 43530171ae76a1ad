"""The `newsflow` CLI in embedded mode: the newcomer's path, against a real SQLite file."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.samples import (
    EXAMPLES,
    SAMPLE_CHROME,
    SAMPLE_FIRST,
    SAMPLE_LAST,
    SAMPLE_LEAD,
    SAMPLE_PERSONS,
    SAMPLE_PLACES,
    SAMPLE_TITLE,
    sample_page,
)
from workers.cli import app
from workers.core.settings import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("NEWSFLOW_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def _stored(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_run_examples_stores_them_and_marks_the_syndicated_copy(sqlite_url):
    """`newsflow run examples/` stores the four sample articles; the wind-farm reprint is a near-duplicate."""
    code, stdout, stderr = _run("run", str(EXAMPLES), "--db", sqlite_url, "--json")
    assert code == 0, stderr
    articles = _stored(stdout)
    assert len(articles) == 4
    verdicts = sorted(a["dedup"] for a in articles)
    assert verdicts == ["near_duplicate", "unique", "unique", "unique"]
    [copy] = [a for a in articles if a["dedup"] == "near_duplicate"]
    assert "wind farm" in copy["text"]
    assert copy["duplicate_of"] in {a["id"] for a in articles}
    for article in articles:
        assert set(article) >= {
            "id",
            "url",
            "source",
            "title",
            "published_at",
            "language",
            "text",
            "dateline",
            "credits",
            "duplicate_of",
            "entities",
            "versions",
        }


def test_run_prints_a_table_on_the_console(sqlite_url):
    """Without --json, run prints a table with title, words, duplicate-of and top entities."""
    code, stdout, stderr = _run("run", str(EXAMPLES / "valleypost-library.html"), "--db", sqlite_url)
    assert code == 0, stderr
    assert "Riverside" in stdout
    assert "top entities" in stdout
    assert "1 article(s) stored" in stdout


def test_a_piped_table_keeps_every_cell_whole(sqlite_url, monkeypatch):
    """With stdout not a terminal, a table is as wide as its cells: a title and the entity list are
    each on one line, not folded at 80 columns."""
    monkeypatch.delenv("COLUMNS", raising=False)
    _, stored, _ = _run("run", str(EXAMPLES / "valleypost-library.html"), "--db", sqlite_url, "--json")
    [article] = _stored(stored)
    code, stdout, stderr = _run("run", str(EXAMPLES / "valleypost-library.html"), "--db", sqlite_url)
    assert code == 0, stderr
    [row] = [line for line in stdout.splitlines() if article["id"][:8] in line]
    assert len(row) > 80
    assert article["title"] in row
    assert all(f"{e['name']} ×{e['count']}" in row for e in article["entities"][:4])


def test_run_sample_page_is_one_clean_tagged_article(sqlite_url):
    """The sample page comes out as one article: exact title, body bounds, lead once, key entities."""
    code, stdout, stderr = _run("run", str(sample_page()), "--db", sqlite_url, "--json")
    assert code == 0, stderr
    [article] = _stored(stdout)
    assert article["title"] == SAMPLE_TITLE
    assert article["text"].startswith(SAMPLE_FIRST)
    assert article["text"].endswith(SAMPLE_LAST)
    assert article["text"].count(SAMPLE_LEAD) == 1
    for chrome in SAMPLE_CHROME:
        assert chrome not in article["text"]
    entities = {(e["name"], e["label"]) for e in article["entities"]}
    for person in SAMPLE_PERSONS:
        assert (person, "PERSON") in entities
    places = {name for name, label in entities if label in {"GPE", "LOC"}}
    assert set(SAMPLE_PLACES) <= places
    for entity in article["entities"]:
        for mention in entity["mentions"]:
            assert article["text"][mention["start"] : mention["end"]] == mention["text"]


def test_running_the_same_file_twice_stores_it_once(sqlite_url):
    """A second embedded run of the same input leaves one article with the same id and content."""
    page = str(EXAMPLES / "harbourtimes-wind-farm.txt")
    _, first, _ = _run("run", page, "--db", sqlite_url, "--json")
    _, second, _ = _run("run", page, "--db", sqlite_url, "--json")
    assert _stored(first) == _stored(second)
    _, status, _ = _run("status", "--json", "--db", sqlite_url)
    assert json.loads(status)["articles"] == 1


def test_rejected_records_are_reported_and_the_rest_processed(sqlite_url, tmp_path):
    """Invalid JSON lines are reported with file:line, field and reason; valid lines still run; exit code 1."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text(
        json.dumps(
            {"source": "a.example", "body": "OSLO – Ministers met on Tuesday to discuss the budget. " * 10}
        )
        + "\n{not json\n"
        + json.dumps({"source": "a.example", "body": "x", "language": "english!"})
        + "\n"
    )
    code, stdout, stderr = _run("run", str(feed), "--db", sqlite_url, "--json")
    assert code == 1
    assert f"{feed}:2: (record): Invalid JSON" in stderr
    assert f"{feed}:3: language: String should match pattern" in stderr
    assert len(_stored(stdout)) == 1


def test_show_prints_the_verdict_and_what_cleaning_removed(sqlite_url):
    """`show ID --removed` shows the article with its verdict, cluster and the removal audit."""
    _run("run", str(EXAMPLES), "--db", sqlite_url)
    _, stdout, _ = _run("run", str(EXAMPLES / "harbourtimes-wind-farm.txt"), "--db", sqlite_url, "--json")
    [article] = _stored(stdout)
    code, shown, stderr = _run("show", article["id"][:10], "--removed", "--db", sqlite_url)
    assert code == 0, stderr
    assert "near_duplicate of" in shown
    assert "cluster" in shown
    assert "removed by cleaning" in shown
    code, shown_json, _ = _run("show", article["id"], "--json", "--removed", "--db", sqlite_url)
    data = json.loads(shown_json)
    assert data["verdict"]["kind"] == "near_duplicate"
    assert {r["reason"] for r in data["removed"]} & {"nav", "share_bar", "footer", "chrome"}


def test_show_unknown_id_fails_clearly(sqlite_url):
    """`show` of an id that matches nothing exits 1 with a message."""
    _run("db", "upgrade", "--db", sqlite_url)
    code, _, stderr = _run("show", "ffff", "--db", sqlite_url)
    assert code == 1
    assert "no article matches" in stderr


def test_schema_prints_the_raw_article_contract():
    """`newsflow schema` prints the raw article's JSON Schema with the public field names and limits."""
    code, stdout, _ = _run("schema")
    assert code == 0
    schema = json.loads(stdout)
    assert sorted(schema["required"]) == ["body", "source"]
    assert set(schema["properties"]) == {
        "source",
        "body",
        "url",
        "fetched_at",
        "content_type",
        "title",
        "published_at",
        "language",
    }
    assert schema["additionalProperties"] is False


def test_retry_replays_a_dead_letter_from_the_failed_stage(sqlite_url, monkeypatch):
    """An article dead-lettered at tag is stored by `retry --embedded` once the fault is gone."""
    from workers.stages import tag as tag_stage

    def broken(*_args, **_kwargs):
        raise RuntimeError("tagger bug")

    monkeypatch.setattr(tag_stage, "tag_routed", broken)
    code, _, stderr = _run("run", str(EXAMPLES / "valleypost-library.html"), "--db", sqlite_url)
    assert code == 1
    assert "at tag: unexpected" in stderr
    monkeypatch.undo()
    _, status, _ = _run("status", "--json", "--db", sqlite_url)
    assert json.loads(status)["dead_letters_by_stage"] == [
        {"stage": "tag", "reason": "unexpected", "count": 1}
    ]
    code, stdout, stderr = _run("retry", "--embedded", "--db", sqlite_url)
    assert code == 0, stderr
    assert "\ttag\t" in stdout
    _, status, _ = _run("status", "--json", "--db", sqlite_url)
    figures = json.loads(status)
    assert figures["dead_letters"] == 0
    assert figures["articles"] == 1


def test_clean_command_prints_without_storing(tmp_path, monkeypatch):
    """`newsflow clean` prints title and text of a page and creates no database."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _run("clean", str(EXAMPLES / "valleypost-library.html"), "--json")
    assert code == 0, stderr
    [cleaned] = _stored(stdout)
    assert cleaned["title"] == "Riverside library reopens after flood repairs"
    assert cleaned["path"].endswith("valleypost-library.html:1")
    assert not Path(tmp_path / "newsflow.db").exists()


def test_tag_command_tags_stdin():
    """`newsflow tag -` prints entities with offsets into the text as given."""
    text = "Angela Merkel met Emmanuel Macron in Paris on Monday."
    code, stdout, stderr = _run("tag", "-", "--json", stdin=text)
    assert code == 0, stderr
    entities = json.loads(stdout)
    names = {e["name"] for e in entities}
    assert {"Angela Merkel", "Emmanuel Macron", "Paris"} <= names
    for entity in entities:
        for mention in entity["mentions"]:
            assert text[mention["start"] : mention["end"]] == mention["text"]


def test_reprocess_selects_stale_articles_by_stage_version(sqlite_url, monkeypatch):
    """After a cleaner version bump, `reprocess --stale` finds every article cleaned by the old one and redoes it."""
    from workers.stages import clean as clean_stage

    _run("run", str(EXAMPLES), "--db", sqlite_url)
    code, stdout, stderr = _run("reprocess", "--from", "clean", "--stale", "--dry-run", "--db", sqlite_url)
    assert code == 0, stderr
    assert stdout.split() == []
    monkeypatch.setattr(clean_stage, "VERSION", "clean-99.0")
    _, stale, _ = _run("reprocess", "--from", "clean", "--stale", "--dry-run", "--db", sqlite_url)
    assert len(stale.split()) == 4
    first, *rest = sorted(stale.split())
    code, done, stderr = _run(
        "reprocess", "--from", "clean", "--stale", "--embedded", "--limit", "1", "--db", sqlite_url
    )
    assert (code, done.split()) == (0, [first]), stderr
    code, done, stderr = _run(
        "reprocess", "--from", "clean", "--stale", "--embedded", "--after", first, "--db", sqlite_url
    )
    assert (code, done.split()) == (0, rest), stderr
    _, after, _ = _run("reprocess", "--from", "clean", "--stale", "--dry-run", "--db", sqlite_url)
    assert after.split() == []
    _, shown, _ = _run("show", first, "--json", "--db", sqlite_url)
    assert json.loads(shown)["versions"]["clean"] == "clean-99.0"


def test_reprocess_reads_ids_from_stdin_and_rejects_bad_ones(sqlite_url):
    """`reprocess -` takes ids on stdin, reruns them from the given stage and reports ids that are not ids."""
    _, stored, _ = _run("run", str(EXAMPLES / "valleypost-library.html"), "--db", sqlite_url, "--json")
    [article] = _stored(stored)
    code, stdout, stderr = _run(
        "reprocess",
        "-",
        "--from",
        "tag",
        "--embedded",
        "--db",
        sqlite_url,
        stdin=f"{article['id']}\nnonsense\n",
    )
    assert code == 1
    assert stdout.split() == [article["id"]]
    assert "not an article id or id prefix: 'nonsense'" in stderr
    _, again, _ = _run("show", article["id"], "--json", "--db", sqlite_url)
    assert json.loads(again)["entities"] == article["entities"]


def test_reprocess_takes_id_prefixes_and_its_json_agrees_with_stderr(sqlite_url):
    """`reprocess PREFIX` resolves a unique prefix as show and trace do; a prefix of no article and a
    non-id are failures, and the --json summary's `failed` is the count stderr prints."""
    _, stored, _ = _run("run", str(EXAMPLES / "valleypost-library.html"), "--db", sqlite_url, "--json")
    [article] = _stored(stored)
    code, stdout, stderr = _run(
        "reprocess", article["id"][:8], "--from", "tag", "--embedded", "--db", sqlite_url
    )
    assert code == 0, stderr
    assert stdout.split() == [article["id"]]
    assert "reprocessed 1 from tag, failed 0" in stderr
    absent = "f" * 12 if not article["id"].startswith("f") else "0" * 12
    code, stdout, stderr = _run(
        "reprocess", article["id"][:6], absent, "NOT-AN-ID", "--from", "tag", "--embedded", "--json",
        "--db", sqlite_url,
    )  # fmt: skip
    assert code == 1
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["reprocessed"] == 1
    assert (summary["failed"], summary["unknown"], summary["invalid"]) == (2, 1, 1)
    assert "failed 2" in stderr
    assert f"no article matches {absent!r}" in stderr


def test_reprocess_needs_exactly_one_selection(sqlite_url):
    """Without ids, --stale or --all (or with two of them) reprocess refuses with exit code 2."""
    assert _run("reprocess", "--db", sqlite_url)[0] == 2
    assert _run("reprocess", "--stale", "--all", "--db", sqlite_url)[0] == 2
    assert _run("reprocess", "--from", "nowhere", "--all", "--db", sqlite_url)[0] == 2
