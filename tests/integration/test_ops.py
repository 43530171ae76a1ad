"""Operator commands against real Redis, PostgreSQL and worker processes: dead letters, retry, status,
trace, WARC backfill interrupted and resumed, reprocess by source, report."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.integration.conftest import run_cli, wait_for
from tests.samples import EXAMPLES, ROOT
from workers.db.engine import transaction
from workers.db.models import ArticleRow, BackfillCheckpointRow, DeadLetterRow, StageJournalRow

pytestmark = pytest.mark.integration

PDF = {
    "source": "pdf.example",
    "url": "https://pdf.example/doc",
    "content_type": "text/html",
    "body": "%PDF-1.7\n%âãÏÓ\n1 0 obj <</Type /Catalog>> endobj stream \u0001\u0002\u0003 endstream",
}


def _json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _open_letters(url: str) -> list[DeadLetterRow]:
    with transaction(url) as session:
        rows = list(session.scalars(select(DeadLetterRow).where(DeadLetterRow.retried_at.is_(None))))
        for row in rows:
            session.expunge(row)
        return rows


def test_dead_letter_listed_shown_retried_and_discarded(pipeline_env, postgres_url, start_worker, tmp_path):
    """A model_unavailable and a not_html dead letter: listed with filters, shown with traceback and ids,
    the permanent one refused by retry and discarded with a note, the other retried once the worker is
    fixed, stored, and the whole journey visible in `trace`."""
    pipeline_env["NEWSFLOW_TAGGER_MODEL"] = "no_such_spacy_model"
    pipeline_env["NEWSFLOW_STARTUP_CHECKS"] = "false"  # a worker would refuse to start without its model
    broken = start_worker(name="broken", concurrency=1)
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps(PDF) + "\n")
    result = run_cli(pipeline_env, "enqueue", str(EXAMPLES / "valleypost-library.html"), str(feed), "--json")
    assert result.returncode == 0, result.stderr
    [summary] = _json_lines(result.stdout)
    assert summary["new"] == 2
    wait_for(lambda: len(_open_letters(postgres_url)) == 2, message="two dead letters")
    letters = {d.reason: d for d in _open_letters(postgres_url)}
    assert set(letters) == {"model_unavailable", "not_html"}

    listed = run_cli(pipeline_env, "dead-letters", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["id"] for r in _json_lines(listed.stdout)} == {d.id for d in letters.values()}
    by_reason = run_cli(pipeline_env, "dlq", "list", "--reason", "not_html", "--json")
    assert [r["source"] for r in _json_lines(by_reason.stdout)] == ["pdf.example"]
    by_source = run_cli(
        pipeline_env, "dlq", "list", "--source", "valleypost.example", "--stage", "tag", "--json"
    )
    assert [r["reason"] for r in _json_lines(by_source.stdout)] in (["model_unavailable"], [])
    assert run_cli(pipeline_env, "dlq", "list", "--stage", "bogus").returncode == 2

    tag_letter = letters["model_unavailable"]
    shown = run_cli(pipeline_env, "dead-letters", "show", str(tag_letter.id), "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["stage"] == "tag"
    assert data["payload"]["article_id"] == tag_letter.article_id
    assert data["attempts"] >= 1
    assert data["first_failed_at"]
    assert data["last_failed_at"]
    assert data["error_class"] == "ModelUnavailable"
    assert "no_such_spacy_model" in data["traceback"]
    assert run_cli(pipeline_env, "dead-letters", "show", "99999").returncode == 1

    bogus = run_cli(pipeline_env, "retry", "--stage", "bogus")
    assert bogus.returncode == 2
    assert "unknown stage 'bogus'" in bogus.stderr
    unknown = run_cli(pipeline_env, "retry", "99999")
    assert unknown.returncode == 1
    assert "dead letter 99999: no such dead letter" in unknown.stderr
    pdf_letter = letters["not_html"]
    refused = run_cli(pipeline_env, "retry", str(pdf_letter.id), "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["refused_permanent"] == [pdf_letter.id]
    assert pdf_letter.id in {d.id for d in _open_letters(postgres_url)}

    broken.stop()
    del pipeline_env["NEWSFLOW_TAGGER_MODEL"]
    del pipeline_env["NEWSFLOW_STARTUP_CHECKS"]
    start_worker(name="fixed", concurrency=1)
    retried = run_cli(pipeline_env, "retry", "--reason", "model_unavailable", "--wait", "90", "--json")
    assert retried.returncode == 0, retried.stderr
    outcome = json.loads(retried.stdout)
    assert (outcome["retried"], outcome["failed_again"], outcome["stored"]) == (1, 0, 1)
    with transaction(postgres_url) as session:
        assert session.get(ArticleRow, tag_letter.article_id) is not None

    assert run_cli(pipeline_env, "dlq", "discard", str(pdf_letter.id)).returncode == 2  # --note required
    discarded = run_cli(pipeline_env, "dlq", "discard", str(pdf_letter.id), "--note", "a PDF, not a page")
    assert discarded.returncode == 0, discarded.stderr
    assert _open_letters(postgres_url) == []
    closed = _json_lines(run_cli(pipeline_env, "dlq", "list", "--all", "--json").stdout)
    assert {r["id"] for r in closed} == {pdf_letter.id, tag_letter.id}
    [note] = next(r for r in closed if r["id"] == pdf_letter.id)["notes"]
    assert (note["action"], note["note"]) == ("discarded", "a PDF, not a page")

    traced = run_cli(pipeline_env, "trace", tag_letter.article_id[:12], "--json")
    assert traced.returncode == 0, traced.stderr
    journey = json.loads(traced.stdout)
    stages = {s["stage"]: s for s in journey["stages"]}
    assert [a["event"] for a in stages["clean"]["attempts"]] == ["ok"]
    assert [a["event"] for a in stages["tag"]["attempts"]] == ["dead_letter", "ok"]
    assert stages["tag"]["attempts"][1]["version"] == stages["tag"]["version"]
    assert all(a["duration_ms"] is not None and a["worker"] for a in stages["tag"]["attempts"])
    assert stages["dedup"]["verdict"] == "unique"
    assert [r["event"] for r in journey["replays"]] == ["retried"]
    assert journey["stored"]["verdict"] == "unique"
    assert [d["reason"] for d in journey["dead_letters"]] == ["model_unavailable"]
    human = run_cli(pipeline_env, "trace", tag_letter.article_id)
    assert "tag #1 dead_letter" in human.stdout
    assert "stored" in human.stdout


def test_status_counts_scheduled_retries_and_fails_when_redis_is_down(pipeline_env, start_worker):
    """A message with a future ETA held by a worker is counted as a scheduled retry (not queued);
    status exits 0 with both services up and 4 when Redis is unreachable."""
    from celery import Celery

    from tests.servers import free_port

    start_worker(name="w1", concurrency=1)
    app = Celery(broker=pipeline_env["NEWSFLOW_BROKER_URL"])
    app.conf.update(task_serializer="json", accept_content=["json"])
    app.send_task(
        "newsflow.clean",
        args=({"article_id": "0" * 32, "trace_id": "t"},),
        queue="newsflow.clean",
        countdown=120,
    )

    def figures() -> dict:
        result = run_cli(pipeline_env, "status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    wait_for(lambda: figures()["stages"]["clean"]["scheduled_retries"] == 1, message="a scheduled retry")
    now = figures()["stages"]["clean"]
    assert (now["queued"], now["in_progress"], now["workers"]) == (0, 0, 1)
    assert now["messages"] == {"queued": 0, "in_flight": 0, "scheduled_retries": 1}
    down = run_cli({**pipeline_env, "NEWSFLOW_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}, "status")
    assert down.returncode == 4
    assert "Redis unreachable" in down.stderr


def test_redis_wrong_password_is_told_apart_from_unreachable(pipeline_env):
    """Against a Redis with a password: a wrong one exits 5 "refused the credentials"; the right one works."""
    from tests.servers import RedisServer

    with RedisServer(password="s3cret") as server:
        wrong = server.url.replace("s3cret", "nope")
        result = run_cli({**pipeline_env, "NEWSFLOW_BROKER_URL": wrong}, "status")
        assert result.returncode == 5, result.stderr
        assert "Redis refused the credentials" in result.stderr
        enqueue = run_cli(
            {**pipeline_env, "NEWSFLOW_BROKER_URL": wrong}, "enqueue", str(EXAMPLES / "feed.jsonl")
        )
        assert enqueue.returncode == 5
        assert "Traceback" not in enqueue.stderr
        assert run_cli({**pipeline_env, "NEWSFLOW_BROKER_URL": server.url}, "status").returncode == 0


def test_postgres_down_is_one_line(pipeline_env):
    """A database URL whose server does not answer: one line naming the host and port, exit code 4."""
    from tests.servers import free_port

    port = free_port()
    env = {
        **pipeline_env,
        "NEWSFLOW_DATABASE_URL": f"postgresql+psycopg://newsflow@127.0.0.1:{port}/newsflow",
    }
    result = run_cli(env, "enqueue", str(EXAMPLES / "feed.jsonl"))
    assert result.returncode == 4, result.stderr
    assert f"database unreachable at 127.0.0.1:{port}/newsflow" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- WARC backfill -----------------------------------------------------------------------------------

PARAGRAPHS = [
    "The council approved the new budget on Tuesday after a long debate about road repairs and schools.",
    "Residents had asked for more money for the library, which reopened last month after the flood.",
    "The mayor said the plan balanced the needs of every district and would be reviewed in the spring.",
    "Opposition members argued that the tax rise fell hardest on small businesses in the town centre.",
]


def _page(n: int, host: str) -> bytes:
    body = "".join(
        f"<p>{p} Story {n} from {host} adds detail number {n * 7 + i}.</p>" for i, p in enumerate(PARAGRAPHS)
    )
    return (
        f"<html><head><title>Story {n} at {host}</title></head><body><article><h1>Story {n} at {host}</h1>"
        f"{body}{body}</article></body></html>"
    ).encode()


def _write_warc(path, pages: list[tuple[str, bytes]]) -> None:
    """A gzipped WARC built with warcio: HTML responses, plus a revisit, a 404, a PNG and a request."""
    import gc
    import warnings

    # warcio's writer leaves its spooled temporary buffers to the garbage collector.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        _write_records(path, pages)
        gc.collect()


def _write_records(path, pages: list[tuple[str, bytes]]) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)

        def response(
            url: str, payload: bytes, status: str = "200 OK", ctype: str = "text/html; charset=utf-8"
        ):
            http = StatusAndHeaders(status, [("Content-Type", ctype)], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                url, "response", payload=io.BytesIO(payload), http_headers=http,
                warc_headers_dict={"WARC-Date": "2026-11-30T08:00:00Z"},
            )  # fmt: skip
            writer.write_record(record)

        for url, payload in pages:
            response(url, payload)
        writer.write_record(
            writer.create_warc_record(
                "https://a.example/1", "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")
            )
        )
        response("https://a.example/missing", b"<html>not found</html>", status="404 Not Found")
        response("https://a.example/logo.png", b"\x89PNG....", ctype="image/png")
        revisit = writer.create_revisit_record(
            "https://a.example/1", digest="sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            refers_to_uri="https://a.example/1", refers_to_date="2026-11-29T08:00:00Z",
        )  # fmt: skip
        writer.write_record(revisit)


def _clean_runs(url: str) -> dict[str, int]:
    with transaction(url) as session:
        return dict(
            session.execute(
                select(StageJournalRow.article_id, func.count())
                .where(StageJournalRow.stage == "clean", StageJournalRow.event == "ok")
                .group_by(StageJournalRow.article_id)
            ).all()
        )


def _waited(stderr: str) -> tuple[int, int]:
    """(done, total) from the line `--wait` ends with; every done article stored or a duplicate (the
    test's pages share their template), none dead-lettered."""
    found = re.search(
        r"(\d+) of (\d+) done \(stored (\d+), duplicate (\d+), dead_lettered 0, not_article 0\)", stderr
    )
    assert found, stderr
    done, total, stored, duplicate = map(int, found.groups())
    assert stored + duplicate == done
    return done, total


def test_warc_backfill_interrupted_and_resumed_stores_each_article_once(
    pipeline_env, postgres_url, start_worker, tmp_path
):
    """A WARC backfill interrupted with Ctrl-C and run again stores each article once and re-runs none;
    skipped records are counted by kind; a reprocess by source touches only that source; unknown ids
    are reported, not dead-lettered; the report sees both sources."""
    pages = [(f"https://www.a.example/story/{n}", _page(n, "a.example")) for n in range(6)]
    pages += [(f"https://b.example/story/{n}", _page(n, "b.example")) for n in range(4)]
    warc = tmp_path / "crawl.warc.gz"
    _write_warc(warc, pages)
    start_worker(name="w1", concurrency=2)
    command = [sys.executable, "-m", "workers.cli", "backfill", str(tmp_path), "--rate", "2", "--json"]
    first = subprocess.Popen(
        command, env=pipeline_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.5)
    wait_for(lambda: _received(postgres_url) >= 3, timeout=60, message="a few articles in")
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    partial = json.loads(out.strip().splitlines()[-1])
    assert partial["interrupted"] is True
    assert 3 <= partial["new"] < 10
    with transaction(postgres_url) as session:
        checkpoint = session.scalar(select(BackfillCheckpointRow))
        assert checkpoint is not None
        assert not checkpoint.done
        assert checkpoint.offset > 0

    second = run_cli(pipeline_env, "backfill", str(tmp_path), "--json", "--wait", "--timeout", "150")
    assert second.returncode == 0, second.stderr
    # --wait follows the articles this run sent until each is stored, a duplicate or dead-lettered.
    waited = _waited(second.stderr)
    assert waited[0] == waited[1] >= 10 - partial["new"], second.stderr  # new, and any persisted but unsent
    assert _stored(postgres_url) == 10
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["resumed"] == 1
    # This run's counts only: the interrupted run's articles are not new again (issue 19.12).
    assert summary["new"] == 10 - partial["new"]
    assert summary["earlier_read"] == partial["read"]
    assert summary["already_stored"] == 0
    # The worker's log files in the same directory are counted as unsupported_file, not read.
    summary["skipped"].pop("unsupported_file")
    assert summary["skipped"] == {"non_200": 1, "not_html": 1, "request_record": 1, "revisit": 1}

    wait_for(lambda: _stored(postgres_url) == 10, timeout=150, message="ten articles stored")
    again = run_cli(pipeline_env, "backfill", str(warc), "--json")
    assert json.loads(again.stdout.strip().splitlines()[-1])["files_already_done"] == 1
    assert json.loads(again.stdout.strip().splitlines()[-1])["new"] == 0
    assert "already done" in again.stderr
    dump = run_cli(pipeline_env, "enqueue", str(warc), "--json")
    assert dump.returncode == 0, dump.stderr
    assert json.loads(dump.stdout)["already_stored"] == 10
    time.sleep(2)
    runs = _clean_runs(postgres_url)
    assert len(runs) == 10, runs
    assert set(runs.values()) == {1}, runs
    with transaction(postgres_url) as session:
        hosts = dict(
            session.execute(select(ArticleRow.source, func.count()).group_by(ArticleRow.source)).all()
        )
        fetched = session.scalar(select(ArticleRow.url).where(ArticleRow.source == "b.example").limit(1))
    assert hosts == {"a.example": 6, "b.example": 4}
    assert fetched.startswith("https://b.example/story/")

    since = datetime.now(UTC)
    reprocessed = run_cli(
        pipeline_env,
        "reprocess",
        "--source",
        "b.example",
        "--from",
        "clean",
        "--json",
        "--wait",
        "--timeout",
        "120",
    )
    assert reprocessed.returncode == 0, reprocessed.stderr
    assert json.loads(reprocessed.stdout)["enqueued"] == 4
    assert _waited(reprocessed.stderr)[:2] == (4, 4), reprocessed.stderr

    def rerun_done() -> bool:
        with transaction(postgres_url) as session:
            return (
                session.scalar(
                    select(func.count()).where(
                        StageJournalRow.stage == "store",
                        StageJournalRow.event == "ok",
                        StageJournalRow.ended_at >= since,
                    )
                )
                == 4
            )

    wait_for(rerun_done, timeout=120, message="the b.example articles re-stored")
    with transaction(postgres_url) as session:
        rerun = {
            source
            for (source,) in session.execute(
                select(ArticleRow.source)
                .join(StageJournalRow, StageJournalRow.article_id == ArticleRow.id)
                .where(StageJournalRow.stage == "clean", StageJournalRow.ended_at >= since)
            )
        }
    assert rerun == {"b.example"}

    missing = run_cli(pipeline_env, "reprocess", "f" * 32, "--from", "tag")
    assert missing.returncode == 1
    assert f"unknown article id: {'f' * 32}" in missing.stderr
    assert _open_letters(postgres_url) == []

    html = tmp_path / "report.html"
    report = run_cli(pipeline_env, "report", "--json", "--html", str(html), "--days", "1")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert set(data["sources"]) == {"a.example", "b.example"}
    [today] = data["sources"]["a.example"]
    assert today["articles"] == 6
    assert today["missing_title_rate"] == 0.0
    assert today["median_words"] > 80
    page = html.read_text()
    assert page.count("<svg") == 0  # one day per source: a one-point chart says nothing, the table does
    assert "<h2>Overview</h2>" in page
    assert "<h2 id='source-b-example'>b.example</h2>" in page


def _received(url: str) -> int:
    from workers.db.models import RawArticleRow

    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(RawArticleRow)) or 0)


def _stored(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(ArticleRow)) or 0)
