"""Boundary models: strict, frozen, closed, with limits that are part of the contract."""

import json

import pydantic
import pytest

from schemas import CleanedArticle, RawArticle, StageMessage
from schemas.limits import MAX_BODY_BYTES


def _errors(payload: dict) -> dict[str, str]:
    with pytest.raises(pydantic.ValidationError) as info:
        RawArticle.model_validate_json(json.dumps(payload))
    return {".".join(map(str, e["loc"])): e["msg"] for e in info.value.errors()}


def test_raw_article_accepts_the_documented_fields():
    """A producer's JSON with every public field validates, timestamps parsed to aware datetimes."""
    raw = RawArticle.model_validate_json(
        json.dumps(
            {
                "source": "ap.example",
                "body": "<p>Hi</p>",
                "url": "https://ap.example/a",
                "fetched_at": "2026-01-02T03:04:05Z",
                "content_type": "text/html",
                "title": "T",
                "published_at": "2026-01-01T00:00:00+01:00",
                "language": "en-GB",
            }
        )
    )
    assert raw.fetched_at is not None
    assert raw.fetched_at.tzinfo is not None


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({"body": "x"}, "source", "Field required"),
        ({"source": "s"}, "body", "Field required"),
        ({"source": "s", "body": "  \n "}, "body", "must not be blank"),
        ({"source": "s", "body": "x", "url": "javascript:alert(1)"}, "url", "absolute http"),
        ({"source": "s", "body": "x", "content_type": "application/pdf"}, "content_type", "Input should be"),
        ({"source": "s", "body": "x", "language": "en_US!"}, "language", "should match pattern"),
        ({"source": "s", "body": "x", "fetched_at": "yesterday"}, "fetched_at", "datetime"),
        ({"source": "s", "body": "x", "tags": []}, "tags", "Extra inputs are not permitted"),
        ({"source": "s", "body": 5}, "body", "string"),
    ],
)
def test_raw_article_rejects_bad_fields_with_field_and_reason(payload, field, reason):
    """Each invalid field is reported under its own name with pydantic's reason."""
    errors = _errors(payload)
    assert field in errors
    assert reason in errors[field]


def test_raw_article_body_limit_is_in_bytes():
    """A body over the byte limit is rejected even when its character count is under it."""
    body = "é" * (MAX_BODY_BYTES // 2 + 1)
    errors = _errors({"source": "s", "body": body})
    assert f"the limit is {MAX_BODY_BYTES}" in errors["body"]


def test_models_are_frozen():
    """Boundary models cannot be mutated after validation."""
    raw = RawArticle(source="s", body="b")
    with pytest.raises(pydantic.ValidationError):
        raw.body = "changed"  # type: ignore[misc]


def test_stage_message_is_small_and_checked():
    """A stage message carries a 32-hex article id and a trace id, nothing else."""
    msg = StageMessage(article_id="0" * 32, trace_id="abc")
    assert json.loads(msg.model_dump_json()) == {"article_id": "0" * 32, "trace_id": "abc"}
    with pytest.raises(pydantic.ValidationError):
        StageMessage.model_validate({"article_id": "../../etc", "trace_id": "abc"})


def test_cleaned_article_round_trips_through_json():
    """What a stage records is read back equal (records are JSON, never pickle)."""
    cleaned = CleanedArticle(article_id="0" * 32, version="v", text="Body.", credits=("AP",))
    assert CleanedArticle.model_validate_json(cleaned.model_dump_json()) == cleaned


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({"source": "a\u0000b", "body": "x"}, "source", "control characters (U+0000)"),
        ({"source": "a\u001bb", "body": "x"}, "source", "control characters (U+001B)"),
        (
            {"source": "s", "body": "x", "url": "https://a.example/\u0000"},
            "url",
            "control characters (U+0000)",
        ),
        ({"source": "s", "body": "x", "url": "https://a.example/\u001b[31m"}, "url", "control characters"),
        ({"source": "s", "body": "x", "title": "a\u0000b"}, "title", "must not contain NUL"),
    ],
)
def test_raw_article_refuses_nul_and_control_characters(payload, field, reason):
    """NUL (which PostgreSQL cannot store) and escapes are refused in source, url and title, by field."""
    errors = _errors(payload)
    assert reason in errors[field]


def test_raw_article_keeps_newlines_in_title_and_nul_in_body():
    """A title may hold newlines and escapes (escaped where shown); a body's NUL is left to cleaning."""
    raw = RawArticle(source="s", body="a\u0000b", title="two\nlines \u001b[31m")
    assert raw.title == "two\nlines \u001b[31m"
    assert raw.body == "a\u0000b"
