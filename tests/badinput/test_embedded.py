"""The bad-input corpus in embedded mode: the readers and `workers.runtime.embedded.run`, as `newsflow run`.

Every case runs alone and next to a healthy article (a page after it, so a bad input that hangs,
crashes or swallows the run would hold the neighbour up). Besides the case's own outcome, each run
proves: nothing lost (every accepted record is stored or dead-lettered, with its dead-letter row),
the neighbour stored promptly, the run within its time bound and its peak RSS growth within its
memory bound.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from schemas import RawArticle
from tests.badinput.conftest import MEASUREMENTS, peak_rss_mb, peak_rss_reset
from tests.badinput.corpus import CASES, Case, Result, settings_for
from tests.samples import EXAMPLES
from workers.core.ids import article_id
from workers.core.settings import Settings, get_settings
from workers.db import repo
from workers.db.engine import dispose_all, transaction, upgrade
from workers.db.models import DeadLetterRow
from workers.ingest.archives import read_inputs
from workers.ingest.readers import Record
from workers.runtime import embedded
from workers.runtime.pipeline import Context

NEIGHBOUR = EXAMPLES / "valleypost-library.html"
NEIGHBOUR_SECONDS = 10.0
"""The healthy neighbour, once its turn comes, is stored within this many seconds."""


def _params() -> Iterator[object]:
    for case in CASES:
        for neighbour in (False, True):
            marks = (
                [pytest.mark.xfail(strict=True, reason=case.xfail_embedded)] if case.xfail_embedded else []
            )
            yield pytest.param(
                case, neighbour, id=f"{case.name}-{'neighbour' if neighbour else 'alone'}", marks=marks
            )


def _valid(records: Iterator[Record], rejected: list[str]) -> Iterator[RawArticle]:
    for record in records:
        if record.article is not None:
            yield record.article
        else:
            rejected.extend(f"{record.origin}: {p.field}: {p.reason}" for p in record.problems)


def _dump(url: str) -> str:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return "\n".join(db.iterdump())


def _neighbour_id() -> str:
    [record] = read_inputs([str(NEIGHBOUR)], source="badinput")
    assert record.article is not None
    return article_id(record.article)


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Process one healthy article first: libraries, the model and their caches are the process's
    start-up cost, not any case's (workers pay it once too)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('warm') / 'warm.db'}"
    upgrade(url)
    [record] = read_inputs([str(NEIGHBOUR)], source="badinput")
    assert record.article is not None
    embedded.run([record.article], Context(Settings(database_url=url)))
    dispose_all()


@pytest.mark.parametrize(("case", "with_neighbour"), list(_params()))
def test_bad_input_embedded(
    case: Case, with_neighbour: bool, tmp_path: Path, sqlite_url: str, warm: None
) -> None:
    """The case ends as its outcome says, within its time and memory bounds; nothing is lost and the healthy neighbour is stored promptly."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    paths = [str(p) for p in case.build(inputs)]
    if with_neighbour:
        paths.append(str(NEIGHBOUR))
    neighbour = _neighbour_id()
    settings = settings_for(case, Settings(database_url=sqlite_url, log_format="json"))
    upgrade(sqlite_url)
    ctx = Context(settings)
    rejected: list[str] = []
    accepted: list[str] = []
    done: list[tuple[str, float]] = []

    def counted(records: Iterator[RawArticle]) -> Iterator[RawArticle]:
        for raw in records:
            accepted.append(article_id(raw))
            yield raw

    base = peak_rss_reset()
    started = time.perf_counter()
    with capture_logs() as logs:
        report = embedded.run(
            counted(_valid(read_inputs(paths, source="badinput"), rejected)),
            ctx,
            on_done=lambda aid, _failure: done.append((aid, time.perf_counter())),
        )
    seconds = time.perf_counter() - started
    peak = peak_rss_mb() - base

    with transaction(sqlite_url) as session:
        stored = [a for a in (repo.fetch_article(session, i) for i in report.stored if i != neighbour) if a]
        dead = session.query(DeadLetterRow).count()
    failures = [(f.stage, f.reason) for f in report.failures if f.article_id != neighbour]
    output = ""
    if case.cli:
        output = _cli_run(paths, tmp_path)
    result = Result(
        rejected=[line.replace(str(inputs) + "/", "") for line in rejected],
        stored=stored,
        failures=failures,
        valid=len({a for a in accepted if a != neighbour}),  # an id repeated in the input is one article
        leak_texts=[_dump(sqlite_url), repr(logs), output],
        output=output,
    )
    dispose_all()
    outcome = "rejected" if result.rejected else "dead-lettered" if failures else "stored" if stored else "-"
    MEASUREMENTS.append(
        f"embedded {case.name:32s} {'neighbour' if with_neighbour else 'alone    '} "
        f"{outcome:13s} {seconds:6.2f} s (bound {case.seconds:.0f})  peak +{peak:5.0f} MB (bound {case.memory_mb})"
    )

    case.check(result)
    # Nothing lost: every accepted record of the case is stored or dead-lettered, with its row.
    assert result.valid == len({a.id for a in stored}) + len(failures), (result.valid, stored, failures)
    assert dead == len(report.failures)
    if with_neighbour:
        assert neighbour in report.stored, report.failures
        times = [t for _, t in done]
        mine = next(i for i, (aid, _) in enumerate(done) if aid == neighbour)
        waited = times[mine] - (times[mine - 1] if mine else started)
        assert waited < NEIGHBOUR_SECONDS, waited
    assert seconds < case.seconds, seconds
    assert peak < case.memory_mb, peak


def _cli_run(paths: list[str], tmp_path: Path) -> str:
    """`newsflow run PATHS` in-process on its own database: what it printed (stdout and stderr)."""
    from workers.cli import app

    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["run", *paths, "--db", f"sqlite:///{tmp_path / 'cli.db'}"])
    get_settings.cache_clear()
    text = result.stdout + result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        text += f"\nTraceback: {type(result.exception).__name__}: {result.exception}"
    return text


def test_max_entities_setting_caps_a_flood(tmp_path: Path, sqlite_url: str, warm: None) -> None:
    """NEWSFLOW_MAX_ENTITIES=50 caps a stored article at 50 entities (the stage's own default is 1000)."""
    from tests.badinput.corpus import _english_flood

    upgrade(sqlite_url)
    raw = RawArticle(source="badinput", body=_english_flood(3_000), content_type="text/plain")
    report = embedded.run([raw], Context(Settings(database_url=sqlite_url, max_entities=50)))
    with transaction(sqlite_url) as session:
        article = repo.fetch_article(session, report.stored[0])
    dispose_all()
    assert article is not None
    assert 0 < len(article.entities) <= 50
