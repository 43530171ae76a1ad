"""The worker-side message guard, without a worker: which bodies a stage task can be called with."""

import pytest

from workers.runtime.tasks.strategy import shape_problem

GOOD = {"article_id": "a" * 32, "trace_id": "t"}


@pytest.mark.parametrize(
    "payload",
    [
        [[GOOD], {}, {"callbacks": None}],
        [[GOOD], {}, None],
        [[], {"message": GOOD}, {}],
        ([GOOD], {}, {}),
    ],
)
def test_stage_task_calls_pass_the_guard(payload):
    """Celery's [args, kwargs, embed] with one message, positional or `message=`, is accepted."""
    assert shape_problem(payload) is None


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"not": "a list"}, "not Celery's"),
        ("text", "not Celery's"),
        (None, "not Celery's"),
        ([1, 2], "not Celery's"),
        ([GOOD, {}, {}], "args is not a list"),
        ([[GOOD], [], {}], "kwargs is not an object"),
        ([[GOOD], {}, "x"], "embed is not an object"),
        ([[GOOD, GOOD], {}, {}], "2 positional"),
        ([[], {}, {}], "0 positional"),
        ([[GOOD], {"x": 1}, {}], "keywords ['x']"),
        ([[], {"msg": GOOD}, {}], "keywords ['msg']"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(payload, words):
    """Every other shape is refused with a reason naming what is wrong (it becomes an invalid_message dead letter)."""
    problem = shape_problem(payload)
    assert problem is not None
    assert words in problem
