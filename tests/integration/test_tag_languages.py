"""Tagging by language through real workers: untagged with the reason, French by the French model."""

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.conftest import run_cli, wait_for
from tests.multilingual import ENGLISH_NAMES, FRENCH_NAMES, write_feed

pytestmark = pytest.mark.integration


def _rows(url: str) -> dict[str, tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = sa.text(
                "SELECT a.language, a.id, a.untagged, count(e.position) FROM articles a "
                "LEFT JOIN entities e ON e.article_id = a.id GROUP BY a.language, a.id, a.untagged"
            )
            return {row[0]: tuple(row[1:]) for row in conn.execute(query)}
    finally:
        engine.dispose()


def test_workers_tag_each_language_with_its_model_or_say_why_not(pipeline_env, start_worker, tmp_path: Path):
    """German, Portuguese and Japanese articles are stored untagged with the reason; the French one has
    French entities, the English one its entities (real workers, PostgreSQL)."""
    worker = start_worker()
    enqueued = run_cli(pipeline_env, "enqueue", str(write_feed(tmp_path / "feed.jsonl")))
    assert enqueued.returncode == 0, enqueued.stderr
    db = pipeline_env["NEWSFLOW_DATABASE_URL"]
    wait_for(lambda: len(_rows(db)) == 5, message="5 stored articles")
    rows = _rows(db)
    for lang in ("de", "pt", "ja"):
        _, untagged, entities = rows[lang]
        assert (untagged, entities) == (f"no model for '{lang}'", 0)
    for lang, expected in (("fr", FRENCH_NAMES), ("en", ENGLISH_NAMES)):
        article_id, untagged, _ = rows[lang]
        assert untagged is None
        shown = run_cli(pipeline_env, "show", article_id, "--json")
        assert shown.returncode == 0, shown.stderr
        article = json.loads(shown.stdout)
        assert {(e["name"], e["label"]) for e in article["entities"]} >= expected
        assert article["tagging"]["language"] == lang
    shown = run_cli(pipeline_env, "show", rows["de"][0])
    assert "untagged: no model for 'de'" in " ".join(shown.stdout.split())
    done = [
        e
        for e in worker.log_events()
        if e.get("event") == "task_done" and e.get("task_name") == "newsflow.tag"
    ]
    assert {e.get("untagged") for e in done} >= {"no model for 'de'", "no model for 'ja'", None}
