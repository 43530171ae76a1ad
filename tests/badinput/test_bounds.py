"""Embedded mode's per-step bounds (`workers.runtime.embedded.bounded`): time, memory, and their nesting."""

from __future__ import annotations

import signal
import time

import pytest

from workers.runtime.embedded import StepTimeout, bounded


def _spin() -> None:
    while True:
        pass


def _spin_swallowing_once(fired: list[int]) -> None:
    while True:
        try:
            _spin()
        except StepTimeout:
            fired.append(1)
            if len(fired) > 1:
                raise


def test_soft_time_limit_stops_a_busy_step() -> None:
    """A step spinning past the limit gets StepTimeout at the limit, and the timer is gone afterwards."""
    started = time.monotonic()
    with pytest.raises(StepTimeout), bounded(0.3, 500_000):
        _spin()
    assert 0.25 < time.monotonic() - started < 2
    time.sleep(0.7)  # a leftover repeating timer would raise StepTimeout here


def test_a_swallowed_timeout_fires_again() -> None:
    """Code that swallows the first StepTimeout (a finaliser, a broad except) is interrupted again."""
    fired: list[int] = []
    with pytest.raises(StepTimeout), bounded(0.2, 500_000):
        _spin_swallowing_once(fired)
    assert len(fired) == 2


def test_memory_allowance_fails_one_huge_allocation() -> None:
    """Allocating more than the allowance raises MemoryError inside; the same allocation works after."""
    with pytest.raises(MemoryError), bounded(30, 200_000):
        bytearray(400 * 1024 * 1024)
    assert len(bytearray(300 * 1024 * 1024)) == 300 * 1024 * 1024


def test_outer_timer_is_restored() -> None:
    """An outer SIGALRM timer (pytest-timeout's) keeps its handler and its remaining time."""
    previous = signal.getitimer(signal.ITIMER_REAL)
    handler = signal.getsignal(signal.SIGALRM)
    with bounded(5, 500_000):
        pass
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert signal.getsignal(signal.SIGALRM) is handler
    if previous[0] > 0:
        assert 0 < remaining <= previous[0]
    else:
        assert remaining == 0
